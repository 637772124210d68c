//! A test application on loopback: it records every request it gets and answers from a script
//! (status, body, delay, redirect) per path, 200 with an empty body once a script runs out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

/// One request the application received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The parameters: the form body for POST, the query string for GET.
    pub params: BTreeMap<String, String>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// How to answer one request.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub location: Option<String>,
    /// A file served as it is (`Reply::file`), in place of `body`.
    pub file: Option<(&'static str, Vec<u8>)>,
    /// Its `Cache-Control`, if any.
    pub cache_control: Option<&'static str>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    pub fn rcml(body: &str) -> Self {
        Self {
            status: 200,
            body: body.to_owned(),
            ..Self::default()
        }
    }

    pub fn slow(delay: Duration) -> Self {
        Self {
            status: 200,
            delay,
            ..Self::default()
        }
    }

    /// A file of `content_type` (`audio/wav`), with no caching rules.
    pub fn file(content_type: &'static str, bytes: Vec<u8>) -> Self {
        Self {
            status: 200,
            file: Some((content_type, bytes)),
            ..Self::default()
        }
    }

    /// A file with caching rules (`max-age=60`).
    pub fn cached_file(content_type: &'static str, bytes: Vec<u8>, rules: &'static str) -> Self {
        Self {
            cache_control: Some(rules),
            ..Self::file(content_type, bytes)
        }
    }

    pub fn redirect(location: &str) -> Self {
        Self {
            status: 302,
            location: Some(location.to_owned()),
            ..Self::default()
        }
    }
}

#[derive(Default)]
struct Book {
    received: Vec<Received>,
    scripts: HashMap<String, VecDeque<Reply>>,
    /// What a path answers once its script has run out.
    standing: HashMap<String, Reply>,
}

#[derive(Clone)]
pub struct Sink {
    pub base: String,
    book: Arc<Mutex<Book>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

fn parse_pairs(text: &str) -> BTreeMap<String, String> {
    teleapi_domain::Form::parse(text.as_bytes())
        .map(|form| {
            form.pairs()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn record(
    State(book): State<Arc<Mutex<Book>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let params = if method == Method::GET {
        parse_pairs(uri.query().unwrap_or_default())
    } else {
        parse_pairs(&body)
    };
    let reply = {
        let mut book = book.lock().unwrap();
        book.received.push(Received {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            body,
            params,
        });
        book.scripts
            .get_mut(uri.path())
            .and_then(VecDeque::pop_front)
            .or_else(|| book.standing.get(uri.path()).cloned())
            .unwrap_or_else(|| Reply::status(200))
    };
    tokio::time::sleep(reply.delay).await;
    if let Some((content_type, bytes)) = reply.file {
        let mut response = (StatusCode::from_u16(reply.status).unwrap(), bytes).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        if let Some(rules) = reply.cache_control {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, rules.parse().unwrap());
        }
        return response;
    }
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/xml".parse().unwrap());
    if let Some(location) = reply.location {
        response
            .headers_mut()
            .insert(header::LOCATION, location.parse().unwrap());
    }
    response
}

impl Sink {
    pub async fn start() -> Self {
        let book: Arc<Mutex<Book>> = Arc::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().fallback(record).with_state(book.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            base,
            book,
            _stop: Arc::new(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answers the next requests to `path` with `replies`, in order.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.book
            .lock()
            .unwrap()
            .scripts
            .insert(path.to_owned(), replies.into());
    }

    /// Answers every request to `path` with `reply` (after any script).
    pub fn always(&self, path: &str, reply: Reply) {
        self.book
            .lock()
            .unwrap()
            .standing
            .insert(path.to_owned(), reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.book.lock().unwrap().received.clone()
    }

    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// The parameter `name` of each request received at `path`, in order (empty where absent).
    pub fn values_at(&self, path: &str, name: &str) -> Vec<String> {
        self.received_at(path)
            .into_iter()
            .map(|r| r.params.get(name).cloned().unwrap_or_default())
            .collect()
    }
}

/// Twilio's signature computed by Python's standard library, an implementation independent of
/// ours: base64(HMAC-SHA1(token, url + sorted name/value pairs)).
pub fn independent_signature(token: &str, url: &str, params: &BTreeMap<String, String>) -> String {
    let input = serde_json::json!({ "token": token, "url": url, "params": params }).to_string();
    let script = "import base64, hashlib, hmac, json, sys\n\
        d = json.load(sys.stdin)\n\
        s = d['url'] + ''.join(k + v for k, v in sorted(d['params'].items()))\n\
        print(base64.b64encode(hmac.new(d['token'].encode(), s.encode(), hashlib.sha1).digest()).decode())";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}
