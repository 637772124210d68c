//! `GET …/Accounts/{AccountSid}/Calls/{CallSid}`: one call, as recorded.

use lambda_http::Request;

use super::error::ApiError;
use super::representation::call_resource;
use super::{Route, Services, Success};

pub async fn get_call(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let call = super::owned_call(services, &owner, &route.call_sid()?).await?;
    Ok(Success::ok(
        Some("Call"),
        call_resource(&call.listed(), None),
    ))
}
