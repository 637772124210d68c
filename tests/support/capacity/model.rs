//! The capacity and cost model: the measured operations ([`super::drive`]) priced and held
//! against AWS's quotas, for the deployment infra/template.yaml describes. Prints markdown;
//! docs/capacity.md keeps the latest and explains it. Nothing here is timed: request counts and
//! item sizes are measured, latencies are stated assumptions, so the output changes only when
//! the code, the template or an assumption does.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_norway::Value as Yaml;

use super::drive::{Invocation, Measured};

// ---------------------------------------------------------------- quotas, prices, assumptions

/// When the quotas and prices below were read.
pub const AS_OF: &str = "2026-12-02";

/// An AWS quota: its default, whether AWS raises it on request, and where it is written.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub name: &'static str,
    pub default: f64,
    pub adjustable: bool,
    pub source: &'static str,
}

pub const API_GATEWAY_RPS: Quota = Quota {
    name: "API Gateway requests/s per account and region (all APIs)",
    default: 10_000.0,
    adjustable: true,
    source: "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html",
};
pub const LAMBDA_CONCURRENCY: Quota = Quota {
    name: "Lambda concurrent executions per region",
    default: 1_000.0,
    adjustable: true,
    source: "https://docs.aws.amazon.com/lambda/latest/dg/limits.html",
};
pub const ESM_MAX_CONCURRENCY: Quota = Quota {
    name: "SQS event source mapping MaximumConcurrency (2 to 1,000)",
    default: 1_000.0,
    adjustable: false,
    source: "https://docs.aws.amazon.com/lambda/latest/api/API_ScalingConfig.html",
};
pub const SQS_FIFO_HIGH_THROUGHPUT: Quota = Quota {
    name: "SQS FIFO high-throughput API calls/s per queue and action (us-east-1)",
    default: 70_000.0,
    adjustable: false,
    source: "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html",
};
pub const DYNAMODB_TABLE_UNITS: Quota = Quota {
    name: "DynamoDB on-demand read or write units/s per table (and per index)",
    default: 40_000.0,
    adjustable: true,
    source: "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html",
};
pub const PARTITION_WRITES: Quota = Quota {
    name: "DynamoDB write units/s per partition key",
    default: 1_000.0,
    adjustable: false,
    source: "https://repost.aws/knowledge-center/dynamodb-spiky-workloads-short-intervals",
};
pub const PARTITION_READS: Quota = Quota {
    name: "DynamoDB read units/s per partition key",
    default: 3_000.0,
    adjustable: false,
    source: "https://repost.aws/knowledge-center/dynamodb-spiky-workloads-short-intervals",
};
pub const USAGE_PLAN_RATE: Quota = Quota {
    name: "Requests/s one account's usage plan may allow (bounded by the account-level throttle)",
    default: 10_000.0,
    adjustable: false,
    source: "https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html",
};

/// Where the regions' defaults differ from us-east-1's, which the tables above assume: API
/// Gateway's account-level throttle (2,500 requests/s in thirteen newer regions) and the FIFO
/// queues' high-throughput quota (per queue and action; not adjustable).
pub struct Region {
    pub names: &'static str,
    pub api_gateway: f64,
    pub fifo: f64,
}

pub const REGIONS: [Region; 6] = [
    Region {
        names: "us-east-1, us-west-2, eu-west-1",
        api_gateway: 10_000.0,
        fifo: 70_000.0,
    },
    Region {
        names: "us-east-2, eu-central-1",
        api_gateway: 10_000.0,
        fifo: 19_000.0,
    },
    Region {
        names: "ap-south-1, ap-southeast-1, ap-southeast-2, ap-northeast-1",
        api_gateway: 10_000.0,
        fifo: 9_000.0,
    },
    Region {
        names: "eu-west-2, sa-east-1",
        api_gateway: 10_000.0,
        fifo: 4_500.0,
    },
    Region {
        names: "every other region but the thirteen below",
        api_gateway: 10_000.0,
        fifo: 2_400.0,
    },
    Region {
        names: "af-south-1, eu-south-1, eu-south-2, eu-central-2, ap-southeast-3, ap-southeast-4, ap-southeast-5, ap-southeast-7, ap-south-2, me-central-1, il-central-1, ca-west-1, mx-central-1",
        api_gateway: 2_500.0,
        fifo: 2_400.0,
    },
];

