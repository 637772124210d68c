use super::*;
use teleapi_domain::conference::{ConferenceCallback, ConferenceCallbackEvent};
use teleapi_domain::recording::{RecordingCallbackEvent, RecordingChannels, Trim};
use teleapi_domain::{AddressPolicy, WebhookUrl};

#[test]
fn parses_the_demo_verbs() {
    let document = r#"<?xml version="1.0"?>
        <Response>
          <Say>Please hold while we connect you</Say>
          <Pause length="2"/>
          <Play loop="2">https://app.example.com/hold.mp3</Play>
          <Dial timeout="20"><Client>bob</Client></Dial>
          <Dial><Sip>sip:carol@pbx.example.com</Sip></Dial>
          <Dial>+15557654321</Dial>
          <Dial><Conference>room-1</Conference></Dial>
          <Dial><Conference muted="true" startConferenceOnEnter="false" endConferenceOnExit="true" participantLabel="agent" coach="CA0123456789abcdef0123456789abcdef" statusCallback="https://app.example.com/conference" statusCallbackMethod="GET" statusCallbackEvent="join leave,mute" beep="onExit">room-2</Conference></Dial>
          <Redirect method="GET">https://app.example.com/next?a=1&amp;b=2</Redirect>
          <Gather numDigits="4" action="/pin" timeout="10"><Say>Your PIN</Say></Gather>
          <Play digits="12w#"/>
          <Reject reason="busy"/>
          <Hangup/>
        </Response>"#;
    let (verbs, warnings) = parse(document).unwrap();
    assert_eq!(warnings, [], "every verb is run as it is written");
    assert_eq!(
        verbs,
        [
            Verb::Prompt(Prompt::Say {
                text: "Please hold while we connect you".into(),
                voice: None,
                language: None,
                loops: 1
            }),
            Verb::Prompt(Prompt::Pause { seconds: 2 }),
            Verb::Prompt(Prompt::Play {
                url: "https://app.example.com/hold.mp3".into(),
                loops: 2
            }),
            Verb::Dial(DialVerb {
                timeout: 20,
                ..DialVerb::to(DialTarget::Legs(vec![DialLeg::to("client:bob")]))
            }),
            Verb::Dial(DialVerb::to(DialTarget::Legs(vec![DialLeg::to(
                "sip:carol@pbx.example.com"
            )]))),
            Verb::Dial(DialVerb::to(DialTarget::Legs(vec![DialLeg::to(
                "+15557654321"
            )]))),
            Verb::Dial(DialVerb::to(DialTarget::Conference(ConferenceNoun::named(
                "room-1"
            )))),
            Verb::Dial(DialVerb::to(DialTarget::Conference(ConferenceNoun {
                name: "room-2".into(),
                muted: true,
                start_conference_on_enter: false,
                end_conference_on_exit: true,
                label: Some("agent".into()),
                coach: Some("CA0123456789abcdef0123456789abcdef".into()),
                status_callback: Some(ConferenceCallback {
                    url: WebhookUrl::parse(
                        "https://app.example.com/conference",
                        AddressPolicy::default(),
                    )
                    .unwrap(),
                    method: Method::Get,
                    events: vec![
                        ConferenceCallbackEvent::Join,
                        ConferenceCallbackEvent::Leave,
                        ConferenceCallbackEvent::Mute,
                    ],
                }),
                wait: None,
                beep_on_enter: false,
                beep_on_exit: true,
                sid: None,
            }))),
            Verb::Redirect {
                url: "https://app.example.com/next?a=1&b=2".into(),
                method: Method::Get
            },
            Verb::Gather(GatherVerb {
                prompt: Some(Prompt::Say {
                    text: "Your PIN".into(),
                    voice: None,
                    language: None,
                    loops: 1
                }),
                action: Some("/pin".into()),
                method: Method::Post,
                num_digits: Some(4),
                finish_on_key: "#".into(),
                timeout: 10.0,
            }),
            Verb::Prompt(Prompt::Digits("12w#".into())),
            Verb::Reject { busy: true },
            Verb::Hangup,
        ]
    );
    assert!(parse("<Response><Say>unclosed</Response>").is_err());
    assert!(parse("not xml").is_err());
    assert_eq!(parse("<Response/>").unwrap(), (vec![], vec![]));
    let (verbs, warnings) =
        parse("<Response><Sya>typo</Sya><Hangup/><Frobnicate/></Response>").unwrap();
    assert_eq!(verbs, [Verb::Hangup]);
    assert_eq!(
        warnings,
        [Warning::skipped("Sya"), Warning::skipped("Frobnicate")],
        "what a worker warns of (12200)"
    );
}

