//! Accounts' API keys in the deployment's usage plans, which is where API Gateway enforces each
//! account's rate limit (docs/decisions.md, "Rate limits"). API Gateway allows 10,000 keys a
//! region, so an account keeps a key of its own only while it has a limit of its own: its key
//! is in the plan of that limit, `{prefix}rate-{RATE}-burst-{BURST}`, shared by the accounts with
//! that limit (a plan's throttle applies to each of its keys separately) and created the first
//! time one needs it. Every other account borrows a key of the pool (teleapi_ports::key_pool),
//! whose keys are in the stack's default plan. A key's name is its value: `{prefix}{AccountSid}`
//! for a key made for an account, `{prefix}pool-{32 hex}` for one made for the pool; a key moves
//! between an account and the pool with its name.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_apigateway::Client;
use aws_sdk_apigateway::types::{ApiStage, ThrottleSettings};
use teleapi_domain::{AccountSid, RateLimit};
use teleapi_ports::key_pool::LEASE;
use teleapi_ports::{Clock, KeyPool, SystemClock};

/// Where an account's requests are counted.
#[async_trait]
pub trait UsagePlans: Send + Sync {
    /// Puts the account's own key (`current`, or a new one: made while the key quota allows,
    /// else taken from the pool) in the plan of `limit` and in no other; returns the key's
    /// value, which the authorizer names.
    async fn assign(
        &self,
        account: &AccountSid,
        limit: RateLimit,
        current: Option<&str>,
    ) -> Result<String, String>;

    /// Gives the account's own key `key` to the pool (in the default plan, lent to the account
    /// for as long as its cached authorizer answers may still name it).
    async fn release(&self, account: &AccountSid, key: &str) -> Result<(), String>;

    /// Makes keys for the pool until the key quota is used but for a hundredth of it (kept for
    /// accounts given limits of their own); returns how many keys the pool has.
    async fn fill_pool(&self) -> Result<u32, String>;
}

/// The deployment's usage plans, on API Gateway.
pub struct ApiGatewayPlans {
    client: Client,
    api_id: String,
    stage: String,
    default_plan: String,
    prefix: String,
    pool: Arc<dyn KeyPool>,
    /// API keys this AWS account may have in the region (all of them, not only this stack's).
    key_quota: u32,
    /// The time loans are judged by (the authorizer's: the system clock, deployed).
    clock: Arc<dyn Clock>,
}

/// API Gateway's quota of API keys per account and region, which AWS does not raise.
pub const KEY_QUOTA: u32 = 10_000;

/// The stack outputs `teleapi-admin` needs to manage usage plans, by environment variable.
pub const ENV: [&str; 5] = [
    "TELEAPI_REST_API_ID",
    "TELEAPI_API_STAGE",
    "TELEAPI_DEFAULT_USAGE_PLAN_ID",
    "TELEAPI_API_KEY_PREFIX",
    "TELEAPI_KEY_POOL_TABLE",
];

/// The key quota, when this account and region has another (`KEY_QUOTA` if unset).
pub const KEY_QUOTA_ENV: &str = "TELEAPI_API_KEY_QUOTA";

