//! Table names and key schemas: one definition used by the test harness, `teleapi-local` and the
//! admin tool to create tables, and mirrored by infra/template.yaml.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use teleapi_ports::StoreError;

/// The sparse index of pending intents (docs/data-model.md).
pub const PENDING_INDEX: &str = "pending";
/// The index of an account's calls, newest first, over the account's listing partitions, with
/// what a page shows (docs/data-model.md). It replaced `listing`, which held only what the
/// filters read, and that `account-calls` (docs/capacity.md, "Migrating").
pub const LISTING_INDEX: &str = "listed";
/// The sparse index of each media worker's live calls, and of its live conferences, in their
/// tables (docs/data-model.md): what is left to end when the worker's lease runs out.
pub const WORKER_INDEX: &str = "worker";
/// The sparse index of live workers by lease expiry (docs/data-model.md).
pub const LEASES_INDEX: &str = "leases";
/// The index of an account's conferences, newest first (docs/data-model.md): only conference
/// items carry its keys.
pub const CONFERENCE_LISTING_INDEX: &str = "account";
/// What the conference listing holds besides its keys: what its filters read. They change with
/// the conference's status alone; the API's changes (its intent numbers) do not write the index.
pub const CONFERENCE_LISTING_PROJECTION: [&str; 4] =
    ["FriendlyName", "Status", "DateCreated", "DateUpdated"];
/// The indexes of the recordings table (docs/data-model.md): an account's recordings and a
/// call's, newest first.
pub const RECORDING_ACCOUNT_INDEX: &str = "account";
pub const RECORDING_CALL_INDEX: &str = "call";
/// The sparse index of an account's notifications, newest first (docs/data-model.md,
/// "call_log"): only notifications carry its partition key.
pub const NOTIFICATIONS_INDEX: &str = "notifications";
/// The index of an account's numbers, newest first (docs/data-model.md, "numbers"): only a
/// number's own item carries its keys, not the item that routes its `PhoneNumber`.
pub const NUMBER_ACCOUNT_INDEX: &str = "account";
/// The index of an account's call queues, newest first (docs/data-model.md, "queues").
pub const QUEUE_ACCOUNT_INDEX: &str = "account";
/// The sparse index of the calls waiting in each queue, in the calls table (docs/data-model.md,
/// "queues"): only a waiting call carries its keys, and it holds its keys alone.
pub const QUEUE_INDEX: &str = "queue";
/// What the listing index holds besides its keys and the CallSid: what a page shows
/// (`ListedCall`: the Call resource), which its filters read too. A write
/// that changes none of these (a modification but `Mute`, most events) does not write the
/// index: `DateUpdated` moves only when what the resource shows does (`Call::updated_over`).
pub const LISTING_PROJECTION: [&str; 13] = [
    "AccountSid",
    "ParentCallSid",
    "From",
    "To",
    "Direction",
    "Status",
    "Muted",
    "AnsweredBy",
    "DateCreated",
    "DateUpdated",
    "StartTime",
    "EndTime",
    "Duration",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub accounts: String,
    pub calls: String,
    pub intents: String,
    pub idempotency: String,
    pub workers: String,
    pub conferences: String,
    pub recordings: String,
    pub call_log: String,
    pub numbers: String,
    pub queues: String,
    /// The API keys lent to accounts without a key of their own.
    pub key_pool: String,
}

impl TableNames {
    /// The environment variables the functions read their table names from.
    pub const ENV: [&'static str; 11] = [
        "TELEAPI_ACCOUNTS_TABLE",
        "TELEAPI_CALLS_TABLE",
        "TELEAPI_INTENTS_TABLE",
        "TELEAPI_IDEMPOTENCY_TABLE",
        "TELEAPI_WORKERS_TABLE",
        "TELEAPI_CONFERENCES_TABLE",
        "TELEAPI_RECORDINGS_TABLE",
        "TELEAPI_CALL_LOG_TABLE",
        "TELEAPI_NUMBERS_TABLE",
        "TELEAPI_QUEUES_TABLE",
        "TELEAPI_KEY_POOL_TABLE",
    ];

