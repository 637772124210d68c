//! `teleapi-admin`: accounts in a deployment's Accounts table, through the same adapters the
//! functions use. Creates the first account and subaccounts, rotates an AuthToken, suspends and
//! reactivates, spreads a busy account's listing, sets its rate limit and keeps its API key in
//! the right usage plan, or gives it to the pool the other accounts borrow from
//! ([`usage_plans`]). Prints the account as JSON (with its AuthToken: the
//! one place it is handed out).

pub mod usage_plans;

use serde_json::{Value, json};
use teleapi_adapters::dynamodb::DynamoStore;
use teleapi_domain::account::MAX_LISTING_SHARDS;
use teleapi_domain::{Account, AccountSid, AccountStatus, AuthToken, RateLimit, Timestamp};
use teleapi_ports::{AccountStore, InsertError};
use usage_plans::UsagePlans;

pub const USAGE: &str = "\
Usage: teleapi-admin [--table NAME] COMMAND

Commands:
  create-account NAME [--parent ACCOUNT_SID]   a new account (or subaccount of ACCOUNT_SID)
  rotate-token ACCOUNT_SID                     a new AuthToken; the old one stops working at once
  suspend ACCOUNT_SID                          the account's requests get 403 until reactivated
  activate ACCOUNT_SID
  show ACCOUNT_SID
  set-listing-shards ACCOUNT_SID N             spread the account's listing over N partitions
                                               (1 to 32, never fewer than now): for accounts
                                               creating more than ~125 calls a second
  set-rate-limit ACCOUNT_SID RATE[/BURST]      the account's own API request rate limit
                                               (requests a second, and at once; BURST defaults
                                               to twice RATE); `default` for the deployment's
  sync-usage-plans                             give every account with a limit of its own its
                                               API key in that limit's usage plan, give the
                                               keys of the others to the pool they borrow
                                               from, and fill the pool (after deploying, and
                                               again if interrupted; needs the usage-plan
                                               variables below)
  backfill-listing                             put calls stored before listings were
                                               partitioned into the listing (once, after
                                               deploying; needs --calls-table)

Options:
  --table NAME         the Accounts table (default: $TELEAPI_ACCOUNTS_TABLE, or the stack's
                       AccountsTableName output)
  --calls-table NAME   the Calls table (default: $TELEAPI_CALLS_TABLE, or the stack's
                       CallsTableName output)

Deployed, API Gateway enforces rate limits: with TELEAPI_REST_API_ID, TELEAPI_API_STAGE,
TELEAPI_DEFAULT_USAGE_PLAN_ID, TELEAPI_API_KEY_PREFIX and TELEAPI_KEY_POOL_TABLE set (the
stack's outputs RestApiId, ApiStageName, DefaultUsagePlanId, ApiKeyPrefix and
KeyPoolTableName), set-rate-limit also gives the account its own API key in the usage plan of
its limit (`default`: gives the key back to the pool). Accounts without a limit of their own
borrow a key of the pool while they are active. TELEAPI_API_KEY_QUOTA: the API keys this AWS
account may have in the region, if not API Gateway's 10,000. Without these variables, only the
Accounts table changes.

AWS credentials, region and endpoint come from the standard environment (AWS_PROFILE,
AWS_REGION, AWS_ENDPOINT_URL for an emulator).";

/// A command, as parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create {
        name: String,
        parent: Option<AccountSid>,
    },
    Rotate(AccountSid),
    SetStatus(AccountSid, AccountStatus),
    Show(AccountSid),
    SetListingShards(AccountSid, u8),
    /// `None`: the deployment's default.
    SetRateLimit(AccountSid, Option<RateLimit>),
    /// Not an account command: run on the Calls table (see [`backfill`]).
    BackfillListing,
    /// Every account's key in its plan (see [`sync_usage_plans`]).
    SyncUsagePlans,
}

/// What the command line names: the tables, and the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub table: Option<String>,
    pub calls_table: Option<String>,
    pub command: Command,
}

