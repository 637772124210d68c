//! The list-calls function: API Gateway -> `teleapi_api` (Operation::ListCalls).

fn main() -> Result<(), lambda_http::Error> {
    teleapi_runtime::lambda::api_function("list-calls")
}