impl Region {
    /// The lowest ceiling of `limits` at this region's defaults, and what sets it.
    fn ceiling(&self, limits: &[Limit]) -> (f64, String) {
        limits
            .iter()
            .map(|limit| {
                let quota = match limit.quota.name {
                    name if name == API_GATEWAY_RPS.name => self.api_gateway,
                    name if name == SQS_FIFO_HIGH_THROUGHPUT.name => self.fifo,
                    _ => limit.quota.default,
                };
                (limit.ceiling(quota), limit.resource.clone())
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((f64::INFINITY, String::new()))
    }
}

/// On-demand prices, us-east-1, US dollars per unit.
pub struct Prices {
    pub api_request: f64,
    pub lambda_request: f64,
    pub lambda_gb_second: f64,
    pub write_unit: f64,
    pub read_unit: f64,
    pub sqs_fifo_request: f64,
    pub sqs_standard_request: f64,
    /// S3 Standard: PUT (and COPY, POST, LIST) requests; GET requests. DELETE is free.
    pub s3_put: f64,
    pub s3_get: f64,
}

pub const HTTP_API_PER_MILLION: f64 = 1.00;
pub const REST_API_PER_MILLION: f64 = 3.50;

fn prices(api_per_million: f64) -> Prices {
    Prices {
        api_request: api_per_million / 1e6,
        lambda_request: 0.20 / 1e6,
        lambda_gb_second: 0.000_013_333_4,
        write_unit: 0.625 / 1e6,
        read_unit: 0.125 / 1e6,
        sqs_fifo_request: 0.50 / 1e6,
        sqs_standard_request: 0.40 / 1e6,
        s3_put: 0.005 / 1e3,
        s3_get: 0.0004 / 1e3,
    }
}

/// Assumed latency of one request, in milliseconds: what an invocation waits for. DynamoDB
/// answers in single-digit milliseconds; a transaction takes two phases; SQS sends take a few
/// milliseconds more; the application's answer to a callback is the application's.
pub fn latency_ms(action: &str) -> f64 {
    match action {
        "GetItem" => 4.0,
        "Query" | "PutItem" | "UpdateItem" | "DeleteItem" => 6.0,
        "BatchGetItem" => 8.0,
        "TransactWriteItems" => 12.0,
        "SendMessage" => 8.0,
        "PutObject" | "GetObject" => 20.0,
        "DeleteObject" => 15.0,
        _ => 6.0,
    }
}
/// The application's answer to a callback.
pub const APPLICATION_MS: f64 = 200.0;
/// The handler's own work per message or request.
pub const HANDLER_MS: f64 = 2.0;
/// Messages per batch when the queues are busy (the event source mappings' BatchSize; a media
/// worker is assumed to receive and delete its commands ten at a time too).
pub const WORKER_BATCH: f64 = 10.0;
/// How long an account read is reused by a warm function (TELEAPI_ACCOUNT_CACHE_SECONDS).
pub const ACCOUNT_CACHE_SECONDS: f64 = 10.0;

/// The traffic profile: per new call, what else happens.
pub const PROFILE_CALLS_PER_SECOND: f64 = 1_000.0;
pub const PROFILE_MODIFICATIONS_PER_CALL: f64 = 2.0;
/// Listing reads are 20% of the API's requests: one page per four other requests.
pub const PROFILE_LIST_SHARE: f64 = 0.20;
/// The index of an account's calls (`table/index`), keyed by its listing partitions.
const LISTING: &str = "calls/listed";

/// The listing partitions of the profile's account (`teleapi-admin set-listing-shards`).
pub const PROFILE_LISTING_SHARDS: f64 = 16.0;
/// Media workers heartbeating: 1,000 new calls a second of two minutes each are 120,000 live
/// calls, 240 workers of 500 calls; 1,000 leaves room for smaller workers.
pub const PROFILE_WORKERS: f64 = 1_000.0;
/// Seconds in the month the fixed costs are counted over (30 days).
const MONTH_SECONDS: f64 = 30.0 * 86_400.0;

// ---------------------------------------------------------------- the deployment

/// What the template says that the model needs.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub memory_gb: f64,
    pub api_per_million: f64,
    pub api_kind: &'static str,
    pub max_concurrency: BTreeMap<String, f64>,
}

fn yaml<'a>(value: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter()
        .fold(value, |v, key| v.get(*key).unwrap_or(&Yaml::Null))
}

impl Deployment {
    pub fn from_template() -> Self {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
        let template: Yaml =
            serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let memory_mb = yaml(&template, &["Globals", "Function", "MemorySize"])
            .as_f64()
            .unwrap_or(128.0);
        let (api_kind, api_per_million) =
            match yaml(&template, &["Resources", "Api", "Type"]).as_str() {
                Some("AWS::Serverless::Api") => ("REST API", REST_API_PER_MILLION),
                _ => ("HTTP API", HTTP_API_PER_MILLION),
            };
        let mut max_concurrency = BTreeMap::new();
        for (id, resource) in yaml(&template, &["Resources"]).as_mapping().unwrap() {
            let binary = yaml(resource, &["Metadata", "BuildProperties", "Binary"]).as_str();
            let events = yaml(resource, &["Properties", "Events"]);
            for (_, event) in events.as_mapping().into_iter().flatten() {
                if let Some(cap) = yaml(
                    event,
                    &["Properties", "ScalingConfig", "MaximumConcurrency"],
                )
                .as_f64()
                {
                    let name = binary.unwrap_or(id.as_str().unwrap_or_default());
                    max_concurrency.insert(name.to_owned(), cap);
                }
            }
        }
        Self {
            memory_gb: memory_mb / 1024.0,
            api_per_million,
            api_kind,
            max_concurrency,
        }
    }
}

// ---------------------------------------------------------------- one operation, priced

