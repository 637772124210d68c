//! The authorize-account function: API Gateway REQUEST authorizer events ->
//! `teleapi_api::authorizer` (which API key counts the request against its account's limit).

fn main() -> Result<(), lambda_runtime::Error> {
    teleapi_runtime::lambda::authorizer_function()
}
