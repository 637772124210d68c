//! What the SIP/RTP worker reads from the network: SIP datagrams (as its endpoint parses them),
//! SDP offers and answers (read, negotiated, answered, and the answer read back to the same
//! choice), RTP packets and RFC 4733 events. Hostile input must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teleapi_media::rtp::{DigitEvent, Packet};
use teleapi_media::sdp;

fuzz_target!(|data: &[u8]| {
    let _ = teleapi_media::sip::stack::parses(data);
    if let Some(packet) = Packet::parse(data) {
        let _ = DigitEvent::parse(packet.payload);
        let mut wire = Vec::new();
        packet.write(&mut wire);
        let again = Packet::parse(&wire).expect("what was written reads back");
        assert_eq!(again.payload, packet.payload);
        assert_eq!(again.seq, packet.seq);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = sdp::parse(text) else {
        return;
    };
    let Ok(negotiated) = sdp::negotiate(&offer) else {
        return;
    };
    let local = "127.0.0.1:30000".parse().unwrap();
    let answer = sdp::write(1, local, Some(&negotiated));
    let read = sdp::parse(&answer).expect("our answer reads");
    let chosen = sdp::negotiate(&read).expect("our answer negotiates");
    assert_eq!(chosen.law, negotiated.law);
    assert_eq!(chosen.digits, negotiated.digits);
});