fn failed(what: &str) -> impl Fn(aws_sdk_apigateway::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

impl ApiGatewayPlans {
    pub fn new(
        client: Client,
        api_id: impl Into<String>,
        stage: impl Into<String>,
        default_plan: impl Into<String>,
        prefix: impl Into<String>,
        pool: Arc<dyn KeyPool>,
    ) -> Self {
        Self {
            client,
            api_id: api_id.into(),
            stage: stage.into(),
            default_plan: default_plan.into(),
            prefix: prefix.into(),
            pool,
            key_quota: KEY_QUOTA,
            clock: Arc::new(SystemClock),
        }
    }

    /// Judging loans by `clock` (a test's, shared with the authorizer it runs).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// With a key quota other than API Gateway's default (another stack of the same account and
    /// region has keys of its own; a test).
    pub fn with_key_quota(mut self, quota: u32) -> Self {
        self.key_quota = quota;
        self
    }

    /// From the environment ([`ENV`]): `None` if none of it is set (a deployment whose limits
    /// this run does not manage), an error if only some is.
    pub fn from_env(config: &aws_config::SdkConfig) -> Option<Result<Self, String>> {
        let values: Vec<Option<String>> = ENV.iter().map(|name| std::env::var(name).ok()).collect();
        if values.iter().all(Option::is_none) {
            return None;
        }
        let missing: Vec<&str> = ENV
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(name, _)| *name)
            .collect();
        if !missing.is_empty() {
            return Some(Err(format!(
                "set every one of {} (the stack's outputs), or none",
                missing.join(", ")
            )));
        }
        let [api, stage, plan, prefix, pool] = <[Option<String>; 5]>::try_from(values)
            .expect("five values")
            .map(Option::unwrap_or_default);
        let quota = match std::env::var(KEY_QUOTA_ENV) {
            Err(_) => KEY_QUOTA,
            Ok(raw) => match raw.parse() {
                Ok(quota) => quota,
                Err(_) => {
                    return Some(Err(format!(
                        "{KEY_QUOTA_ENV} is a number of keys, not {raw:?}"
                    )));
                }
            },
        };
        let tables = teleapi_adapters::dynamodb::TableNames {
            key_pool: pool,
            ..teleapi_adapters::dynamodb::TableNames::accounts_only(String::new())
        };
        let pool = teleapi_adapters::dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(config),
            tables,
        );
        Some(Ok(Self::new(
            Client::new(config),
            api,
            stage,
            plan,
            prefix,
            Arc::new(pool),
        )
        .with_key_quota(quota)))
    }

    /// How many API keys the AWS account has in the region (every stack's).
    async fn count_keys(&self) -> Result<u32, String> {
        let mut count = 0;
        let mut position = None;
        loop {
            let page = self
                .client
                .get_api_keys()
                .set_position(position.take())
                .limit(500)
                .send()
                .await
                .map_err(|e| failed("counting API keys")(e.into()))?;
            count += u32::try_from(page.items().len()).unwrap_or(u32::MAX);
            match page.position() {
                Some(next) => position = Some(next.to_owned()),
                None => return Ok(count),
            }
        }
    }

    /// Puts the key `key` (an id) in `target` and in no other plan.
    async fn move_key(&self, key: &str, target: &str) -> Result<(), String> {
        let current = self
            .client
            .get_usage_plans()
            .key_id(key)
            .send()
            .await
            .map_err(|e| failed("finding the key's usage plans")(e.into()))?;
        let mut in_target = false;
        for plan in current.items().iter().filter_map(|p| p.id()) {
            if plan == target {
                in_target = true;
                continue;
            }
            self.client
                .delete_usage_plan_key()
                .usage_plan_id(plan)
                .key_id(key)
                .send()
                .await
                .map_err(|e| failed("taking the key out of its old plan")(e.into()))?;
        }
        if !in_target {
            self.add_to_plan(key, target).await?;
        }
        Ok(())
    }

    /// Puts the key `key` (an id) in the plan `plan`.
    async fn add_to_plan(&self, key: &str, plan: &str) -> Result<(), String> {
        self.client
            .create_usage_plan_key()
            .usage_plan_id(plan)
            .key_id(key)
            .key_type("API_KEY")
            .send()
            .await
            .map_err(|e| failed("putting the key in its plan")(e.into()))?;
        Ok(())
    }

    /// The key's id, creating the key if there is none.
    async fn key(&self, value: &str) -> Result<String, String> {
        let found = self
            .client
            .get_api_keys()
            .name_query(value)
            .include_values(true)
            .send()
            .await
            .map_err(|e| failed("listing API keys")(e.into()))?;
        match found
            .items()
            .iter()
            .find(|k| k.name() == Some(value))
            .and_then(|k| k.id())
        {
            Some(key) => Ok(key.to_owned()),
            None => self.create_key(value).await,
        }
    }

    /// A new key named and valued `value`; its id.
    async fn create_key(&self, value: &str) -> Result<String, String> {
        let created = self
            .client
            .create_api_key()
            .name(value)
            .value(value)
            .enabled(true)
            .description("teleapi: counts an account's requests against its usage plan")
            .send()
            .await
            .map_err(|e| failed("creating the API key")(e.into()))?;
        created
            .id()
            .map(str::to_owned)
            .ok_or_else(|| "API Gateway created a key without an id".into())
    }

    /// The plan of `limit`, creating it the first time.
    async fn plan(&self, limit: RateLimit) -> Result<String, String> {
        let name = format!(
            "{}rate-{}-burst-{}",
            self.prefix, limit.per_second, limit.burst
        );
        let mut position = None;
        loop {
            let page = self
                .client
                .get_usage_plans()
                .set_position(position.take())
                .limit(500)
                .send()
                .await
                .map_err(|e| failed("listing usage plans")(e.into()))?;
            if let Some(id) = page
                .items()
                .iter()
                .find(|p| p.name() == Some(name.as_str()))
                .and_then(|p| p.id())
            {
                return Ok(id.to_owned());
            }
            match page.position() {
                Some(next) => position = Some(next.to_owned()),
                None => break,
            }
        }
        let created = self
            .client
            .create_usage_plan()
            .name(&name)
            .description("teleapi accounts with this rate limit (teleapi-admin set-rate-limit)")
            .api_stages(
                ApiStage::builder()
                    .api_id(&self.api_id)
                    .stage(&self.stage)
                    .build(),
            )
            .throttle(
                ThrottleSettings::builder()
                    .rate_limit(f64::from(limit.per_second))
                    .burst_limit(i32::try_from(limit.burst).unwrap_or(i32::MAX))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| failed("creating the usage plan")(e.into()))?;
        created
            .id()
            .map(str::to_owned)
            .ok_or_else(|| "API Gateway created a usage plan without an id".into())
    }
}

