//! The SIP/RTP media worker: the worker kit's calls on real phones and trunks.
//!
//! ```text
//! sip/       SIP as the worker needs it (a trait), on rsipstack (stack.rs): INVITE, CANCEL, BYE
//! sdp.rs     one audio stream's offer and answer: PCMU, PCMA, telephone-event
//! rtp.rs     RTP packets and RFC 4733 telephone-events
//! dtmf.rs    DTMF heard in the audio (Goertzel), from far ends without telephone-events
//! voice.rs   whether the far end speaks (for <Record>'s silence and machine detection)
//! g711.rs    μ-law and A-law
//! engine.rs  the legs' audio: one socket each, a reorder buffer, one 20 ms clock for all,
//!            bridges and mute, symmetric RTP
//! mix.rs     conference rooms' audio: each hears the others (muted, hold, coach)
//! capture.rs what media streams and recordings take of a leg's audio
//! sound.rs   what a leg plays, frame by frame: samples, silence, DTMF
//! prompts.rs <Say> (espeak-ng), <Play> (HTTP, WAV/MP3, cached), <Pause>
//! worker.rs  the kit's Media on all of the above
//! ```

pub mod capture;
pub mod deploy;
pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod mix;
pub mod networks;
pub mod pacer;
pub mod prompts;
pub mod reorder;
pub mod rtp;
pub mod sdp;
pub mod server;
pub mod sip;
pub mod sound;
pub mod voice;
pub mod worker;

pub use networks::Networks;
pub use server::{
    Directory, SipOptions, answer_offers, answerable, caller_of, parse_port_range, parse_sip_rate,
    start,
};
pub use worker::{SipMedia, SipMediaConfig};
