//! `teleapi-admin`: manage accounts in a deployment. See `teleapi-admin --help`.

use std::process::ExitCode;
use std::sync::Arc;

use teleapi::adapters::dynamodb::{DynamoStore, TableNames};
use teleapi_local::admin;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (table, command) = match admin::parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let Some(table) = table.or_else(|| std::env::var(TableNames::ENV[0]).ok()) else {
        eprintln!(
            "give --table or set {}\n\n{}",
            TableNames::ENV[0],
            admin::USAGE
        );
        return ExitCode::from(2);
    };
    let config = teleapi::config::aws_config().await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        TableNames::accounts_only(table),
    ));
    match admin::run(store.as_ref(), command).await {
        Ok(account) => {
            println!("{}", serde_json::to_string_pretty(&account).expect("JSON"));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("teleapi-admin: {message}");
            ExitCode::FAILURE
        }
    }
}
