//! `teleapi-admin`'s work, on the memory twins and on DynamoDB (moto): accounts created,
//! rotated, suspended and reactivated are what the API then accepts.

use lambda_http::http::StatusCode;
use teleapi_domain::{AccountSid, AccountStatus, AuthToken, CallStatus, RateLimit};
use teleapi_local::admin::{Command, Invocation, parse, run};
use teleapi_tests::{Backend, World, assert_error, basic_auth};

fn sid(value: &serde_json::Value) -> AccountSid {
    value["sid"].as_str().unwrap().parse().unwrap()
}

async fn accounts_are_managed(world: World) {
    let accounts = world.backend.accounts.as_ref();
    let parent = run(
        accounts,
        None,
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
        None,
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
        None,
        Command::Create {
            name: "x".into(),
            parent: Some(sid(&child)),
        },
    )
    .await;
    assert!(grandchild.unwrap_err().contains("itself a subaccount"));
    assert!(
        run(accounts, None, Command::Show(AccountSid::generate()))
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
        teleapi_domain::Timestamp::now(),
    )
    .await;
    let path = format!(
        "/call/2012-04-24/Accounts/{}/Calls/{}.json",
        account.sid, call.sid
    );
    let ttl = teleapi_api::ApiConfig::default().account_cache_ttl;
    let get = |auth: String| world.send(teleapi_tests::get_request(&path, Some(&auth)));
    assert_eq!(get(basic_auth(&account)).await.status(), StatusCode::OK);
    let rotated = run(accounts, None, Command::Rotate(account.sid.clone()))
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
        None,
        Command::SetStatus(account.sid.clone(), AccountStatus::Suspended),
    )
    .await
    .unwrap();
    assert_eq!(suspended["status"], "suspended");
    world.clock.advance(ttl);
    assert_error(&get(basic_auth(&account)).await, 403, 10001, "not active");
    run(
        accounts,
        None,
        Command::SetStatus(account.sid.clone(), AccountStatus::Active),
    )
    .await
    .unwrap();
    assert_eq!(get(basic_auth(&account)).await.status(), StatusCode::OK);
    assert_eq!(
        run(accounts, None, Command::Show(account.sid.clone()))
            .await
            .unwrap()["auth_token"],
        rotated["auth_token"]
    );

    // A rate limit of its own, stored; and back to the deployment's.
    let limited = run(
        accounts,
        None,
        Command::SetRateLimit(account.sid.clone(), Some(RateLimit::new(500, 800).unwrap())),
    )
    .await
    .unwrap();
    assert_eq!(limited["rate_limit"]["per_second"], 500);
    let stored = accounts.account(&account.sid).await.unwrap().unwrap();
    assert_eq!(stored.rate_limit, Some(RateLimit::new(500, 800).unwrap()));
    run(
        accounts,
        None,
        Command::SetRateLimit(account.sid.clone(), None),
    )
    .await
    .unwrap();
    let stored = accounts.account(&account.sid).await.unwrap().unwrap();
    assert_eq!(stored.rate_limit, None);
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
        Invocation {
            table: Some("t".into()),
            calls_table: None,
            command: Command::Create {
                name: "Acme".into(),
                parent: Some(sid.clone())
            }
        }
    );
    let command = |line: &str| parse(&args(line)).unwrap().command;
    assert_eq!(
        command(&format!("rotate-token {sid}")),
        Command::Rotate(sid.clone())
    );
    assert_eq!(
        command(&format!("suspend {sid}")),
        Command::SetStatus(sid.clone(), AccountStatus::Suspended)
    );
    assert_eq!(
        command(&format!("set-listing-shards {sid} 16")),
        Command::SetListingShards(sid.clone(), 16)
    );
    assert_eq!(
        command(&format!("set-rate-limit {sid} 500/800")),
        Command::SetRateLimit(sid.clone(), Some(RateLimit::new(500, 800).unwrap()))
    );
    assert_eq!(
        command(&format!("set-rate-limit {sid} default")),
        Command::SetRateLimit(sid.clone(), None)
    );
    assert_eq!(
        parse(&args("--calls-table c backfill-listing")).unwrap(),
        Invocation {
            table: None,
            calls_table: Some("c".into()),
            command: Command::BackfillListing
        }
    );
    for bad in [
        "",
        "create-account",
        "rotate-token ACnope",
        "frobnicate",
        &format!("show {sid} --parent {sid}"),
        "--table",
        &format!("set-listing-shards {sid}"),
        &format!("set-listing-shards {sid} 0"),
        &format!("set-listing-shards {sid} 33"),
        &format!("set-rate-limit {sid}"),
        &format!("set-rate-limit {sid} 0"),
        &format!("set-rate-limit {sid} 10/99999"),
    ] {
        assert!(parse(&args(bad)).is_err(), "{bad:?}");
    }
}

