//! Test support: the backends the suites run on (in-memory, and DynamoDB/SQS on moto), a clock
//! the tests move, and request builders.

pub mod moto;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine;
use lambda_http::http::{HeaderValue, Method, header};
use lambda_http::{Body, Request};
use teleapi::adapters::dynamodb::{DynamoStore, TableNames, schema};
use teleapi::adapters::memory::{MemoryQueue, MemoryStore};
use teleapi::adapters::sqs::{SqsQueue, create_fifo_queue};
use teleapi::api::{ApiConfig, Services};
use teleapi::domain::sid::random_hex32;
use teleapi::domain::{Account, AccountSid, Call, CallStatus, Instructions, Timestamp, WebhookUrl};
use teleapi::ports::{AccountStore, CallStore, Clock, Queue};

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn starting_now() -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(Timestamp::now().millis())))
    }

    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).expect("a test-sized duration");
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// One implementation of every port.
#[derive(Clone)]
pub struct Backend {
    pub name: &'static str,
    pub accounts: Arc<dyn AccountStore>,
    pub calls: Arc<dyn CallStore>,
    pub commands: Arc<dyn Queue>,
    /// Raw clients, when the backend is AWS (for tests that look at items and queues directly).
    pub aws: Option<AwsParts>,
}

#[derive(Clone)]
pub struct AwsParts {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub tables: TableNames,
    pub commands_url: String,
}

impl Backend {
    pub fn memory() -> Self {
        let store = MemoryStore::new();
        Self {
            name: "memory",
            accounts: Arc::new(store.clone()),
            calls: Arc::new(store),
            commands: Arc::new(MemoryQueue::with_visibility(
                "commands.fifo",
                Duration::from_secs(2),
            )),
            aws: None,
        }
    }

    /// Fresh tables and a fresh commands queue on the shared moto server.
    pub async fn moto() -> Self {
        let config = moto::sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let prefix = format!("t{}", &random_hex32()[..12]);
        let tables = TableNames::with_prefix(&prefix);
        schema::create_tables(&dynamodb, &tables)
            .await
            .expect("tables are created on moto");
        let commands_url = create_fifo_queue(&sqs, &format!("{prefix}-commands"))
            .await
            .expect("the commands queue is created on moto");
        let _ = sqs
            .set_queue_attributes()
            .queue_url(&commands_url)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "2",
            )
            .send()
            .await;
        let store = Arc::new(DynamoStore::new(dynamodb.clone(), tables.clone()));
        Self {
            name: "moto",
            accounts: store.clone(),
            calls: store,
            commands: Arc::new(SqsQueue::new(sqs.clone(), commands_url.clone())),
            aws: Some(AwsParts {
                dynamodb,
                sqs,
                tables,
                commands_url,
            }),
        }
    }

    pub fn services(&self, clock: Arc<ManualClock>) -> Services {
        Services {
            accounts: self.accounts.clone(),
            calls: self.calls.clone(),
            commands: self.commands.clone(),
            clock,
            config: ApiConfig {
                write_budget: Duration::from_secs(30),
                ..ApiConfig::default()
            },
        }
    }

    /// Every message on the default commands queue, received and deleted, as JSON.
    pub async fn drain_commands(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        loop {
            let batch = self
                .commands
                .receive(None, 10, Duration::from_millis(200))
                .await
                .expect("receive works");
            if batch.is_empty() {
                return out;
            }
            for message in batch {
                out.push(serde_json::from_str(&message.body).expect("commands are JSON"));
                self.commands
                    .delete(None, &message.receipt)
                    .await
                    .expect("delete works");
            }
        }
    }
}

pub const BASE: &str = "/call/2012-04-24";

/// An account, stored.
pub async fn account(backend: &Backend, parent: Option<&Account>) -> Account {
    let account = Account::open("Test", parent.map(|p| p.sid.clone()), Timestamp::now());
    backend
        .accounts
        .insert_account(&account)
        .await
        .expect("account stored");
    account
}

/// An inbound call of `account` in `status`, created at `now`, not stored.
pub fn new_call(account: &AccountSid, status: CallStatus, now: Timestamp) -> Call {
    let instructions = Instructions {
        url: Some(WebhookUrl::parse("https://app.example.com/rcml", Default::default()).unwrap()),
        ..Instructions::default()
    };
    Call::inbound(
        account.clone(),
        "+15551230001".into(),
        "+15551230002".into(),
        instructions,
        status,
        now,
    )
}

/// An inbound call of `account` in `status`, stored.
pub async fn call(
    backend: &Backend,
    account: &AccountSid,
    status: CallStatus,
    now: Timestamp,
) -> Call {
    let call = new_call(account, status, now);
    backend.calls.insert_call(&call).await.expect("call stored");
    call
}

pub fn basic_auth(account: &Account) -> String {
    let pair = format!("{}:{}", account.sid, account.auth_token.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A modification request as API Gateway would deliver it.
pub fn modify_request(path: &str, auth: Option<&str>, body: &str) -> Request {
    let mut request = Request::new(if body.is_empty() {
        Body::Empty
    } else {
        Body::Text(body.to_owned())
    });
    *request.method_mut() = Method::POST;
    *request.uri_mut() = path.parse().expect("a test path is a URI");
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Some(auth) = auth {
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
    }
    request
}

pub fn call_path(account: &AccountSid, call: &str) -> String {
    format!("{BASE}/Accounts/{account}/Calls/{call}.json")
}

/// A response's body as text.
pub fn body_text(response: &lambda_http::Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

pub fn body_json(response: &lambda_http::Response<Body>) -> serde_json::Value {
    serde_json::from_str(&body_text(response)).unwrap_or(serde_json::Value::Null)
}
