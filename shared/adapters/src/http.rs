//! Requests to applications over HTTP(S) with reqwest (rustls), behind an SSRF guard: a host
//! name is resolved by our resolver, which keeps only addresses the policy allows, and reqwest
//! connects to exactly those; IP literals and every redirect target are checked the same way.

use std::collections::HashMap;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

use teleapi_domain::Method;
use teleapi_domain::webhook::{AddressClass, AddressPolicy};
use teleapi_ports::{DeliveryError, WebhookClient, WebhookRequest, WebhookResponse};

/// Longest answer read: a FallbackUrl answers RCML, which is small.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
const MAX_REDIRECTS: usize = 5;

/// Looks host names up. The system's resolver in production; tests substitute their own to
/// play DNS tricks (rebinding, private answers).
#[async_trait]
pub trait HostResolver: Send + Sync {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[async_trait]
impl HostResolver for SystemResolver {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|addr| addr.ip())
            .collect())
    }
}

/// The error a refused address raises inside reqwest, recognised again on the way out.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn class_name(class: AddressClass) -> &'static str {
    match class {
        AddressClass::Public => "public",
        AddressClass::Loopback => "loopback",
        AddressClass::Private => "private",
        AddressClass::LinkLocal => "link-local",
        AddressClass::Reserved => "reserved",
    }
}

/// The resolver reqwest uses: every address it returns has passed the policy.
struct GuardedResolver {
    inner: Arc<dyn HostResolver>,
    policy: AddressPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let inner = self.inner.clone();
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = inner.lookup(&host).await?;
            let (allowed, refused): (Vec<IpAddr>, Vec<IpAddr>) = found
                .into_iter()
                .partition(|ip| AddressClass::of(*ip).allowed_by(policy));
            if allowed.is_empty() {
                let why = refused
                    .first()
                    .map(|ip| {
                        format!(
                            "{host} resolves to a {} address",
                            class_name(AddressClass::of(*ip))
                        )
                    })
                    .unwrap_or_else(|| format!("{host} has no address"));
                return Err(Box::new(Refused(why)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(allowed.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// An IP-literal host that the policy refuses (names are checked when resolved).
fn refused_literal(url: &reqwest::Url, policy: AddressPolicy) -> Option<String> {
    let ip = match url.host()? {
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    let class = AddressClass::of(ip);
    (!class.allowed_by(policy)).then(|| format!("{ip} is a {} address", class_name(class)))
}

/// Webhooks over HTTP. One reqwest client per (connect, read) timeout pair, built on first use
/// and reused, so connections are pooled across requests.
pub struct HttpWebhooks {
    policy: AddressPolicy,
    resolver: Arc<dyn HostResolver>,
    clients: Mutex<HashMap<(Duration, Duration), reqwest::Client>>,
}

impl HttpWebhooks {
    pub fn new(policy: AddressPolicy) -> Self {
        Self::with_resolver(policy, Arc::new(SystemResolver))
    }

    pub fn with_resolver(policy: AddressPolicy, resolver: Arc<dyn HostResolver>) -> Self {
        Self {
            policy,
            resolver,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, connect: Duration, read: Duration) -> Result<reqwest::Client, DeliveryError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&(connect, read)) {
            return Ok(client.clone());
        }
        let policy = self.policy;
        let redirects = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(Refused(format!("more than {MAX_REDIRECTS} redirects")))
            } else if !matches!(attempt.url().scheme(), "http" | "https") {
                attempt.error(Refused("a redirect to a scheme other than http(s)".into()))
            } else if let Some(why) = refused_literal(attempt.url(), policy) {
                attempt.error(Refused(format!("redirect to {why}")))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .connect_timeout(connect)
            .read_timeout(read)
            .dns_resolver(Arc::new(GuardedResolver {
                inner: self.resolver.clone(),
                policy,
            }))
            .redirect(redirects)
            .no_proxy()
            .user_agent(concat!("teleapi-callbacks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DeliveryError::Protocol(e.to_string()))?;
        clients.insert((connect, read), client.clone());
        Ok(client)
    }
}

fn refusal(err: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused.0.clone());
        }
        source = cause.source();
    }
    None
}

fn classify(err: &reqwest::Error) -> DeliveryError {
    if let Some(why) = refusal(err) {
        DeliveryError::Refused(why)
    } else if err.is_connect() && err.is_timeout() {
        DeliveryError::ConnectTimeout
    } else if err.is_timeout() {
        DeliveryError::ReadTimeout
    } else if err.is_connect() {
        DeliveryError::Connect(
            err.source()
                .map_or_else(|| err.to_string(), |cause| cause.to_string()),
        )
    } else {
        DeliveryError::Protocol(err.to_string())
    }
}

#[async_trait]
impl WebhookClient for HttpWebhooks {
    async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, DeliveryError> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| DeliveryError::Protocol(e.to_string()))?;
        if let Some(why) = refused_literal(&url, self.policy) {
            return Err(DeliveryError::Refused(why));
        }
        let delivery = request.delivery;
        let client = self.client(delivery.connect_timeout, delivery.read_timeout)?;
        let mut builder = match request.method {
            Method::Get => client.get(url),
            Method::Post => client.post(url),
        }
        .timeout(delivery.total_timeout);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone());
        }
        let mut response = builder.send().await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(DeliveryError::TooLarge(MAX_ANSWER_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(WebhookResponse {
            status,
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}