/// One operation's use of every resource, as the deployment runs it.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub api_requests: f64,
    pub invocations: f64,
    /// Concurrency-seconds: how long the operation holds an execution environment.
    pub concurrency_seconds: f64,
    /// The same, by function.
    pub by_function: BTreeMap<String, f64>,
    pub dynamodb_requests: BTreeMap<String, f64>,
    pub read_units: BTreeMap<String, f64>,
    pub write_units: BTreeMap<String, f64>,
    /// SQS requests by `queue action`, ours and the consumers' (modelled).
    pub sqs: BTreeMap<String, f64>,
    /// S3 requests by `bucket action`.
    pub s3: BTreeMap<String, f64>,
    pub http_requests: f64,
    /// Duration of one invocation's work on this operation, ms.
    pub duration_ms: f64,
}

impl Usage {
    fn add(&mut self, other: &Usage, times: f64) {
        let merge = |a: &mut BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            for (k, v) in b {
                *a.entry(k.clone()).or_default() += v * times;
            }
        };
        self.api_requests += other.api_requests * times;
        self.invocations += other.invocations * times;
        self.concurrency_seconds += other.concurrency_seconds * times;
        merge(&mut self.by_function, &other.by_function);
        merge(&mut self.dynamodb_requests, &other.dynamodb_requests);
        merge(&mut self.read_units, &other.read_units);
        merge(&mut self.write_units, &other.write_units);
        merge(&mut self.sqs, &other.sqs);
        merge(&mut self.s3, &other.s3);
        self.http_requests += other.http_requests * times;
    }

    fn sum(map: &BTreeMap<String, f64>, prefix: &str) -> f64 {
        map.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// Cost in dollars, by item.
    pub fn cost(&self, deployment: &Deployment) -> BTreeMap<&'static str, f64> {
        let p = prices(deployment.api_per_million);
        let fifo: f64 = self
            .sqs
            .iter()
            .filter(|(k, _)| !k.starts_with("callbacks"))
            .map(|(_, v)| v)
            .sum();
        let standard = Self::sum(&self.sqs, "callbacks");
        BTreeMap::from([
            ("API Gateway", self.api_requests * p.api_request),
            (
                "Lambda",
                self.invocations * p.lambda_request
                    + self.concurrency_seconds * deployment.memory_gb * p.lambda_gb_second,
            ),
            (
                "DynamoDB",
                self.write_units.values().sum::<f64>() * p.write_unit
                    + self.read_units.values().sum::<f64>() * p.read_unit,
            ),
            (
                "SQS",
                fifo * p.sqs_fifo_request + standard * p.sqs_standard_request,
            ),
            (
                "S3",
                Self::sum(&self.s3, "recordings PutObject") * p.s3_put
                    + Self::sum(&self.s3, "recordings GetObject") * p.s3_get,
            ),
        ])
    }

    pub fn total_cost(&self, deployment: &Deployment) -> f64 {
        self.cost(deployment).values().sum()
    }
}

/// An operation's usage: what was measured, and what the deployment adds around it (the API
/// request, the invocation, the consumers' SQS requests).
pub fn usage(op: &Measured) -> Usage {
    let mut usage = Usage::default();
    let mut waited = HANDLER_MS;
    for billed in &op.billed {
        waited += latency_ms(&billed.action);
        match billed.service {
            "dynamodb" => {
                *usage
                    .dynamodb_requests
                    .entry(billed.action.clone())
                    .or_default() += 1.0;
                for (name, units) in &billed.read_units {
                    *usage.read_units.entry(name.clone()).or_default() += units;
                }
                for (name, units) in &billed.write_units {
                    *usage.write_units.entry(name.clone()).or_default() += units;
                }
            }
            _ => {
                let queue = billed.queue.clone().unwrap_or_default();
                *usage
                    .sqs
                    .entry(format!("{queue} {}", billed.action))
                    .or_default() += billed.sqs_requests as f64;
                if (queue == "commands" || queue == "worker") && billed.action == "SendMessage" {
                    // The media worker receives and deletes it, ten at a time.
                    *usage
                        .sqs
                        .entry(format!("{queue} ReceiveMessage"))
                        .or_default() += 1.0 / WORKER_BATCH;
                    *usage
                        .sqs
                        .entry(format!("{queue} DeleteMessageBatch"))
                        .or_default() += 1.0 / WORKER_BATCH;
                }
            }
        }
    }
    for (action, count) in &op.s3 {
        waited += latency_ms(action) * *count as f64;
        *usage.s3.entry(format!("recordings {action}")).or_default() += *count as f64;
    }
    usage.http_requests = op.http_requests as f64;
    waited += usage.http_requests * APPLICATION_MS;
    usage.duration_ms = waited;
    match op.invoked_by {
        Invocation::Api => {
            usage.api_requests = 1.0;
            usage.invocations = 1.0;
            usage.concurrency_seconds = waited / 1000.0;
        }
        Invocation::Queue => {
            // A batch of ten messages of different calls runs them side by side: one
            // invocation for ten, about as long as one message.
            usage.invocations = 1.0 / WORKER_BATCH;
            usage.concurrency_seconds = waited / 1000.0 / WORKER_BATCH;
            let queue = if op.function == "callback" {
                "callbacks"
            } else {
                // The worker sent the event.
                *usage.sqs.entry("events SendMessage".into()).or_default() += 1.0;
                "events"
            };
            *usage
                .sqs
                .entry(format!("{queue} ReceiveMessage"))
                .or_default() += 1.0 / WORKER_BATCH;
            *usage
                .sqs
                .entry(format!("{queue} DeleteMessageBatch"))
                .or_default() += 1.0 / WORKER_BATCH;
        }
        Invocation::Schedule | Invocation::Authorizer => {
            usage.invocations = 1.0;
            usage.concurrency_seconds = waited / 1000.0;
        }
        Invocation::WithinSchedule => usage.concurrency_seconds = waited / 1000.0,
        Invocation::Worker => {}
    }
    usage
        .by_function
        .insert(op.function.to_owned(), usage.concurrency_seconds);
    usage
}