    /// Each table's environment variable and name, in [`Self::ENV`]'s order: what a function
    /// beside a local stack exports to share its tables.
    pub fn env(&self) -> [(&'static str, &str); 11] {
        let names = [
            &self.accounts,
            &self.calls,
            &self.intents,
            &self.idempotency,
            &self.workers,
            &self.conferences,
            &self.recordings,
            &self.call_log,
            &self.numbers,
            &self.queues,
            &self.key_pool,
        ];
        std::array::from_fn(|i| (Self::ENV[i], names[i].as_str()))
    }

    /// Only the accounts table, for tools that manage accounts (the other names are empty; the
    /// call operations of a store built on these names fail).
    pub fn accounts_only(accounts: impl Into<String>) -> Self {
        Self {
            accounts: accounts.into(),
            calls: String::new(),
            intents: String::new(),
            idempotency: String::new(),
            workers: String::new(),
            conferences: String::new(),
            recordings: String::new(),
            call_log: String::new(),
            numbers: String::new(),
            queues: String::new(),
            key_pool: String::new(),
        }
    }

    /// `{prefix}-accounts`, `{prefix}-calls`, …
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            accounts: format!("{prefix}-accounts"),
            calls: format!("{prefix}-calls"),
            intents: format!("{prefix}-intents"),
            idempotency: format!("{prefix}-idempotency"),
            workers: format!("{prefix}-workers"),
            conferences: format!("{prefix}-conferences"),
            recordings: format!("{prefix}-recordings"),
            call_log: format!("{prefix}-call-log"),
            numbers: format!("{prefix}-numbers"),
            queues: format!("{prefix}-queues"),
            key_pool: format!("{prefix}-key-pool"),
        }
    }

    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        Ok(Self {
            accounts: var(Self::ENV[0])?,
            calls: var(Self::ENV[1])?,
            intents: var(Self::ENV[2])?,
            idempotency: var(Self::ENV[3])?,
            workers: var(Self::ENV[4])?,
            conferences: var(Self::ENV[5])?,
            recordings: var(Self::ENV[6])?,
            call_log: var(Self::ENV[7])?,
            numbers: var(Self::ENV[8])?,
            queues: var(Self::ENV[9])?,
            key_pool: var(Self::ENV[10])?,
        })
    }
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("name and type are set")
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .expect("name and type are set")
}

fn failed(err: impl std::fmt::Debug) -> StoreError {
    StoreError::Failed(format!("{err:?}"))
}

