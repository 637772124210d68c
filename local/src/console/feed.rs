//! The console's feed: what the page is told, in order, as Server-Sent Events (`GET /dev/feed`);
//! a page that connects gets what happened lately first.

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use teleapi_domain::wire::callback::CallbackJob;
use teleapi_domain::wire::conference::ConferenceEvent;
use teleapi_domain::wire::event::Event;
use teleapi_domain::wire::worker::{WorkerEvent, WorkerEventKind};
use teleapi_domain::{CallSid, ConferenceSid, Timestamp};
use tokio::sync::broadcast;

/// How many messages a page that connects is sent first: what happened lately.
pub(super) const REPLAYED: usize = 1000;

/// What the console is told, in order; a page that connects gets the last [`REPLAYED`] first.
#[derive(Clone)]
pub struct Feed {
    recent: Arc<Mutex<VecDeque<Arc<str>>>>,
    live: broadcast::Sender<Arc<str>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            recent: Arc::default(),
            live: broadcast::channel(REPLAYED).0,
        }
    }
}

impl Feed {
    fn publish(&self, message: Value) {
        let text: Arc<str> = message.to_string().into();
        // Under the lock that `subscribe` takes: a page sees each message once, replayed or
        // live, never both and never neither.
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.len() == REPLAYED {
            recent.pop_front();
        }
        recent.push_back(text.clone());
        let _ = self.live.send(text);
    }

    pub(super) fn subscribe(&self) -> (Vec<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (recent.iter().cloned().collect(), self.live.subscribe())
    }

    /// A message of the events queue, once applied: a call's event as it is, a conference's
    /// as the room it is about, a worker's leaving; workers' heartbeats are not news.
    pub fn event_applied(&self, body: &str) {
        let at = Timestamp::now().millis();
        if let Ok(event) = Event::from_json(body) {
            let raw: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            self.publish(
                json!({"type": "event", "at": at, "call_sid": event.call_sid, "event": raw}),
            );
        } else if let Ok(event) = ConferenceEvent::from_json(body) {
            self.conference_changed(&event.conference_sid);
        } else if let Ok(event) = WorkerEvent::from_json(body)
            && event.kind == WorkerEventKind::Left
        {
            self.worker_changed(event.worker_id.as_str());
        }
    }

    /// A callback job was run (delivered, retried or given up): its call's log has a new entry.
    pub fn callback_run(&self, body: &str) {
        let Ok(job) = CallbackJob::from_json(body) else {
            return;
        };
        if let Some(call) = &job.call_sid {
            self.call_changed(call);
        }
        if let Some(conference) = &job.conference_sid {
            self.conference_changed(conference);
        }
    }

    pub fn call_changed(&self, call: &CallSid) {
        let at = Timestamp::now().millis();
        self.publish(json!({"type": "call", "at": at, "call_sid": call}));
    }

    /// A simulated worker was killed, drained, or left.
    pub fn worker_changed(&self, worker: &str) {
        let at = Timestamp::now().millis();
        self.publish(json!({"type": "worker", "at": at, "worker_id": worker}));
    }

    pub fn conference_changed(&self, conference: &ConferenceSid) {
        let at = Timestamp::now().millis();
        self.publish(json!({"type": "conference", "at": at, "conference_sid": conference}));
    }

    /// An API request was answered: if it asked to change a call or a conference (anything but
    /// a GET), the page re-reads what its path names, as the API routed it.
    pub fn api_request(&self, method: &axum::http::Method, path: &str) {
        if method == axum::http::Method::GET {
            return;
        }
        let Ok(route) = teleapi_api::route(method, path) else {
            return;
        };
        if let Some(call) = route.call_sid.and_then(|s| s.parse::<CallSid>().ok()) {
            self.call_changed(&call);
        }
        if let Some(room) = route
            .conference_sid
            .and_then(|s| s.parse::<ConferenceSid>().ok())
        {
            self.conference_changed(&room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_gets_each_message_once_replayed_or_live() {
        let feed = Feed::default();
        for i in 0..(REPLAYED + 5) {
            feed.publish(json!({ "n": i }));
        }
        let (recent, mut live) = feed.subscribe();
        assert_eq!(recent.len(), REPLAYED, "the last ones only");
        assert_eq!(&*recent[0], r#"{"n":5}"#);
        feed.publish(json!({ "n": "next" }));
        assert_eq!(&*live.try_recv().unwrap(), r#"{"n":"next"}"#);
        assert!(live.try_recv().is_err(), "nothing replayed comes again");
    }

    #[test]
    fn api_requests_name_what_they_changed() {
        let feed = Feed::default();
        let call = "CA0123456789abcdef0123456789abcdef";
        let path = format!(
            "/call/2012-04-24/Accounts/AC0123456789abcdef0123456789abcdef/Calls/{call}.json"
        );
        feed.api_request(&axum::http::Method::GET, &path);
        assert!(feed.subscribe().0.is_empty(), "a read changes nothing");
        feed.api_request(&axum::http::Method::POST, &path);
        let (recent, _) = feed.subscribe();
        assert_eq!(recent.len(), 1);
        assert!(recent[0].contains(call), "{}", recent[0]);
        feed.api_request(
            &axum::http::Method::POST,
            "/call/2012-04-24/Accounts/AC0123456789abcdef0123456789abcdef/Calls.json",
        );
        assert_eq!(
            feed.subscribe().0.len(),
            1,
            "a new call is news when its worker says so"
        );
    }
}
