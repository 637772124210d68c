//! `teleapi-admin`: accounts in a deployment's Accounts table, through the same adapters the
//! functions use. Creates the first account and subaccounts, rotates an AuthToken, suspends and
//! reactivates, spreads a busy account's listing, sets its rate limit and keeps its API key in
//! the right usage plan ([`usage_plans`]). Prints the account as JSON (with its AuthToken: the
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
  sync-usage-plans                             give every account its API key in the usage
                                               plan of its limit (once, after deploying; needs
                                               the usage-plan variables below)
  backfill-listing                             put calls stored before listings were
                                               partitioned into the listing (once, after
                                               deploying; needs --calls-table)

Options:
  --table NAME         the Accounts table (default: $TELEAPI_ACCOUNTS_TABLE, or the stack's
                       AccountsTableName output)
  --calls-table NAME   the Calls table (default: $TELEAPI_CALLS_TABLE, or the stack's
                       CallsTableName output)

Deployed, API Gateway enforces rate limits: with TELEAPI_REST_API_ID, TELEAPI_API_STAGE,
TELEAPI_DEFAULT_USAGE_PLAN_ID and TELEAPI_API_KEY_PREFIX set (the stack's outputs RestApiId,
ApiStageName, DefaultUsagePlanId and ApiKeyPrefix), create-account and set-rate-limit also put
the account's API key in the usage plan of its limit. Without them, only the Accounts table
changes.

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
            let mut account = Account::open(name, parent, Timestamp::now());
            match accounts.insert_account(&account).await {
                Ok(()) => {}
                Err(InsertError::AlreadyExists) => {
                    return Err("a fresh AccountSid collided; run it again".into());
                }
                Err(InsertError::Store(e)) => return Err(e.to_string()),
            }
            match plans {
                Some(plans) => assign(accounts, plans, &mut account).await,
                None => Ok(describe(&account)),
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

/// Puts the account's key in the plan of its limit, and records the key on the account.
async fn assign(
    accounts: &dyn AccountStore,
    plans: &dyn UsagePlans,
    account: &mut Account,
) -> Result<Value, String> {
    account.usage_key = Some(plans.assign(&account.sid, account.rate_limit).await?);
    update(accounts, account).await
}

/// `sync-usage-plans`: every account's key in the plan of its limit (accounts created before the
/// deployment had usage plans, or by a run without the usage-plan variables).
pub async fn sync_usage_plans(
    store: &DynamoStore,
    plans: &dyn UsagePlans,
) -> Result<Value, String> {
    let mut synced = 0;
    for mut account in store.all_accounts().await.map_err(|e| e.to_string())? {
        assign(store, plans, &mut account).await?;
        synced += 1;
    }
    Ok(json!({ "accounts_synced": synced }))
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