/// Values a verb does not take: each a warning with Twilio's code, and the default instead.
#[test]
fn warns_of_values_a_verb_does_not_take() {
    let document = r###"<Response>
          <Say loop="twice">Hello</Say>
          <Say/>
          <Play loop="-1">music.mp3</Play>
          <Pause length="soon"/>
          <Gather numDigits="0" finishOnKey="##" timeout="1.5" method="PUT"><Dial>+15550000000</Dial></Gather>
          <Dial timeout="0"><Conference muted="yes" startConferenceOnEnter="no" endConferenceOnExit="1" waitUrl="not a url" waitMethod="PUT" beep="sometimes">room</Conference></Dial>
          <Dial><Conference/></Dial>
          <Redirect method="PATCH">https://app.example.com/next</Redirect>
        </Response>"###;
    let (verbs, warnings) = parse(document).unwrap();
    let codes: Vec<u32> = warnings.iter().map(|w| w.code).collect();
    assert_eq!(
        codes,
        [
            13510, 13520, 13410, 13910, 13320, 13312, 13314, 13310, 13313, 13212, 13233, 12200,
            13230, 13232, 13231, 13237, 13710
        ]
    );
    assert_eq!(
        warnings[0].message,
        "Say: Invalid loop value \"twice\"; the default is used"
    );
    assert!(
        warnings[10]
            .message
            .starts_with("Dial->Conference: Invalid waitUrl")
    );
    assert_eq!(
        verbs,
        [
            Verb::Prompt(Prompt::Say {
                text: "Hello".into(),
                voice: None,
                language: None,
                loops: 1
            }),
            Verb::Prompt(Prompt::Play {
                url: "music.mp3".into(),
                loops: 1
            }),
            Verb::Prompt(Prompt::Pause { seconds: 1 }),
            Verb::Gather(GatherVerb {
                prompt: None,
                action: None,
                method: Method::Post,
                num_digits: None,
                finish_on_key: "#".into(),
                timeout: 5.0,
            }),
            Verb::Dial(DialVerb::to(DialTarget::Conference(ConferenceNoun::named(
                "room"
            )))),
            Verb::Redirect {
                url: "https://app.example.com/next".into(),
                method: Method::Post
            },
        ],
        "each with its defaults; the verbs without what they need are skipped"
    );
}