/// Creates the tables that do not exist yet (on demand capacity, TTL on), and returns once they
/// are usable.
pub async fn create_tables(client: &Client, names: &TableNames) -> Result<(), StoreError> {
    use KeyType::{Hash, Range};
    use ScalarAttributeType::{N, S};
    let existing = client.list_tables().send().await.map_err(failed)?;
    let existing = existing.table_names();

    let index = |name: &str, hash: &str, range: &str, projected: Option<&[&str]>| {
        let projection = match projected {
            None => Projection::builder().projection_type(ProjectionType::All),
            Some([]) => Projection::builder().projection_type(ProjectionType::KeysOnly),
            Some(attributes) => Projection::builder()
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(attributes.iter().map(|a| (*a).to_owned()).collect())),
        };
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, Hash))
            .key_schema(key(range, Range))
            .projection(projection.build())
            .build()
            .map_err(failed)
    };
    let tables = [
        (&names.accounts, vec![("AccountSid", S, Hash)], vec![], None),
        (
            &names.calls,
            vec![("CallSid", S, Hash)],
            vec![
                (
                    index(
                        LISTING_INDEX,
                        "ListingKey",
                        "Listing",
                        Some(&LISTING_PROJECTION),
                    )?,
                    [("ListingKey", S), ("Listing", S)],
                ),
                (
                    index(WORKER_INDEX, "LiveWorker", "DateCreated", Some(&[]))?,
                    [("LiveWorker", S), ("DateCreated", N)],
                ),
                (
                    index(QUEUE_INDEX, "QueueSid", "QueuedAt", Some(&[]))?,
                    [("QueueSid", S), ("QueuedAt", N)],
                ),
            ],
            None,
        ),
        (
            &names.intents,
            vec![("CallSid", S, Hash), ("Seq", N, Range)],
            vec![(
                index(PENDING_INDEX, "PendingShard", "DateCreated", None)?,
                [("PendingShard", S), ("DateCreated", N)],
            )],
            Some("ExpiresAt"),
        ),
        (
            &names.idempotency,
            vec![("IdempotencyKey", S, Hash)],
            vec![],
            Some("ExpiresAt"),
        ),
        (
            &names.workers,
            vec![("WorkerId", S, Hash)],
            vec![(
                index(LEASES_INDEX, "LeaseShard", "LeaseExpiresAt", None)?,
                [("LeaseShard", S), ("LeaseExpiresAt", N)],
            )],
            Some("ExpiresAt"),
        ),
        (
            &names.conferences,
            vec![("ConferenceSid", S, Hash), ("Member", S, Range)],
            vec![
                (
                    index(
                        CONFERENCE_LISTING_INDEX,
                        "ListingAccount",
                        "Listing",
                        Some(&CONFERENCE_LISTING_PROJECTION),
                    )?,
                    [("ListingAccount", S), ("Listing", S)],
                ),
                (
                    index(WORKER_INDEX, "LiveWorker", "DateCreated", Some(&[]))?,
                    [("LiveWorker", S), ("DateCreated", N)],
                ),
            ],
            Some("ExpiresAt"),
        ),
        (
            &names.recordings,
            vec![("RecordingSid", S, Hash)],
            vec![
                (
                    index(RECORDING_ACCOUNT_INDEX, "ListingAccount", "Listing", None)?,
                    [("ListingAccount", S), ("Listing", S)],
                ),
                (
                    index(RECORDING_CALL_INDEX, "CallSid", "Listing", None)?,
                    [("CallSid", S), ("Listing", S)],
                ),
            ],
            None,
        ),
        (
            &names.call_log,
            vec![("CallSid", S, Hash), ("Entry", S, Range)],
            vec![(
                index(NOTIFICATIONS_INDEX, "NoticeAccount", "Entry", None)?,
                [("NoticeAccount", S), ("Entry", S)],
            )],
            Some("ExpiresAt"),
        ),
        (
            &names.numbers,
            vec![("NumberKey", S, Hash)],
            vec![(
                index(NUMBER_ACCOUNT_INDEX, "ListingAccount", "Listing", None)?,
                [("ListingAccount", S), ("Listing", S)],
            )],
            None,
        ),
        (
            &names.queues,
            vec![("QueueSid", S, Hash)],
            vec![(
                index(QUEUE_ACCOUNT_INDEX, "ListingAccount", "Listing", None)?,
                [("ListingAccount", S), ("Listing", S)],
            )],
            None,
        ),
        (&names.key_pool, vec![("PoolKey", S, Hash)], vec![], None),
    ];
    for (name, keys, indexes, ttl) in tables {
        if existing.iter().any(|t| t == name) {
            continue;
        }
        let mut request = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for (attr, kind, key_type) in keys {
            request = request
                .attribute_definitions(attribute(attr, kind))
                .key_schema(key(attr, key_type));
        }
        for (gsi, attributes) in indexes {
            for (attr, kind) in attributes {
                if !request
                    .get_attribute_definitions()
                    .iter()
                    .flatten()
                    .any(|d| d.attribute_name() == attr)
                {
                    request = request.attribute_definitions(attribute(attr, kind));
                }
            }
            request = request.global_secondary_indexes(gsi);
        }
        request.send().await.map_err(failed)?;
        if let Some(ttl) = ttl {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(ttl)
                        .enabled(true)
                        .build()
                        .map_err(failed)?,
                )
                .send()
                .await
                .map_err(failed)?;
        }
    }
    for name in [
        &names.accounts,
        &names.calls,
        &names.intents,
        &names.idempotency,
        &names.workers,
        &names.conferences,
        &names.recordings,
        &names.call_log,
        &names.numbers,
        &names.queues,
        &names.key_pool,
    ] {
        wait_until_active(client, name).await?;
    }
    Ok(())
}

async fn wait_until_active(client: &Client, name: &str) -> Result<(), StoreError> {
    for _ in 0..120 {
        let table = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(failed)?;
        let status = table.table().and_then(|t| t.table_status());
        if status == Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(StoreError::Failed(format!(
        "table {name} did not become active"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_named_in_the_environment_a_function_is_given() {
        let tables = TableNames::with_prefix("dev");
        let env = tables.env();
        assert_eq!(env.map(|(name, _)| name), TableNames::ENV);
        assert!(env.contains(&("TELEAPI_CALL_LOG_TABLE", "dev-call-log")));
        let mut names: Vec<&str> = env.iter().map(|(_, table)| *table).collect();
        names.dedup();
        assert_eq!(names.len(), TableNames::ENV.len(), "{env:?}");
    }
}