/// A busy account's listing spread over more partitions: its calls, old and new, are listed
/// once each; partitions never shrink.
async fn listing_partitions_grow(world: World) {
    let accounts = world.backend.accounts.as_ref();
    let sid = world.account.sid.clone();
    let now = teleapi_domain::Timestamp::now();
    let old = teleapi_tests::call(&world.backend, &sid, CallStatus::Completed, now).await;
    let raised = run(accounts, None, Command::SetListingShards(sid.clone(), 8))
        .await
        .unwrap();
    assert_eq!(raised["listing_shards"], 8);
    assert!(
        run(accounts, None, Command::SetListingShards(sid.clone(), 4))
            .await
            .unwrap_err()
            .contains("can grow, not shrink")
    );
    world
        .clock
        .advance(teleapi_api::ApiConfig::default().account_cache_ttl);
    let mut created = vec![old.sid.to_string()];
    for _ in 0..6 {
        world.clock.advance(std::time::Duration::from_millis(1));
        let answer = world
            .post(
                "/Calls.json",
                "From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fapp.example.com%2Fb",
            )
            .await;
        assert_eq!(answer.status(), StatusCode::CREATED);
        created.push(
            teleapi_tests::body_json(&answer)["sid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let shards: std::collections::BTreeSet<u8> = {
        let mut set = std::collections::BTreeSet::new();
        for sid in &created[1..] {
            let call = world
                .backend
                .calls
                .call(&sid.parse().unwrap())
                .await
                .unwrap()
                .unwrap();
            set.insert(call.listing_shard);
        }
        set
    };
    assert!(shards.len() > 1, "new calls spread: {shards:?}");
    created.reverse();
    let mut listed = Vec::new();
    let mut path = "/Calls.json?PageSize=2".to_owned();
    loop {
        let page = teleapi_tests::body_json(&world.get(&path).await);
        for call in page["calls"].as_array().unwrap() {
            listed.push(call["sid"].as_str().unwrap().to_owned());
        }
        match page["next_page_uri"].as_str() {
            Some(next) => path = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(listed, created);
}

#[tokio::test]
async fn memory() {
    accounts_are_managed(World::new(Backend::memory()).await).await;
    listing_partitions_grow(World::new(Backend::memory()).await).await;
}

/// Calls stored before listings were partitioned have no `ListingKey`: the listing does not see
/// them until `backfill-listing` puts them in their account's first partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_lists_calls_stored_before_partitioning() {
    let world = World::new(Backend::moto().await).await;
    let aws = world.backend.aws.clone().unwrap();
    let now = teleapi_domain::Timestamp::now();
    let legacy = teleapi_tests::call(
        &world.backend,
        &world.account.sid,
        CallStatus::Completed,
        now,
    )
    .await;
    aws.dynamodb
        .update_item()
        .table_name(&aws.tables.calls)
        .key(
            "CallSid",
            aws_sdk_dynamodb::types::AttributeValue::S(legacy.sid.to_string()),
        )
        .update_expression("REMOVE ListingKey")
        .send()
        .await
        .unwrap();
    let listed = || async {
        teleapi_tests::body_json(&world.get("/Calls.json").await)["calls"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(listed().await, 0);
    let store =
        teleapi_adapters::dynamodb::DynamoStore::new(aws.dynamodb.clone(), aws.tables.clone());
    let done = teleapi_local::admin::backfill(&store).await.unwrap();
    assert_eq!(done["calls_backfilled"], 1);
    assert_eq!(listed().await, 1);
    assert_eq!(
        teleapi_local::admin::backfill(&store).await.unwrap()["calls_backfilled"],
        0,
        "run again, it changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto() {
    accounts_are_managed(World::new(Backend::moto().await).await).await;
    listing_partitions_grow(World::new(Backend::moto().await).await).await;
}

/// Deployed, an account's rate limit is its API key's usage plan, and API Gateway allows 10,000
/// keys a region: an account with a limit of its own has its own key, in the plan of that limit
/// (created once, shared by the accounts of that limit); every other account borrows a key of
/// the pool while it is active. On moto's API Gateway and DynamoDB, with the key quota lowered
/// to 8 above the keys the test found, and more accounts than that: a deployment from before
/// the pool (every account with its own key) is migrated by `sync-usage-plans`, which fills the
/// pool; active accounts each hold a key of their own; once the pool is all lent, the others
/// share the unassigned key until loans end; an account given a limit at the quota takes the
/// pool's last key, and gives it back with `default`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_usage_plans_on_api_gateway() {
    use teleapi_local::admin::usage_plans::ApiGatewayPlans;
    use teleapi_ports::key_pool::LEASE;

    let world = World::new(Backend::moto().await).await;
    let aws = world.backend.aws.clone().unwrap();
    let apigateway = aws_sdk_apigateway::Client::new(&teleapi_tests::moto::sdk_config().await);
    let prefix = format!("{}-", aws.tables.accounts.trim_end_matches("-accounts"));
    let api = apigateway
        .create_rest_api()
        .name(&prefix)
        .send()
        .await
        .unwrap();
    let api_id = api.id().unwrap().to_owned();
    let default_plan = apigateway
        .create_usage_plan()
        .name(format!("{prefix}default"))
        .send()
        .await
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    // Every API key in moto's region (one page: the test makes a dozen).
    let count_keys = || async {
        let page = apigateway.get_api_keys().limit(500).send().await.unwrap();
        assert!(page.position().is_none());
        page.items().len() as u32
    };
    let quota = count_keys().await + 8;
    let plans = ApiGatewayPlans::new(
        apigateway.clone(),
        &api_id,
        "live",
        &default_plan,
        &prefix,
        world.backend.key_pool.clone(),
    )
    .with_key_quota(quota)
    .with_clock(world.clock.clone());
    let accounts = world.backend.accounts.as_ref();
    // The plans a key is in, by name.
    let plans_of = |key_value: String| {
        let apigateway = apigateway.clone();
        async move {
            let keys = apigateway
                .get_api_keys()
                .name_query(&key_value)
                .send()
                .await
                .unwrap();
            let key = keys.items()[0].id().unwrap().to_owned();
            let mut names: Vec<String> = apigateway
                .get_usage_plans()
                .key_id(key)
                .send()
                .await
                .unwrap()
                .items()
                .iter()
                .map(|p| p.name().unwrap().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    let unassigned = format!("{prefix}unassigned-accounts");
    let authorizer = world
        .backend
        .authorizer_services(world.clock.clone(), &prefix);
    let key_of = |account| teleapi_tests::usage_key(&authorizer, account);

    // A deployment from before the pool: three accounts of the default limit with keys of
    // their own in the default plan, one with a limit of its own in that limit's plan.
    let legacy = |limit| {
        let (world, apigateway, prefix, default_plan) =
            (&world, &apigateway, &prefix, &default_plan);
        async move {
            let mut account = teleapi_tests::account(&world.backend, None).await;
            let value = format!("{prefix}{}", account.sid);
            let key = apigateway
                .create_api_key()
                .name(&value)
                .value(&value)
                .enabled(true)
                .send()
                .await
                .unwrap();
            apigateway
                .create_usage_plan_key()
                .usage_plan_id(default_plan)
                .key_id(key.id().unwrap())
                .key_type("API_KEY")
                .send()
                .await
                .unwrap();
            account.usage_key = Some(value);
            account.rate_limit = limit;
            accounts.update_account(&account).await.unwrap();
            account
        }
    };
    let mut old = Vec::new();
    for _ in 0..3 {
        old.push(legacy(None).await);
    }
    let limit = RateLimit::new(500, 800).unwrap();
    let limited = legacy(Some(limit)).await;
    let own_plan = format!("{prefix}rate-500-burst-800");

    let synced = teleapi_local::admin::sync_usage_plans(
        &teleapi_adapters::dynamodb::DynamoStore::new(aws.dynamodb.clone(), aws.tables.clone()),
        &plans,
    )
    .await
    .unwrap();
    // 4 keys made before; the pool fills the quota of 8 but for 1: 3 more.
    assert_eq!(synced["accounts_with_own_keys"], 1, "{synced}");
    assert_eq!(synced["keys_given_to_the_pool"], 3, "{synced}");
    assert_eq!(synced["pool_keys"], 6, "{synced}");
    let limited_key = format!("{prefix}{}", limited.sid);
    assert_eq!(
        plans_of(limited_key.clone()).await,
        std::slice::from_ref(&own_plan)
    );
    for account in &old {
        let stored = accounts.account(&account.sid).await.unwrap().unwrap();
        assert_eq!(stored.usage_key, None, "it borrows now");
        let key = account.usage_key.clone().unwrap();
        assert_eq!(plans_of(key).await, [format!("{prefix}default")]);
    }
    let again = teleapi_local::admin::sync_usage_plans(
        &teleapi_adapters::dynamodb::DynamoStore::new(aws.dynamodb.clone(), aws.tables.clone()),
        &plans,
    )
    .await
    .unwrap();
    assert_eq!(again["keys_given_to_the_pool"], 0, "{again}");
    assert_eq!(again["pool_keys"], 6, "{again}");

    // The account with its own limit names its own key.
    assert_eq!(key_of(&limited).await, limited_key);

    // Twenty new accounts, past the quota: the old accounts' keys are still lent to them (their
    // cached answers may name them), so three new accounts find a key and the others share.
    let mut new = Vec::new();
    for i in 0..20 {
        let created = run(
            accounts,
            Some(&plans),
            Command::Create {
                name: format!("new {i}"),
                parent: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            created["usage_key"],
            serde_json::Value::Null,
            "no key of its own"
        );
        new.push(accounts.account(&sid(&created)).await.unwrap().unwrap());
    }
    let pool_keys = |keys: &[String]| {
        keys.iter()
            .filter(|k| **k != unassigned)
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut first = Vec::new();
    for account in &new[..10] {
        first.push(key_of(account).await);
    }
    let lent = pool_keys(&first);
    assert_eq!(lent.len(), 3, "{first:?}");
    let mut distinct = lent.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "one account a key: {first:?}");
    for key in &lent {
        assert_eq!(plans_of(key.clone()).await, [format!("{prefix}default")]);
        assert!(!old.iter().any(|a| a.usage_key.as_ref() == Some(key)));
    }
    // Each keeps its key while it stays active.
    for (account, key) in new[..10].iter().zip(&first) {
        if *key != unassigned {
            assert_eq!(key_of(account).await, *key);
        }
    }

    // Once every loan has ended, the next six accounts each hold one of the six keys.
    world
        .clock
        .advance(LEASE + std::time::Duration::from_secs(61));
    let mut second = Vec::new();
    for account in &new[10..] {
        second.push(key_of(account).await);
    }
    let mut lent = pool_keys(&second);
    assert_eq!(lent.len(), 6, "{second:?}");
    lent.sort();
    lent.dedup();
    assert_eq!(lent.len(), 6, "{second:?}");

    // A limit of its own at the quota: one key is left under it (the reserve), made for the
    // first account; the second takes the pool's last key once nobody holds it.
    let given = |account: &teleapi_domain::Account, limit| {
        run(
            accounts,
            Some(&plans),
            Command::SetRateLimit(account.sid.clone(), limit),
        )
    };
    let made = given(&new[0], Some(limit)).await.unwrap();
    assert_eq!(made["usage_key"], format!("{prefix}{}", new[0].sid));
    assert_eq!(
        plans_of(format!("{prefix}{}", new[0].sid)).await,
        std::slice::from_ref(&own_plan)
    );
    let refused = given(&new[1], Some(limit)).await.unwrap_err();
    assert!(refused.contains("lent"), "{refused}");
    assert_eq!(
        accounts
            .account(&new[1].sid)
            .await
            .unwrap()
            .unwrap()
            .usage_key,
        None,
        "nothing changed"
    );
    world
        .clock
        .advance(LEASE + std::time::Duration::from_secs(1));
    let taken = given(&new[1], Some(limit)).await.unwrap();
    let taken_key = taken["usage_key"].as_str().unwrap().to_owned();
    assert!(taken_key.starts_with(&format!("{prefix}pool-")), "{taken}");
    assert_eq!(
        plans_of(taken_key.clone()).await,
        std::slice::from_ref(&own_plan)
    );
    assert_eq!(world.backend.key_pool.pool_size().await.unwrap(), 5);
    assert_eq!(key_of(&new[1]).await, taken_key);

    // Back to the default: the key goes back to the pool, still lent to the account.
    let back = given(&new[1], None).await.unwrap();
    assert_eq!(back["usage_key"], serde_json::Value::Null);
    assert_eq!(world.backend.key_pool.pool_size().await.unwrap(), 6);
    assert_eq!(
        plans_of(taken_key.clone()).await,
        [format!("{prefix}default")]
    );
    let named_plans = apigateway.get_usage_plans().send().await.unwrap();
    assert_eq!(
        named_plans
            .items()
            .iter()
            .filter(|p| p.name() == Some(own_plan.as_str()))
            .count(),
        1,
        "one plan per limit"
    );
    assert_eq!(count_keys().await, quota, "the quota reached, never passed");
}
