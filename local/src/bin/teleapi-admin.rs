//! `teleapi-admin`: manage accounts in a deployment. See `teleapi-admin --help`.

use std::process::ExitCode;
use std::sync::Arc;

use teleapi_adapters::dynamodb::{DynamoStore, TableNames};
use teleapi_local::admin;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let invocation = match admin::parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let from_env = |given: Option<String>, index: usize| {
        given.or_else(|| std::env::var(TableNames::ENV[index]).ok())
    };
    let config = teleapi_runtime::config::aws_config().await;
    let plans = match admin::usage_plans::ApiGatewayPlans::from_env(&config) {
        None => None,
        Some(Ok(plans)) => Some(plans),
        Some(Err(message)) => {
            eprintln!("teleapi-admin: {message}");
            return ExitCode::from(2);
        }
    };
    let plans = plans
        .as_ref()
        .map(|p| p as &dyn admin::usage_plans::UsagePlans);
    let client = aws_sdk_dynamodb::Client::new(&config);
    let done = if invocation.command == admin::Command::SyncUsagePlans {
        let (Some(table), Some(plans)) = (from_env(invocation.table, 0), plans) else {
            eprintln!(
                "sync-usage-plans needs --table (or {}) and {}\n\n{}",
                TableNames::ENV[0],
                admin::usage_plans::ENV.join(", "),
                admin::USAGE
            );
            return ExitCode::from(2);
        };
        let store = DynamoStore::new(client, TableNames::accounts_only(table));
        admin::sync_usage_plans(&store, plans).await
    } else if invocation.command == admin::Command::BackfillListing {
        let Some(calls) = from_env(invocation.calls_table, 1) else {
            return missing("--calls-table", TableNames::ENV[1]);
        };
        let tables = TableNames {
            calls,
            ..TableNames::accounts_only(String::new())
        };
        admin::backfill(&DynamoStore::new(client, tables)).await
    } else {
        let Some(table) = from_env(invocation.table, 0) else {
            return missing("--table", TableNames::ENV[0]);
        };
        let store = Arc::new(DynamoStore::new(client, TableNames::accounts_only(table)));
        if plans.is_none()
            && matches!(
                invocation.command,
                admin::Command::Create { .. } | admin::Command::SetRateLimit(..)
            )
        {
            eprintln!(
                "teleapi-admin: note: without {} the deployed usage plans are left as they are",
                admin::usage_plans::ENV.join(", ")
            );
        }
        admin::run(store.as_ref(), plans, invocation.command).await
    };
    match done {
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

fn missing(option: &str, variable: &str) -> ExitCode {
    eprintln!("give {option} or set {variable}\n\n{}", admin::USAGE);
    ExitCode::from(2)
}
