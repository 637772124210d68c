//! The console: a page at `/` that shows the dev account's calls live, each with its legs and
//! a timeline, and acts on them through the public API. Its three files are embedded in the
//! binary (no build step, nothing to install). What it needs besides the public API is the
//! dev-only feed, `GET /dev/feed`: Server-Sent Events, one for every worker event applied, every
//! callback job run and every API request that changed a call, so that the page re-reads what
//! changed when it changes instead of polling.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast;

use crate::Stack;

mod feed;

pub use feed::Feed;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the console.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /console/console.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /console/console.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// `GET /dev/console/config`: the dev account, with its AuthToken when the stack listens on a
/// loopback address only (nobody but this machine's users can ask); otherwise the page asks
/// for it once.
pub async fn config(State(stack): State<Arc<Stack>>) -> Response {
    let on_loopback = url::Url::parse(&stack.events.config.public_url)
        .ok()
        .and_then(|url| {
            url.host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        })
        .and_then(|host| host.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    let account = &stack.dev_account;
    let token = on_loopback.then(|| account.auth_token.expose().to_owned());
    Json(json!({"account_sid": account.sid, "auth_token": token})).into_response()
}

/// `GET /dev/feed`: Server-Sent Events, each a JSON message (`data:` only): what happened
/// lately, then what happens.
pub async fn feed(
    State(stack): State<Arc<Stack>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (recent, live) = stack.feed.subscribe();
    let replay = futures_util::stream::iter(recent);
    let live = futures_util::stream::unfold(live, |mut live| async move {
        loop {
            match live.recv().await {
                Ok(message) => return Some((message, live)),
                // A page too slow to keep up misses some messages; the next one makes it
                // re-read anyway.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let messages =
        futures_util::StreamExt::map(futures_util::StreamExt::chain(replay, live), |message| {
            Ok(SseEvent::default().data(&*message))
        });
    Sse::new(messages).keep_alive(KeepAlive::default())
}

/// `GET|POST /dev/sink`: a callback receiver that takes anything (the console's default
/// StatusCallback), so that a call's callbacks can be seen in its log without an application.
pub async fn sink() -> axum::http::StatusCode {
    axum::http::StatusCode::NO_CONTENT
}