/// The tables (if given) and the command.
pub fn parse(args: &[String]) -> Result<Invocation, String> {
    let mut table = None;
    let mut calls_table = None;
    let mut rest: Vec<&str> = Vec::new();
    let mut parent = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--table" => table = Some(iter.next().ok_or("--table needs a name")?.clone()),
            "--calls-table" => {
                calls_table = Some(iter.next().ok_or("--calls-table needs a name")?.clone());
            }
            "--parent" => parent = Some(iter.next().ok_or("--parent needs an AccountSid")?.clone()),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => rest.push(other),
        }
    }
    let sid = |raw: Option<&&str>| -> Result<AccountSid, String> {
        raw.ok_or("the command needs an AccountSid")?
            .parse()
            .map_err(|e: teleapi_domain::sid::InvalidSid| e.to_string())
    };
    let command = match rest.first().copied() {
        Some("create-account") => {
            let name = rest
                .get(1)
                .ok_or("create-account needs a name")?
                .to_string();
            let parent = parent
                .as_deref()
                .map(|p| {
                    p.parse()
                        .map_err(|e: teleapi_domain::sid::InvalidSid| e.to_string())
                })
                .transpose()?;
            Command::Create { name, parent }
        }
        Some("rotate-token") => Command::Rotate(sid(rest.get(1))?),
        Some("suspend") => Command::SetStatus(sid(rest.get(1))?, AccountStatus::Suspended),
        Some("activate") => Command::SetStatus(sid(rest.get(1))?, AccountStatus::Active),
        Some("show") => Command::Show(sid(rest.get(1))?),
        Some("set-listing-shards") => {
            let account = sid(rest.get(1))?;
            let raw = rest.get(2).ok_or("set-listing-shards needs a number")?;
            let shards = raw
                .parse()
                .ok()
                .filter(|n| (1..=MAX_LISTING_SHARDS).contains(n))
                .ok_or_else(|| {
                    format!("the number of partitions is 1 to {MAX_LISTING_SHARDS}, not {raw:?}")
                })?;
            Command::SetListingShards(account, shards)
        }
        Some("set-rate-limit") => {
            let account = sid(rest.get(1))?;
            let raw = rest
                .get(2)
                .ok_or("set-rate-limit needs RATE[/BURST] or default")?;
            let limit = match *raw {
                "default" => None,
                raw => Some(crate::parse_rate_limit(raw)?),
            };
            Command::SetRateLimit(account, limit)
        }
        Some("backfill-listing") => Command::BackfillListing,
        Some("sync-usage-plans") => Command::SyncUsagePlans,
        Some(other) => return Err(format!("unknown command {other:?}\n\n{USAGE}")),
        None => return Err(USAGE.to_owned()),
    };
    if parent.is_some() && !matches!(command, Command::Create { .. }) {
        return Err("--parent goes with create-account".into());
    }
    Ok(Invocation {
        table,
        calls_table,
        command,
    })
}

/// An account as `teleapi-admin` prints it (and `POST /dev/Accounts` answers it): with its
/// AuthToken, the one place it is handed out.
pub fn describe(account: &Account) -> Value {
    json!({
        "sid": account.sid,
        "auth_token": account.auth_token.expose(),
        "friendly_name": account.friendly_name,
        "parent_account_sid": account.parent,
        "status": account.status.as_str(),
        "date_created": account.date_created.rfc2822(),
        "listing_shards": account.listing_shards,
        "rate_limit": account.rate_limit.map(|l| json!({"per_second": l.per_second, "burst": l.burst})),
        "usage_key": account.usage_key,
    })
}

async fn existing(accounts: &dyn AccountStore, sid: &AccountSid) -> Result<Account, String> {
    accounts
        .account(sid)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no account {sid}"))
}

