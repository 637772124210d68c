//! The modify-call function: API Gateway -> `teleapi_api` (Operation::ModifyCall).

fn main() -> Result<(), lambda_http::Error> {
    teleapi_runtime::lambda::api_function("modify-call")
}