/// `<Dial>`'s attributes and nouns, as Twilio documents them.
#[test]
fn reads_a_dial_and_its_nouns() {
    let document = r#"<Response>
          <Dial action="/after" method="GET" timeout="15" callerId="+15550001111" timeLimit="600"
                answerOnBridge="true" hangupOnStar="true" record="record-from-answer-dual"
                trim="do-not-trim" recordingStatusCallback="https://app.example.com/rec"
                recordingStatusCallbackEvent="in-progress completed">
            <Number sendDigits="ww1234#" url="/whisper" method="GET">+15557654321</Number>
            <Client>alice</Client>
            <Sip>sip:bob@pbx.example.com</Sip>
          </Dial>
        </Response>"#;
    let (verbs, warnings) = parse(document).unwrap();
    assert_eq!(warnings, []);
    let Verb::Dial(dial) = &verbs[0] else {
        panic!("{verbs:?}")
    };
    assert_eq!(
        dial.target,
        DialTarget::Legs(vec![
            DialLeg {
                to: "+15557654321".into(),
                send_digits: Some("ww1234#".into()),
                url: Some(("/whisper".into(), Method::Get)),
            },
            DialLeg::to("client:alice"),
            DialLeg::to("sip:bob@pbx.example.com"),
        ])
    );
    assert_eq!(
        (dial.action.as_deref(), dial.method, dial.timeout),
        (Some("/after"), Method::Get, 15)
    );
    assert_eq!(dial.caller_id.as_deref(), Some("+15550001111"));
    assert_eq!(dial.time_limit, 600);
    assert!(dial.answer_on_bridge && dial.hangup_on_star);
    let record = dial.record.as_ref().unwrap();
    assert!(!record.from_ringing);
    assert_eq!(record.channels, RecordingChannels::Dual);
    assert_eq!(record.trim, Trim::DoNotTrim);
    let callback = record.status_callback.as_ref().unwrap();
    assert_eq!(
        callback.events,
        [
            RecordingCallbackEvent::InProgress,
            RecordingCallbackEvent::Completed
        ]
    );
    // Values it does not take: warned of, and the defaults.
    let (verbs, warnings) = parse(
        r#"<Response><Dial callerId="not a number" timeLimit="0" record="always" hangupOnStar="maybe" answerOnBridge="yes" method="PUT">
             <Number sendDigits="12x">+15550000000</Number><Number/><Bogus>support</Bogus></Dial></Response>"#,
    )
    .unwrap();
    let codes: Vec<u32> = warnings.iter().map(|w| w.code).collect();
    assert_eq!(
        codes,
        [
            13222, 13223, 13215, 13217, 13210, 13214, 13216, 13211, 13213
        ]
    );
    assert_eq!(
        verbs,
        [Verb::Dial(DialVerb::to(DialTarget::Legs(vec![
            DialLeg::to("+15550000000")
        ])))]
    );
    let (verbs, _) = parse(r#"<Response><Dial record="true">+1555</Dial></Response>"#).unwrap();
    let Verb::Dial(dial) = &verbs[0] else {
        panic!()
    };
    let record = dial.record.as_ref().unwrap();
    assert_eq!(
        (
            record.channels,
            record.trim,
            record.status_callback.is_none()
        ),
        (RecordingChannels::Mono, Trim::TrimSilence, true)
    );
}

/// `<Record>`'s attributes, Twilio's defaults, and the values it does not take.
#[test]
fn reads_a_record() {
    let (verbs, warnings) = parse(
        r##"<Response><Record/><Record action="/saved" method="GET" timeout="3" finishOnKey="#" maxLength="120" playBeep="false" trim="do-not-trim" recordingStatusCallback="https://app.example.com/rec"/></Response>"##,
    )
    .unwrap();
    assert_eq!(warnings, []);
    assert_eq!(verbs[0], Verb::Record(RecordVerb::default()));
    let Verb::Record(record) = &verbs[1] else {
        panic!("{verbs:?}")
    };
    assert_eq!(
        (record.action.as_deref(), record.method, record.timeout),
        (Some("/saved"), Method::Get, 3)
    );
    assert_eq!(
        (record.finish_on_key.as_str(), record.max_length),
        ("#", 120)
    );
    assert!(!record.play_beep);
    assert_eq!(record.trim, Trim::DoNotTrim);
    assert_eq!(
        record.status_callback.as_ref().unwrap().events,
        [RecordingCallbackEvent::Completed]
    );
    let (verbs, warnings) = parse(
        r#"<Response><Record timeout="-1" finishOnKey="x" maxLength="0" playBeep="loud" method="PUT" transcribe="true"/></Response>"#,
    )
    .unwrap();
    let codes: Vec<u32> = warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, [13614, 13610, 13611, 13613, 13612, 13615]);
    assert_eq!(verbs, [Verb::Record(RecordVerb::default())]);
}

/// Queues: `<Enqueue>` with its wait music and action, `<Leave>`, `<Dial><Queue>`.
#[test]
fn reads_queues() {
    let (verbs, warnings) = parse(
        r#"<Response>
             <Enqueue action="/done" method="GET" waitUrl="/music" waitUrlMethod="GET">support</Enqueue>
             <Enqueue>sales</Enqueue>
             <Leave/>
             <Dial timeout="10"><Queue url="/whisper">support</Queue></Dial>
             <Enqueue workflowSid="WW0123">vip</Enqueue>
             <Enqueue></Enqueue>
           </Response>"#,
    )
    .unwrap();
    assert_eq!(
        verbs[..4],
        [
            Verb::Enqueue(EnqueueVerb {
                name: "support".into(),
                action: Some("/done".into()),
                method: Method::Get,
                wait_url: Some(("/music".into(), Method::Get)),
            }),
            Verb::Enqueue(EnqueueVerb {
                name: "sales".into(),
                action: None,
                method: Method::Post,
                wait_url: None,
            }),
            Verb::Leave,
            Verb::Dial(DialVerb {
                timeout: 10,
                ..DialVerb::to(DialTarget::Queue(QueueNoun {
                    name: "support".into(),
                    url: Some(("/whisper".into(), Method::Post)),
                }))
            }),
        ]
    );
    assert_eq!(verbs.len(), 5, "the one without a name is skipped");
    let codes: Vec<u32> = warnings.iter().map(|w| w.code).collect();
    assert_eq!(codes, [12200, 12200], "TaskRouter, and the empty name");
}
