//! `teleapi-admin`'s work, on the memory twins and on DynamoDB (moto): accounts created,
//! rotated, suspended and reactivated are what the API then accepts.

use lambda_http::http::StatusCode;
use teleapi::domain::{AccountSid, AccountStatus, AuthToken, CallStatus};
use teleapi_local::admin::{Command, parse, run};
use teleapi_tests::{Backend, World, assert_error, basic_auth};

fn sid(value: &serde_json::Value) -> AccountSid {
    value["sid"].as_str().unwrap().parse().unwrap()
}

async fn accounts_are_managed(world: World) {
    let accounts = world.backend.accounts.as_ref();
    let parent = run(
        accounts,
        Command::Create {
            name: "Acme".into(),
            parent: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(parent["status"], "active");
    assert_eq!(parent["auth_token"].as_str().unwrap().len(), 32);
    let child = run(
        accounts,
        Command::Create {
            name: "Acme EU".into(),
            parent: Some(sid(&parent)),
        },
    )
    .await
    .unwrap();
    assert_eq!(child["parent_account_sid"], parent["sid"]);
    let grandchild = run(
        accounts,
        Command::Create {
            name: "x".into(),
            parent: Some(sid(&child)),
        },
    )
    .await;
    assert!(grandchild.unwrap_err().contains("itself a subaccount"));
    assert!(
        run(accounts, Command::Show(AccountSid::generate()))
            .await
            .unwrap_err()
            .contains("no account")
    );

    // The new account works against the API; a rotated token works at once, and the old one
    // stops working when the API's cached copy of the account expires.
    let mut account = accounts.account(&sid(&parent)).await.unwrap().unwrap();
    let call = teleapi_tests::call(
        &world.backend,
        &account.sid,
        CallStatus::InProgress,
        teleapi::domain::Timestamp::now(),
    )
    .await;
    let path = format!(
        "/call/2012-04-24/Accounts/{}/Calls/{}.json",
        account.sid, call.sid
    );
    let ttl = teleapi::api::ApiConfig::default().account_cache_ttl;
    let get = |auth: String| world.send(teleapi_tests::get_request(&path, Some(&auth)));
    assert_eq!(get(basic_auth(&account)).await.status(), StatusCode::OK);
    let rotated = run(accounts, Command::Rotate(account.sid.clone()))
        .await
        .unwrap();
    assert_ne!(rotated["auth_token"], parent["auth_token"]);
    let old = basic_auth(&account);
    account.auth_token = AuthToken::new(rotated["auth_token"].as_str().unwrap());
    assert_eq!(get(basic_auth(&account)).await.status(), StatusCode::OK);
    world.clock.advance(ttl);
    assert_error(&get(old).await, 401, 20003, "Authenticate");
    assert_eq!(get(basic_auth(&account)).await.status(), StatusCode::OK);

    // Suspended, it is refused; reactivated, it works again.
    let suspended = run(
        accounts,
        Command::SetStatus(account.sid.clone(), AccountStatus::Suspended),
    )
    .await
    .unwrap();
    assert_eq!(suspended["status"], "suspended");
    world.clock.advance(ttl);
    assert_error(&get(basic_auth(&account)).await, 403, 10001, "not active");
    run(
        accounts,
        Command::SetStatus(account.sid.clone(), AccountStatus::Active),
    )
    .await
    .unwrap();
    assert_eq!(get(basic_auth(&account)).await.status(), StatusCode::OK);
    assert_eq!(
        run(accounts, Command::Show(account.sid.clone()))
            .await
            .unwrap()["auth_token"],
        rotated["auth_token"]
    );
}

#[test]
fn the_command_line() {
    let args = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let sid = AccountSid::generate();
    assert_eq!(
        parse(&args(&format!(
            "--table t create-account Acme --parent {sid}"
        )))
        .unwrap(),
        (
            Some("t".into()),
            Command::Create {
                name: "Acme".into(),
                parent: Some(sid.clone())
            }
        )
    );
    assert_eq!(
        parse(&args(&format!("rotate-token {sid}"))).unwrap().1,
        Command::Rotate(sid.clone())
    );
    assert_eq!(
        parse(&args(&format!("suspend {sid}"))).unwrap().1,
        Command::SetStatus(sid.clone(), AccountStatus::Suspended)
    );
    for bad in [
        "",
        "create-account",
        "rotate-token ACnope",
        "frobnicate",
        &format!("show {sid} --parent {sid}"),
        "--table",
    ] {
        assert!(parse(&args(bad)).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn memory() {
    accounts_are_managed(World::new(Backend::memory()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto() {
    accounts_are_managed(World::new(Backend::moto().await).await).await;
}
