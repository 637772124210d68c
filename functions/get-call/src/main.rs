//! The get-call function: API Gateway -> `teleapi::api` (Operation::GetCall and Operation::ListModifications).

fn main() -> Result<(), lambda_http::Error> {
    teleapi::lambda::api_function("get-call")
}
