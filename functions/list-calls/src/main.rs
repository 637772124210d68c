//! The list-calls function: API Gateway -> `teleapi::api` (Operation::ListCalls).

fn main() -> Result<(), lambda_http::Error> {
    teleapi::lambda::api_function("list-calls")
}
