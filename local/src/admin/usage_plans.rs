//! Accounts' API keys in the deployment's usage plans, which is where API Gateway enforces each
//! account's rate limit (docs/decisions.md, "Rate limits"). Every account has its own key,
//! named and valued `{prefix}{AccountSid}`; a key is in exactly one plan: the stack's default
//! plan, or the plan of the account's own limit, `{prefix}rate-{RATE}-burst-{BURST}`, shared by
//! the accounts with that limit (a plan's throttle applies to each of its keys separately) and
//! created the first time one needs it.

use async_trait::async_trait;
use aws_sdk_apigateway::Client;
use aws_sdk_apigateway::types::{ApiStage, ThrottleSettings};
use teleapi_domain::{AccountSid, RateLimit};

/// Where an account's requests are counted.
#[async_trait]
pub trait UsagePlans: Send + Sync {
    /// Puts the account's key (created if missing) in the plan of `limit` (the default plan for
    /// `None`) and in no other; returns the key's value, which the authorizer names.
    async fn assign(
        &self,
        account: &AccountSid,
        limit: Option<RateLimit>,
    ) -> Result<String, String>;
}

/// The deployment's usage plans, on API Gateway.
pub struct ApiGatewayPlans {
    client: Client,
    api_id: String,
    stage: String,
    default_plan: String,
    prefix: String,
}

/// The stack outputs `teleapi-admin` needs to manage usage plans, by environment variable.
pub const ENV: [&str; 4] = [
    "TELEAPI_REST_API_ID",
    "TELEAPI_API_STAGE",
    "TELEAPI_DEFAULT_USAGE_PLAN_ID",
    "TELEAPI_API_KEY_PREFIX",
];

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
    ) -> Self {
        Self {
            client,
            api_id: api_id.into(),
            stage: stage.into(),
            default_plan: default_plan.into(),
            prefix: prefix.into(),
        }
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
        let [api, stage, plan, prefix] = <[Option<String>; 4]>::try_from(values)
            .expect("four values")
            .map(Option::unwrap_or_default);
        Some(Ok(Self::new(Client::new(config), api, stage, plan, prefix)))
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
        if let Some(key) = found
            .items()
            .iter()
            .find(|k| k.name() == Some(value))
            .and_then(|k| k.id())
        {
            return Ok(key.to_owned());
        }
        let created = self
            .client
            .create_api_key()
            .name(value)
            .value(value)
            .enabled(true)
            .description("teleapi account: counts its requests against its usage plan")
            .send()
            .await
            .map_err(|e| failed("creating the API key")(e.into()))?;
        created
            .id()
            .map(str::to_owned)
            .ok_or_else(|| "API Gateway created a key without an id".into())
    }

    /// The plan of `limit`, creating it the first time.
    async fn plan(&self, limit: Option<RateLimit>) -> Result<String, String> {
        let Some(limit) = limit else {
            return Ok(self.default_plan.clone());
        };
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
        limit: Option<RateLimit>,
    ) -> Result<String, String> {
        let value = format!("{}{account}", self.prefix);
        let key = self.key(&value).await?;
        let target = self.plan(limit).await?;
        let current = self
            .client
            .get_usage_plans()
            .key_id(&key)
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
                .key_id(&key)
                .send()
                .await
                .map_err(|e| failed("taking the key out of its old plan")(e.into()))?;
        }
        if !in_target {
            self.client
                .create_usage_plan_key()
                .usage_plan_id(&target)
                .key_id(&key)
                .key_type("API_KEY")
                .send()
                .await
                .map_err(|e| failed("putting the key in its plan")(e.into()))?;
        }
        Ok(value)
    }
}