// ---------------------------------------------------------------- mixes and limits

fn find<'a>(ops: &'a [Measured], name: &str) -> &'a Measured {
    ops.iter()
        .find(|op| op.name == name)
        .unwrap_or_else(|| panic!("no operation {name:?}"))
}

/// A unit of traffic: operations and how many of each.
pub fn mix(ops: &[Measured], parts: &[(&str, f64)]) -> Usage {
    let mut total = Usage::default();
    for (name, times) in parts {
        total.add(&usage(find(ops, name)), *times);
    }
    total
}

/// The measured heartbeat, the reconciler's run and a further lease sweep within it.
const HEARTBEAT_OP: &str = "event: worker.heartbeat (lease renewed)";
const RECONCILER_RUN: &str = "reconciler run (nothing pending, no lease expired)";
const LEASE_SWEEP: &str = "reconciler: a further lease sweep (none expired)";
/// An active account's authorizer run, once each `ReauthorizeEvery` (infra/template.yaml).
const AUTHORIZER_RUN: &str = "authorizer: an active account borrows a key of the pool (each 300 s)";
const REAUTHORIZE_SECONDS: f64 = 300.0;
const HEARTBEAT_SECONDS: f64 = teleapi_domain::worker::HEARTBEAT_INTERVAL.as_secs_f64();
/// Lease sweeps per one-minute run, and the wait between them.
const LEASE_SWEEP_SECONDS: f64 = teleapi_pipeline::reconcile::LEASE_SWEEP_INTERVAL.as_secs_f64();
const SWEEPS_PER_RUN: f64 = 60.0 / LEASE_SWEEP_SECONDS;

pub const MODIFICATION: [(&str, f64); 2] = [
    ("modify: redirect (Url)", 1.0),
    ("event: command.applied", 1.0),
];

/// One new call of the profile: created through the API, its four call events, the outcome of
/// each command (its dial and its modifications), its RCML fetches logged (the first document
/// and one a redirect), its completed StatusCallback, and its share of listing reads.
pub fn profile_call() -> Vec<(&'static str, f64)> {
    let api_writes = 1.0 + PROFILE_MODIFICATIONS_PER_CALL;
    vec![
        ("create a call", 1.0),
        ("event: call.initiated (an API call)", 1.0),
        ("event: call.status ringing", 1.0),
        ("event: call.status in-progress", 1.0),
        ("modify: redirect (Url)", PROFILE_MODIFICATIONS_PER_CALL),
        (
            "event: command.applied",
            1.0 + PROFILE_MODIFICATIONS_PER_CALL,
        ),
        (
            "event: http.request (an RCML fetch, logged)",
            1.0 + PROFILE_MODIFICATIONS_PER_CALL,
        ),
        ("event: call.status completed (+ StatusCallback job)", 1.0),
        ("callback: StatusCallback delivered", 1.0),
        (
            "list page: 50 calls, 16 listing partitions",
            api_writes * PROFILE_LIST_SHARE / (1.0 - PROFILE_LIST_SHARE),
        ),
    ]
}

/// A limit on throughput: a quota, and what one unit of traffic uses of it.
#[derive(Debug, Clone)]
pub struct Limit {
    pub resource: String,
    pub quota: Quota,
    pub per_unit: f64,
}

impl Limit {
    pub fn ceiling(&self, quota: f64) -> f64 {
        if self.per_unit <= 0.0 {
            f64::INFINITY
        } else {
            quota / self.per_unit
        }
    }
}

/// The deployment-wide limits one unit of `traffic` runs into.
pub fn deployment_limits(traffic: &Usage, deployment: &Deployment) -> Vec<Limit> {
    let mut limits = vec![
        Limit {
            resource: "API Gateway".into(),
            quota: API_GATEWAY_RPS,
            per_unit: traffic.api_requests,
        },
        Limit {
            resource: "Lambda concurrency".into(),
            quota: LAMBDA_CONCURRENCY,
            per_unit: traffic.concurrency_seconds,
        },
    ];
    for (function, cap) in &deployment.max_concurrency {
        limits.push(Limit {
            resource: format!("{function} MaximumConcurrency (template: {cap})"),
            quota: Quota {
                default: *cap,
                ..ESM_MAX_CONCURRENCY
            },
            per_unit: traffic.by_function.get(function).copied().unwrap_or(0.0),
        });
    }
    for (name, per_unit) in &traffic.sqs {
        if !name.starts_with("callbacks") {
            limits.push(Limit {
                resource: format!("SQS {name}"),
                quota: SQS_FIFO_HIGH_THROUGHPUT,
                per_unit: *per_unit,
            });
        }
    }
    for (kind, units) in [
        ("write", &traffic.write_units),
        ("read", &traffic.read_units),
    ] {
        for (name, per_unit) in units {
            limits.push(Limit {
                resource: format!("DynamoDB {name} {kind} units"),
                quota: DYNAMODB_TABLE_UNITS,
                per_unit: *per_unit,
            });
        }
    }
    // Hot keys shared by every account: the pending index's partitions.
    let pending = traffic
        .write_units
        .get("intents/pending")
        .copied()
        .unwrap_or(0.0);
    limits.push(Limit {
        resource: format!(
            "DynamoDB intents/pending, one of {} partitions",
            teleapi_adapters::dynamodb::PENDING_SHARDS
        ),
        quota: PARTITION_WRITES,
        per_unit: pending / f64::from(teleapi_adapters::dynamodb::PENDING_SHARDS),
    });
    limits
}