#[async_trait]
impl UsagePlans for ApiGatewayPlans {
    async fn assign(
        &self,
        account: &AccountSid,
        limit: RateLimit,
        current: Option<&str>,
    ) -> Result<String, String> {
        let value = match current {
            Some(value) => value.to_owned(),
            None if self.count_keys().await? < self.key_quota => {
                format!("{}{account}", self.prefix)
            }
            None => self
                .pool
                .take_last_key(self.clock.now())
                .await
                .map_err(|e| format!("taking a key from the pool: {e}"))?
                .ok_or_else(|| {
                    format!(
                        "the account's {} API keys are made and the pool's last key is lent; \
                         try again in {} s (when its loan has ended)",
                        self.key_quota,
                        LEASE.as_secs()
                    )
                })?,
        };
        let key = self.key(&value).await?;
        let target = self.plan(limit).await?;
        self.move_key(&key, &target).await?;
        Ok(value)
    }

    async fn release(&self, account: &AccountSid, key: &str) -> Result<(), String> {
        let id = self.key(key).await?;
        self.move_key(&id, &self.default_plan).await?;
        self.pool
            .add_key(key, Some((account, self.clock.now().plus(LEASE))))
            .await
            .map_err(|e| format!("giving the key to the pool: {e}"))?;
        Ok(())
    }

    async fn fill_pool(&self) -> Result<u32, String> {
        let reserve = self.key_quota.div_ceil(100);
        let missing = self
            .key_quota
            .saturating_sub(reserve)
            .saturating_sub(self.count_keys().await?);
        for _ in 0..missing {
            let value = format!(
                "{}pool-{}",
                self.prefix,
                teleapi_domain::sid::random_hex32()
            );
            // A new name: the key is made and put in the default plan, nothing looked up.
            let key = self.create_key(&value).await?;
            self.add_to_plan(&key, &self.default_plan).await?;
            self.pool
                .add_key(&value, None)
                .await
                .map_err(|e| format!("adding a key to the pool: {e}"))?;
        }
        self.pool
            .pool_size()
            .await
            .map_err(|e| format!("reading the pool's size: {e}"))
    }
}
