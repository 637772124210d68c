//! The create-call function: API Gateway -> `teleapi::api` (Operation::CreateCall).

fn main() -> Result<(), lambda_http::Error> {
    teleapi::lambda::api_function("create-call")
}