/// The limits of one account: the deployment's, and its own keys (listing partitions, its
/// account item, its usage plan).
pub fn account_limits(traffic: &Usage, deployment: &Deployment, shards: f64) -> Vec<Limit> {
    let mut limits = deployment_limits(traffic, deployment);
    limits.push(Limit {
        resource: format!("DynamoDB {LISTING}, one of the account's {shards} partitions"),
        quota: PARTITION_WRITES,
        per_unit: traffic.write_units.get(LISTING).copied().unwrap_or(0.0) / shards,
    });
    limits.push(Limit {
        resource: "DynamoDB accounts, the account's item (cache refreshes)".into(),
        quota: PARTITION_READS,
        per_unit: traffic.concurrency_seconds / ACCOUNT_CACHE_SECONDS,
    });
    limits.push(Limit {
        resource: "the account's usage plan (rate limit)".into(),
        quota: USAGE_PLAN_RATE,
        per_unit: traffic.api_requests,
    });
    limits
}

/// The lowest ceiling at default quotas, and every limit sorted by it.
fn binding(limits: &[Limit]) -> Vec<(f64, &Limit)> {
    let mut sorted: Vec<(f64, &Limit)> = limits
        .iter()
        .map(|l| (l.ceiling(l.quota.default), l))
        .filter(|(c, _)| c.is_finite())
        .collect();
    sorted.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    sorted
}

// ---------------------------------------------------------------- output

fn number(value: f64) -> String {
    if !value.is_finite() {
        return "unlimited".into();
    }
    let rounded = value.round() as i64;
    let digits = rounded.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0 { format!("-{out}") } else { out }
}

