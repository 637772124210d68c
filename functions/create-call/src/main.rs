//! The create-call function: API Gateway -> `teleapi_api` (Operation::CreateCall).

fn main() -> Result<(), lambda_http::Error> {
    teleapi_runtime::lambda::api_function("create-call")
}
