//! The get-call function: API Gateway -> `teleapi_api` (Operation::GetCall and Operation::ListModifications).

fn main() -> Result<(), lambda_http::Error> {
    teleapi_runtime::lambda::api_function("get-call")
}