fn units(map: &BTreeMap<String, f64>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn requests(map: &BTreeMap<String, f64>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| {
            if (v - v.round()).abs() < 1e-9 {
                format!("{k} {v}")
            } else {
                format!("{k} {v:.2}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ports(op: &Measured) -> String {
    op.ports
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Limits and their ceilings, lowest first; with the quota a target needs where it is adjustable.
fn limit_table(out: &mut String, limits: &[Limit], target: f64, unit: &str) -> (f64, f64) {
    let sorted = binding(limits);
    writeln!(
        out,
        "| resource | quota | used per {unit} | ceiling ({unit}/s) | for {} {unit}/s |",
        number(target)
    )
    .unwrap();
    writeln!(out, "|---|---:|---:|---:|---|").unwrap();
    let mut with_increases = f64::INFINITY;
    for (ceiling, limit) in sorted.iter().take(8) {
        let needed = limit.per_unit * target;
        let fix = if *ceiling >= target {
            "met".to_owned()
        } else if limit.quota.adjustable {
            format!("ask AWS for {}", number(needed.max(limit.quota.default)))
        } else {
            format!(
                "NOT MET: {:.0}% short, not adjustable",
                100.0 * (1.0 - ceiling / target)
            )
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {fix} |",
            limit.resource,
            number(limit.quota.default),
            format_args!("{:.4}", limit.per_unit),
            number(*ceiling)
        )
        .unwrap();
    }
    for (ceiling, limit) in &sorted {
        let raised = if limit.quota.adjustable && *ceiling < target {
            target
        } else {
            *ceiling
        };
        with_increases = with_increases.min(raised);
    }
    (
        sorted.first().map_or(f64::INFINITY, |s| s.0),
        with_increases,
    )
}

/// The model, as markdown.
pub fn render(ops: &[Measured], deployment: &Deployment) -> String {
    let mut out = String::new();
    let w = &mut out;
    writeln!(w, "Generated by `tests/bench capacity` from the operations as they ran on the memory twins and on moto; quotas and prices as of {AS_OF}; {} at {} MB, on-demand tables, high-throughput FIFO queues.", deployment.api_kind, (deployment.memory_gb * 1024.0).round()).unwrap();
    writeln!(w).unwrap();

    // Per operation.
    writeln!(w, "### Per operation\n").unwrap();
    writeln!(w, "| operation | function | port calls (memory) | DynamoDB requests (moto) | read units | write units | SQS and S3 requests | HTTP | Lambda invocations | cost per million |").unwrap();
    writeln!(w, "|---|---|---|---|---|---|---|---|---:|---:|").unwrap();
    for op in ops {
        let u = usage(op);
        writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | ${:.2} |",
            op.name,
            op.function,
            ports(op),
            requests(&u.dynamodb_requests),
            units(&u.read_units),
            units(&u.write_units),
            requests(&u.sqs.clone().into_iter().chain(u.s3.clone()).collect()),
            u.http_requests,
            format_args!("{:.1}", u.invocations),
            u.total_cost(deployment) * 1e6
        )
        .unwrap();
    }
    writeln!(w).unwrap();
    let written: BTreeMap<String, u64> = ops
        .iter()
        .flat_map(|op| op.billed.iter())
        .flat_map(|b| b.items_written.iter().cloned())
        .fold(BTreeMap::new(), |mut m, (table, size)| {
            let e = m.entry(table).or_insert(0);
            *e = (*e).max(size);
            m
        });
    writeln!(
        w,
        "Largest item written, by table: {}.",
        written
            .iter()
            .map(|(t, s)| format!("{t} {s} bytes"))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    writeln!(w).unwrap();

    // Ceilings.
    let modification = mix(ops, &MODIFICATION);
    let call = mix(ops, &profile_call());
    writeln!(w, "### Ceilings of the deployment\n").unwrap();
    writeln!(w, "A modification is `modify: redirect` and the worker's `command.applied`; a call is the profile's: created, four call events, three command outcomes, {PROFILE_MODIFICATIONS_PER_CALL} modifications, {} RCML fetches logged, one StatusCallback and {:.2} list pages. Lowest ceilings first, at default quotas.\n", 1.0 + PROFILE_MODIFICATIONS_PER_CALL, profile_call().last().unwrap().1).unwrap();
    writeln!(w, "**Modifications per second**\n").unwrap();
    let (m_default, m_raised) = limit_table(
        w,
        &deployment_limits(&modification, deployment),
        10_000.0,
        "modification",
    );
    writeln!(w).unwrap();
    writeln!(
        w,
        "**New calls per second** (each with the profile's traffic)\n"
    )
    .unwrap();
    let (c_default, c_raised) =
        limit_table(w, &deployment_limits(&call, deployment), 2_000.0, "call");
    writeln!(w).unwrap();
    writeln!(w, "**By region**, at each region's default quotas (the tables above are us-east-1's): API Gateway's account-level throttle and the FIFO queues' high-throughput quota (per queue and API action, not adjustable) differ; the lowest ceiling and what sets it.\n").unwrap();
    writeln!(
        w,
        "| regions | API Gateway requests/s | FIFO API calls/s | modifications/s | new calls/s |"
    )
    .unwrap();
    writeln!(w, "|---|---:|---:|---|---|").unwrap();
    for region in &REGIONS {
        let (mods, mods_by) = region.ceiling(&deployment_limits(&modification, deployment));
        let (calls, calls_by) = region.ceiling(&deployment_limits(&call, deployment));
        writeln!(
            w,
            "| {} | {} | {} | {} ({mods_by}) | {} ({calls_by}) |",
            region.names,
            number(region.api_gateway),
            number(region.fifo),
            number(mods),
            number(calls)
        )
        .unwrap();
    }
    writeln!(w).unwrap();

    writeln!(w, "### Ceilings of one account\n").unwrap();
    writeln!(w, "The deployment's limits and the account's own keys: its listing partitions, its account item, its usage plan.\n").unwrap();
    writeln!(w, "**New calls per second, 16 listing partitions**\n").unwrap();
    let (a_calls, a_calls_raised) = limit_table(
        w,
        &account_limits(&call, deployment, PROFILE_LISTING_SHARDS),
        1_000.0,
        "call",
    );
    writeln!(w).unwrap();
    let one = account_limits(&call, deployment, 1.0);
    let one_partition = one
        .iter()
        .find(|l| l.resource.contains("partitions") && l.resource.contains(LISTING))
        .map(|l| l.ceiling(l.quota.default))
        .unwrap_or(f64::INFINITY);
    writeln!(w, "With one listing partition (the default) an account's calls stop at {} a second (the partition's 1,000 writes), {} at half of it.\n", number(one_partition), number(one_partition / 2.0)).unwrap();
    writeln!(w, "**Modifications per second**\n").unwrap();
    let (a_mods, a_mods_raised) = limit_table(
        w,
        &account_limits(&modification, deployment, 1.0),
        5_000.0,
        "modification",
    );
    writeln!(w).unwrap();

    // Hot keys under the profile.
    let heartbeat = usage(find(ops, HEARTBEAT_OP));
    writeln!(w, "### Busiest partition keys under the profile\n").unwrap();
    writeln!(w, "{} new calls a second, all of one account with {PROFILE_LISTING_SHARDS} listing partitions (the worst case: spread over accounts, every figure but the shared `pending` partitions is lower), on {} media workers. A call's own items take its writes over its whole life, counted here as if within one second.\n", number(PROFILE_CALLS_PER_SECOND), number(PROFILE_WORKERS)).unwrap();
    writeln!(
        w,
        "| table or index | partition key | busiest key, units/s | limit | share |"
    )
    .unwrap();
    writeln!(w, "|---|---|---:|---:|---:|").unwrap();
    let rate = PROFILE_CALLS_PER_SECOND;
    let pending = f64::from(teleapi_adapters::dynamodb::PENDING_SHARDS);
    let hot = [
        (
            "accounts",
            "AccountSid (the account)",
            call.concurrency_seconds * rate / ACCOUNT_CACHE_SECONDS,
            PARTITION_READS.default,
            "reads",
        ),
        (
            "calls",
            "CallSid (one call)",
            call.write_units.get("calls").copied().unwrap_or(0.0),
            PARTITION_WRITES.default,
            "writes",
        ),
        (
            LISTING,
            "ListingKey (account#partition)",
            call.write_units.get(LISTING).copied().unwrap_or(0.0) * rate / PROFILE_LISTING_SHARDS,
            PARTITION_WRITES.default,
            "writes",
        ),
        (
            LISTING,
            "ListingKey (account#partition)",
            call.read_units.get(LISTING).copied().unwrap_or(0.0) * rate / PROFILE_LISTING_SHARDS,
            PARTITION_READS.default,
            "reads",
        ),
        (
            "intents",
            "CallSid (one call)",
            call.write_units.get("intents").copied().unwrap_or(0.0),
            PARTITION_WRITES.default,
            "writes",
        ),
        (
            "intents/pending",
            "PendingShard (one of 64)",
            call.write_units
                .get("intents/pending")
                .copied()
                .unwrap_or(0.0)
                * rate
                / pending,
            PARTITION_WRITES.default,
            "writes",
        ),
        (
            "workers/leases",
            "LeaseShard (`live`, every worker)",
            heartbeat
                .write_units
                .get("workers/leases")
                .copied()
                .unwrap_or(0.0)
                * PROFILE_WORKERS
                / HEARTBEAT_SECONDS,
            PARTITION_WRITES.default,
            "writes",
        ),
        (
            "idempotency",
            "AccountSid:key (one request)",
            usage(find(ops, "modify: mute, with an Idempotency-Key"))
                .write_units
                .get("idempotency")
                .copied()
                .unwrap_or(0.0),
            PARTITION_WRITES.default,
            "writes",
        ),
    ];
    let mut worst: f64 = 0.0;
    for (table, key, load, limit, kind) in hot {
        let share = load / limit;
        worst = worst.max(share);
        writeln!(
            w,
            "| {table} | {key} | {load:.1} {kind} | {} | {:.1}% |",
            number(limit),
            share * 100.0
        )
        .unwrap();
    }
    writeln!(w).unwrap();

    // Cost.
    writeln!(w, "### Cost\n").unwrap();
    let floor_write: f64 = find(ops, "modify: redirect (Url)")
        .billed
        .iter()
        .filter(|b| b.action == "TransactWriteItems")
        .flat_map(|b| b.write_units.iter())
        .filter(|(name, _)| !name.contains('/'))
        .map(|(_, units)| units)
        .sum();
    let p = prices(deployment.api_per_million);
    let floor_ms = HANDLER_MS + latency_ms("TransactWriteItems") + latency_ms("SendMessage");
    let floor = p.api_request
        + p.lambda_request
        + floor_ms / 1000.0 * deployment.memory_gb * p.lambda_gb_second
        + floor_write * p.write_unit
        + p.sqs_fifo_request;
    let modify = usage(find(ops, "modify: redirect (Url)"));
    let ratio = modify.total_cost(deployment) / floor;
    writeln!(
        w,
        "| per million | API Gateway | Lambda | DynamoDB | SQS | total |"
    )
    .unwrap();
    writeln!(w, "|---|---:|---:|---:|---:|---:|").unwrap();
    for (name, usage) in [
        ("modification requests (the API operation)", &modify),
        ("modifications, with their outcome event", &modification),
        ("calls of the profile", &call),
    ] {
        let cost = usage.cost(deployment);
        writeln!(
            w,
            "| {name} | ${:.2} | ${:.2} | ${:.2} | ${:.2} | **${:.2}** |",
            cost["API Gateway"] * 1e6,
            cost["Lambda"] * 1e6,
            cost["DynamoDB"] * 1e6,
            cost["SQS"] * 1e6,
            usage.total_cost(deployment) * 1e6
        )
        .unwrap();
    }
    writeln!(w).unwrap();
    writeln!(w, "The floor of a modification: one API request, one invocation of {floor_ms} ms, the one conditional write the design requires (call item and intent in one transaction: {floor_write} write units at the measured sizes) and one SendMessage: ${:.2} per million. A modification request costs **{ratio:.2}x** its floor.\n", floor * 1e6).unwrap();

    // What does not scale with calls.
    writeln!(w, "### Media workers, the reconciler and active accounts\n").unwrap();
    let worker_month = heartbeat.total_cost(deployment) * MONTH_SECONDS / HEARTBEAT_SECONDS;
    let mut reconciler = mix(
        ops,
        &[(RECONCILER_RUN, 1.0), (LEASE_SWEEP, SWEEPS_PER_RUN - 1.0)],
    );
    // The run waits between its sweeps, and Lambda bills the wait.
    reconciler.concurrency_seconds += (SWEEPS_PER_RUN - 1.0) * LEASE_SWEEP_SECONDS;
    let reconciler_month = reconciler.total_cost(deployment) * MONTH_SECONDS / 60.0;
    let lease_units = heartbeat
        .write_units
        .get("workers/leases")
        .copied()
        .unwrap_or(0.0);
    let max_workers = PARTITION_WRITES.default * HEARTBEAT_SECONDS / lease_units;
    writeln!(
        w,
        "They cost the same whatever the traffic, by the month (30 days):\n"
    )
    .unwrap();
    writeln!(w, "| what | requests a month | cost a month |").unwrap();
    writeln!(w, "|---|---:|---:|").unwrap();
    writeln!(w, "| one media worker's heartbeats (one each {HEARTBEAT_SECONDS} s: the event, its invocation share, the workers item and its `leases` entry) | {} | ${worker_month:.2} |", number(MONTH_SECONDS / HEARTBEAT_SECONDS)).unwrap();
    writeln!(w, "| the reconciler (a run each minute: pending intents and {SWEEPS_PER_RUN} lease sweeps, {} s apart, the wait billed) | {} | ${reconciler_month:.2} |", LEASE_SWEEP_SECONDS, number(MONTH_SECONDS / 60.0)).unwrap();
    let authorizer = usage(find(ops, AUTHORIZER_RUN));
    let account_month = authorizer.total_cost(deployment) * MONTH_SECONDS / REAUTHORIZE_SECONDS;
    writeln!(w, "| one account making requests all month: its authorizer runs (one each {REAUTHORIZE_SECONDS} s: an invocation, the account read, its key's loan renewed) | {} | ${account_month:.4} |", number(MONTH_SECONDS / REAUTHORIZE_SECONDS)).unwrap();
    writeln!(w).unwrap();
    writeln!(w, "Every heartbeat moves its worker's entry in the `leases` index ({lease_units} write units), whose one partition (`live`) takes 1,000 writes a second: {} workers at most, {} at half of it. A worker's calls add their `worker` index entry when it reports them and remove it when they end (in the per-operation table above).\n", number(max_workers), number(max_workers / 2.0)).unwrap();
    let million = 1e6 / REAUTHORIZE_SECONDS;
    writeln!(w, "An account's requests cost nothing more for its rate limit: API Gateway counts them against the key the authorizer named, whose answer it caches for {REAUTHORIZE_SECONDS} s. A million accounts all making requests all month would run the authorizer {} times a second (their loans spread over the pool's slots, an item each: no hot key), ${} a month. What bounds the accounts is not their number but how many hold a key at once: those active within the same {} s (a loan's length), at most the pool's keys, which is API Gateway's quota of 10,000 keys a region less the keys of accounts with limits of their own and a hundredth kept for them (docs/decisions.md, \"Rate limits\").\n", number(million), number(account_month * 1e6), teleapi_ports::key_pool::LEASE.as_secs()).unwrap();

    // Conferences.
    writeln!(w, "### Conferences\n").unwrap();
    let index_writes = |name: &str| {
        usage(find(ops, name))
            .write_units
            .get("conferences/account")
            .copied()
            .unwrap_or(0.0)
    };
    // Created and started measured; its end writes the entry once more, as its start does.
    let per_conference = index_writes("event: conference.created")
        + 2.0 * index_writes("event: conference.started (+ StatusCallback job)");
    let change = mix(
        ops,
        &[
            ("change a participant: Muted", 1.0),
            ("event: conference.command.applied", 1.0),
            ("event: participant.updated (+ StatusCallback job)", 1.0),
        ],
    );
    let change_on_listing = change
        .write_units
        .get("conferences/account")
        .copied()
        .unwrap_or(0.0);
    let most = PARTITION_WRITES.default / per_conference;
    writeln!(w, "A conference writes its account's partition of the `account` index {per_conference} times in its life (created, started, ended): one account starts at most {} conferences a second, {} at half of it. A change of a participant through the API, with the worker's outcome and its report, writes that partition {change_on_listing} times and costs ${:.2} per million.\n", number(most), number(most / 2.0), change.total_cost(deployment) * 1e6).unwrap();

    // Targets.
    writeln!(w, "### Targets\n").unwrap();
    writeln!(w, "| target | model | met |").unwrap();
    writeln!(w, "|---|---|:-:|").unwrap();
    let met = |ok: bool| if ok { "yes" } else { "**no**" };
    for (target, default, raised, goal) in [
        (
            "deployment: 10,000 modifications/s",
            m_default,
            m_raised,
            10_000.0,
        ),
        (
            "deployment: 2,000 new calls/s",
            c_default,
            c_raised,
            2_000.0,
        ),
        (
            "one account: 1,000 new calls/s (16 partitions)",
            a_calls,
            a_calls_raised,
            1_000.0,
        ),
        (
            "one account: 5,000 modifications/s",
            a_mods,
            a_mods_raised,
            5_000.0,
        ),
    ] {
        writeln!(
            w,
            "| {target} | {} at default quotas; {} with the increases above | {} |",
            number(default),
            number(raised),
            met(raised >= goal)
        )
        .unwrap();
    }
    writeln!(
        w,
        "| no partition key above 50% under the profile | busiest {:.1}% | {} |",
        worst * 100.0,
        met(worst <= 0.5)
    )
    .unwrap();
    writeln!(
        w,
        "| a modification at most 1.3x its floor | {ratio:.2}x | {} |",
        met(ratio <= 1.3)
    )
    .unwrap();
    out
}
