//! The authorize-account function: API Gateway REQUEST authorizer events ->
//! `teleapi::api::authorizer` (which API key counts the request against its account's limit).

fn main() -> Result<(), lambda_runtime::Error> {
    teleapi::lambda::authorizer_function()
}
