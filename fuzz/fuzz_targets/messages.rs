//! What arrives on queues, from media workers and from ourselves: events, commands, callback
//! jobs; and the `#ct`/`#rt`/... delivery overrides of a webhook URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teleapi_domain::wire::callback::{CallbackJob, Delivery};
use teleapi_domain::wire::conference::{ConferenceCommand, ConferenceEvent};
use teleapi_domain::wire::event::Event;
use teleapi_domain::{AddressPolicy, Command, WebhookUrl};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = Event::from_json(text) {
        let _ = event.to_json();
    }
    if let Ok(command) = Command::from_json(text) {
        let _ = command.to_json();
    }
    if let Ok(event) = ConferenceEvent::from_json(text) {
        let _ = event.to_json();
    }
    if let Ok(command) = ConferenceCommand::from_json(text) {
        let _ = command.to_json();
    }
    if let Ok(job) = CallbackJob::from_json(text) {
        let _ = job.to_json();
    }
    if let Ok(url) = WebhookUrl::parse(
        text,
        AddressPolicy {
            allow_loopback: true,
        },
    ) {
        let _ = Delivery::of(&url);
    }
});
