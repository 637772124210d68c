//! Call queues: `<Enqueue>`, `<Leave>`, and `<Dial><Queue>`.

use teleapi_domain::Method;

use super::{Attributes, Noun, Warning, attribute};

/// The longest queue name (Twilio's `FriendlyName` of a queue).
const MAX_NAME: usize = 64;

/// `<Enqueue>`: the caller waits in the queue `name` (created if it does not exist), hearing
/// `waitUrl`'s RCML again and again, until an agent's `<Dial><Queue>` takes it, it `<Leave>`s,
/// or it hangs up; then `action` hears `QueueResult`, `QueueSid` and `QueueTime`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueVerb {
    pub name: String,
    pub action: Option<String>,
    pub method: Method,
    /// What the caller hears while it waits (`waitUrlMethod`, POST by default); silence if
    /// absent.
    pub wait_url: Option<(String, Method)>,
}

/// `<Queue>` in `<Dial>`: the caller is connected to the queue's first caller, or to the next
/// to arrive (within the dial's `timeout`); `url` runs on the dequeued caller first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueNoun {
    pub name: String,
    pub url: Option<(String, Method)>,
}

fn queue_name(name: &str, attrs: &mut Attributes) -> Option<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        attrs.warn(
            12200,
            format!("Invalid queue name: 1 to {MAX_NAME} characters; the verb is skipped"),
        );
        return None;
    }
    Some(name.to_owned())
}

pub(super) fn enqueue(attrs: &mut Attributes, text: &str) -> Option<EnqueueVerb> {
    if attrs.get("workflowSid").is_some() {
        attrs.warn(
            12200,
            "workflowSid: TaskRouter is not offered; the call is queued by name".into(),
        );
    }
    let name = queue_name(text, attrs)?;
    let wait_url = attrs
        .get("waitUrl")
        .filter(|u| !u.trim().is_empty())
        .map(|url| (url.trim().to_owned(), attrs.method("waitUrlMethod", 13412)));
    Some(EnqueueVerb {
        name,
        action: attrs.get("action").filter(|a| !a.trim().is_empty()),
        method: attrs.method("method", 13411),
        wait_url,
    })
}

pub(super) fn queue(noun: &Noun, warnings: &mut Vec<Warning>) -> Option<QueueNoun> {
    let mut attrs = Attributes {
        element: "Dial->Queue",
        start: Some(&noun.start),
        warnings,
    };
    let name = queue_name(&noun.text, &mut attrs)?;
    let url = attribute(&noun.start, "url")
        .filter(|u| !u.trim().is_empty())
        .map(|u| (u.trim().to_owned(), attrs.method("method", 13221)));
    Some(QueueNoun { name, url })
}
