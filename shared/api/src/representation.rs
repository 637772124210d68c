//! JSON and XML representations. Resources are built once as JSON values with Twilio's field
//! names; XML is derived from them (`account_sid` becomes `<AccountSid>`), so the two formats can
//! never disagree on a field.

use lambda_http::http::{HeaderMap, header};
use quick_xml::escape::escape;
use serde_json::{Map, Value, json};

use teleapi_domain::call::ListedCall;
use teleapi_domain::{AccountSid, CallSid, Intent, IntentSid};

pub use teleapi_domain::API_VERSION;
pub const BASE_PATH: &str = "/call/2012-04-24";

/// Where `more_info` points: Twilio's page for the codes we share with Twilio, the HTTP status's
/// description for the bare HTTP codes (three digits).
pub(crate) fn more_info(code: u32) -> String {
    if code < 1000 {
        format!("https://developer.mozilla.org/docs/Web/HTTP/Status/{code}")
    } else {
        format!("https://www.twilio.com/docs/errors/{code}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// JSON when the path says `.json` or `Accept` names JSON; XML otherwise (Restcomm's rule).
    pub fn choose(path_says_json: bool, headers: &HeaderMap) -> Self {
        let accepts_json = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("json"));
        if path_says_json || accepts_json {
            Self::Json
        } else {
            Self::Xml
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Xml => "application/xml",
        }
    }

    /// The body for `resource`, a JSON object. In XML, `root` names its element (`Call`); a list
    /// envelope has none, and its fields sit directly in `<TeleapiResponse>`.
    pub fn render(self, root: Option<&str>, resource: &Value) -> String {
        match self {
            Self::Json => {
                // Into bytes, sized for a call's resource at once: `Value`'s `Display` goes
                // through `fmt` and grows its string a piece at a time.
                let mut out = Vec::with_capacity(1024);
                serde_json::to_writer(&mut out, resource).expect("a JSON value serializes");
                String::from_utf8(out).expect("serde_json writes UTF-8")
            }
            Self::Xml => {
                let mut out = String::from(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
                match root {
                    Some(root) => {
                        out.push_str("<TeleapiResponse>");
                        write_xml(&mut out, root, resource);
                        out.push_str("</TeleapiResponse>");
                    }
                    None => write_xml(&mut out, "TeleapiResponse", resource),
                }
                out
            }
        }
    }
}

/// `account_sid` -> `AccountSid`.
fn element_name(key: &str) -> String {
    key.split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn write_xml(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {
            out.push('<');
            out.push_str(name);
            out.push_str("/>");
        }
        Value::Object(fields) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            for (key, value) in fields {
                write_xml(out, &element_name(key), value);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        Value::Array(items) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            for item in items {
                write_xml(out, name.strip_suffix('s').unwrap_or("Item"), item);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        Value::String(text) => write_text(out, name, text),
        other => write_text(out, name, &other.to_string()),
    }
}

fn write_text(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(text));
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// The error body: `{code, message, more_info, status}`, or `<RestException>` in XML.
pub fn error_resource(status: u16, code: u32, message: &str) -> Value {
    json!({
        "code": code,
        "message": message,
        "more_info": more_info(code),
        "status": status,
    })
}

pub fn call_uri(account: &AccountSid, call: &CallSid) -> String {
    format!("{BASE_PATH}/Accounts/{account}/Calls/{call}.json")
}

/// The Call resource with Twilio's field names, plus `muted` and, after a modification, the
/// new intent's sid.
pub fn call_resource(call: &ListedCall, intent_sid: Option<&IntentSid>) -> Value {
    let mut fields = Map::with_capacity(18); // the fields below, `intent_sid` included
    let mut put = |key: &str, value: Value| {
        fields.insert(key.to_owned(), value);
    };
    put("sid", json!(call.sid));
    put("account_sid", json!(call.account_sid));
    put("parent_call_sid", json!(call.parent_call_sid));
    put("to", json!(call.to));
    put("from", json!(call.from));
    put("status", json!(call.status.as_str()));
    put("direction", json!(call.direction.as_str()));
    put("start_time", json!(call.start_time.map(|t| t.rfc2822())));
    put("end_time", json!(call.end_time.map(|t| t.rfc2822())));
    // Twilio sends the duration as a string of seconds.
    put("duration", json!(call.duration.map(|d| d.to_string())));
    put("date_created", json!(call.date_created.rfc2822()));
    put("date_updated", json!(call.date_updated.rfc2822()));
    put("api_version", json!(API_VERSION));
    put("muted", json!(call.muted));
    put("answered_by", json!(call.answered_by.map(|a| a.as_str())));
    put("uri", json!(call_uri(&call.account_sid, &call.sid)));
    put(
        "subresource_uris",
        json!({
            "modifications": format!(
                "{BASE_PATH}/Accounts/{}/Calls/{}/Modifications.json",
                call.account_sid, call.sid
            ),
        }),
    );
    if let Some(intent_sid) = intent_sid {
        put("intent_sid", json!(intent_sid));
    }
    Value::Object(fields)
}

/// One intent, as `GET …/Calls/{CallSid}/Modifications` lists it.
pub fn modification_resource(intent: &Intent) -> Value {
    let subject = match &intent.subject {
        teleapi_domain::Subject::Call(_) => "call_sid",
        teleapi_domain::Subject::Conference(_) => "conference_sid",
    };
    json!({
        "sid": intent.sid,
        subject: intent.subject.as_str(),
        "account_sid": intent.account_sid,
        "seq": intent.seq,
        "action": intent.action.as_str(),
        "parameters": intent.parameters,
        "status": intent.status.as_str(),
        "outcome": intent.reason,
        "date_created": intent.date_created.rfc2822(),
        "date_updated": intent.date_updated.rfc2822(),
        // The same instant in ms: RFC 2822 has whole seconds, too coarse to order an intent
        // among its call's events and requests (the console's timeline).
        "timestamp": intent.date_created.millis(),
        "api_version": API_VERSION,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_mirrors_json_field_by_field() {
        let resource = json!({
            "sid": "CA1",
            "parent_call_sid": null,
            "duration": "15",
            "muted": false,
            "subresource_uris": {"modifications": "/x?a=1&b=<2>"},
        });
        assert_eq!(
            Format::Xml.render(Some("Call"), &resource),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><TeleapiResponse><Call><Sid>CA1</Sid>\
             <ParentCallSid/><Duration>15</Duration><Muted>false</Muted><SubresourceUris>\
             <Modifications>/x?a=1&amp;b=&lt;2&gt;</Modifications></SubresourceUris></Call>\
             </TeleapiResponse>"
        );
        assert_eq!(
            Format::Json.render(Some("Call"), &resource),
            r#"{"sid":"CA1","parent_call_sid":null,"duration":"15","muted":false,"subresource_uris":{"modifications":"/x?a=1&b=<2>"}}"#
        );
    }

    #[test]
    fn format_follows_path_then_accept() {
        let mut headers = HeaderMap::new();
        assert_eq!(Format::choose(false, &headers), Format::Xml);
        assert_eq!(Format::choose(true, &headers), Format::Json);
        headers.insert(header::ACCEPT, "application/JSON".parse().unwrap());
        assert_eq!(Format::choose(false, &headers), Format::Json);
    }
}