/// Runs `command` against `accounts` (and the deployment's usage plans, when given) and returns
/// the account as it now is.
pub async fn run(
    accounts: &dyn AccountStore,
    plans: Option<&dyn UsagePlans>,
    command: Command,
) -> Result<Value, String> {
    match command {
        Command::Create { name, parent } => {
            if let Some(parent) = &parent {
                let parent = existing(accounts, parent).await?;
                if parent.parent.is_some() {
                    return Err(format!("{} is itself a subaccount", parent.sid));
                }
            }
            // Its limit is the default: it borrows a key of the pool, it needs none of its own.
            let account = Account::open(name, parent, Timestamp::now());
            match accounts.insert_account(&account).await {
                Ok(()) => Ok(describe(&account)),
                Err(InsertError::AlreadyExists) => {
                    Err("a fresh AccountSid collided; run it again".into())
                }
                Err(InsertError::Store(e)) => Err(e.to_string()),
            }
        }
        Command::Rotate(sid) => {
            let mut account = existing(accounts, &sid).await?;
            account.auth_token = AuthToken::generate();
            update(accounts, &account).await
        }
        Command::SetStatus(sid, status) => {
            let mut account = existing(accounts, &sid).await?;
            account.status = status;
            update(accounts, &account).await
        }
        Command::Show(sid) => Ok(describe(&existing(accounts, &sid).await?)),
        Command::SetListingShards(sid, shards) => {
            let mut account = existing(accounts, &sid).await?;
            // Fewer partitions would hide the calls already written to the others.
            if shards < account.listing_shards {
                return Err(format!(
                    "{sid} has {} listing partitions; they can grow, not shrink",
                    account.listing_shards
                ));
            }
            account.listing_shards = shards;
            update(accounts, &account).await
        }
        Command::SetRateLimit(sid, limit) => {
            let mut account = existing(accounts, &sid).await?;
            account.rate_limit = limit;
            match plans {
                Some(plans) => assign(accounts, plans, &mut account).await,
                None => update(accounts, &account).await,
            }
        }
        Command::BackfillListing => Err("backfill-listing runs on the Calls table".into()),
        Command::SyncUsagePlans => Err("sync-usage-plans runs on the whole Accounts table".into()),
    }
}

/// An account with a limit of its own gets its own key in that limit's plan; one without gives
/// its key, if it has one, to the pool. The account records the key it now names (or none).
async fn assign(
    accounts: &dyn AccountStore,
    plans: &dyn UsagePlans,
    account: &mut Account,
) -> Result<Value, String> {
    match (account.rate_limit, account.usage_key.clone()) {
        (Some(limit), current) => {
            account.usage_key = Some(
                plans
                    .assign(&account.sid, limit, current.as_deref())
                    .await?,
            );
        }
        (None, Some(key)) => {
            // In the pool first: a run that stops between the two leaves the account naming a
            // key lent to it, which the next run gives to the pool again (nothing is lost).
            plans.release(&account.sid, &key).await?;
            account.usage_key = None;
        }
        (None, None) => return Ok(describe(account)),
    }
    update(accounts, account).await
}

/// `sync-usage-plans`: every account with a limit of its own has its key in that limit's plan;
/// the keys of the others (a deployment from before the pool, or a run without the usage-plan
/// variables) go to the pool; then the pool is filled.
pub async fn sync_usage_plans(
    store: &DynamoStore,
    plans: &dyn UsagePlans,
) -> Result<Value, String> {
    let (mut own, mut returned) = (0, 0);
    for mut account in store.all_accounts().await.map_err(|e| e.to_string())? {
        match (account.rate_limit, &account.usage_key) {
            (Some(_), _) => own += 1,
            (None, Some(_)) => returned += 1,
            (None, None) => continue,
        }
        assign(store, plans, &mut account).await?;
    }
    let pool = plans.fill_pool().await?;
    Ok(json!({
        "accounts_with_own_keys": own,
        "keys_given_to_the_pool": returned,
        "pool_keys": pool,
    }))
}

/// `backfill-listing`: every call stored before listings were partitioned, listed again.
pub async fn backfill(calls: &DynamoStore) -> Result<Value, String> {
    let changed = calls
        .backfill_listing_keys()
        .await
        .map_err(|e| e.to_string())?;
    Ok(json!({ "calls_backfilled": changed }))
}

async fn update(accounts: &dyn AccountStore, account: &Account) -> Result<Value, String> {
    match accounts.update_account(account).await {
        Ok(true) => Ok(describe(account)),
        Ok(false) => Err(format!("no account {}", account.sid)),
        Err(e) => Err(e.to_string()),
    }
}
