//! The modify-call function: API Gateway -> `teleapi::api` (Operation::ModifyCall).

fn main() -> Result<(), lambda_http::Error> {
    teleapi::lambda::api_function("modify-call")
}
