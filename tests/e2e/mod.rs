//! End to end over HTTP: a running teleapi-local (API, event and callback loops, reconciler,
//! simulated media worker) and a test application on loopback that serves RCML and receives
//! callbacks; once on the in-memory adapters, once on DynamoDB and SQS (moto). The verbs of
//! issue 27 (`<Dial>`'s outcomes and attributes, `<Record>`, queues, machine detection) are in
//! `verbs`.

use std::time::{Duration, Instant};

use serde_json::Value;
use teleapi_domain::AuthToken;
use teleapi_local::{Backing, SimulatorConfig, Stack, StackOptions};
use teleapi_tests::sink::{Received, Reply, Sink, independent_signature};
use teleapi_tests::ws::{Heard, WsPeer};
use tokio::net::TcpListener;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Runs each case on a stack of its own, once in memory and once on moto.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Local::start(teleapi_local::Backing::Memory).await).await;
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Local::start(crate::e2e::on_moto()).await).await;
                }
            )*
        }
    };
}

/// A stack on the suite's moto, its tables and queues named apart from every other test's.
fn on_moto() -> Backing {
    Backing::Aws {
        endpoint: Some(teleapi_tests::moto::endpoint().to_owned()),
        prefix: format!("e2e{}", &teleapi_domain::sid::random_hex32()[..10]),
    }
}

mod verbs;

struct Local {
    base: String,
    client: reqwest::Client,
    sid: String,
    app: Sink,
    /// The stack's record of media workers, and the simulated worker's id.
    workers: std::sync::Arc<dyn teleapi_ports::WorkerStore>,
    worker_id: teleapi_domain::sid::WorkerId,
    simulator: teleapi_local::simulator::Simulator,
    /// Where the simulated worker writes recordings (removed with the test).
    recordings: std::path::PathBuf,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.recordings);
    }
}

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Local {
    async fn start(backing: Backing) -> Self {
        Self::start_with(backing, |_| {}).await
    }

    /// A stack with options of the test's own.
    async fn start_with(backing: Backing, options: impl FnOnce(&mut StackOptions)) -> Self {
        let sid = teleapi_domain::AccountSid::generate();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let recordings = std::env::temp_dir().join(format!(
            "teleapi-e2e-{}",
            &teleapi_domain::sid::random_hex32()[..12]
        ));
        let mut chosen = StackOptions {
            backing,
            dev: Some((sid.clone(), AuthToken::new(TOKEN))),
            simulator: SimulatorConfig {
                ring: Duration::from_millis(100),
                speed: 0.02,
                enabled: true,
                recordings_dir: recordings.clone(),
                ..Default::default()
            },
            public_url: base.clone(),
            ..Default::default()
        };
        options(&mut chosen);
        let stack = Stack::build(chosen).await.expect("the stack starts");
        let workers = stack.events.workers.clone();
        let worker_id = stack.simulator.first().id().clone();
        let simulator = stack.simulator.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(teleapi_local::serve(listener, stack, async {
            let _ = stopped.await;
        }));
        let app = Sink::start().await;
        let dial = |who: &str| {
            format!("<Response><Say>Connecting</Say><Dial><Client>{who}</Client></Dial></Response>")
        };
        app.always("/bob", Reply::rcml(&dial("bob")));
        app.always("/alice", Reply::rcml(&dial("alice")));
        app.always(
            "/conference",
            Reply::rcml("<Response><Dial><Conference>room-1</Conference></Dial></Response>"),
        );
        app.always(
            "/hold",
            Reply::rcml(
                "<Response><Say>Please hold</Say><Play loop=\"0\">hold.mp3</Play></Response>",
            ),
        );
        app.always("/broken", Reply::status(500));
        app.always(
            "/fallback",
            Reply::rcml("<Response><Say>Sorry</Say><Play loop=\"0\">music.mp3</Play></Response>"),
        );
        Self {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            sid: sid.to_string(),
            app,
            workers,
            worker_id,
            simulator,
            recordings,
            _stop: stop,
        }
    }

    fn calls(&self) -> String {
        format!("{}/call/2012-04-24/Accounts/{}/Calls", self.base, self.sid)
    }

    fn app(&self, path: &str) -> String {
        encode(&self.app.url(path))
    }

    async fn post(&self, url: &str, body: &str) -> (u16, Value) {
        let response = self
            .client
            .post(url)
            .basic_auth(&self.sid, Some(TOKEN))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, url: &str) -> Value {
        self.client
            .get(url)
            .basic_auth(&self.sid, Some(TOKEN))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A simulated inbound call running the RCML at `path` of the app.
    async fn incoming(&self, path: &str) -> String {
        let body = format!(
            "From=%2B15551230001&To=%2B15551230002&Url={}",
            self.app(path)
        );
        let (status, call) = self
            .post(&format!("{}/dev/IncomingCalls", self.base), &body)
            .await;
        assert_eq!(status, 201, "{call}");
        call["sid"].as_str().unwrap().to_owned()
    }

    async fn modify(&self, call: &str, body: &str) -> Value {
        let (status, answer) = self
            .post(&format!("{}/{call}.json", self.calls()), body)
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    async fn create(&self, body: &str) -> String {
        let (status, call) = self.post(&format!("{}.json", self.calls()), body).await;
        assert_eq!(status, 201, "{call}");
        call["sid"].as_str().unwrap().to_owned()
    }

    async fn all_calls(&self) -> Vec<Value> {
        self.get(&format!("{}.json?PageSize=100", self.calls()))
            .await["calls"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn call(&self, sid: &str) -> Value {
        self.get(&format!("{}/{sid}.json", self.calls())).await
    }

    async fn modifications(&self, sid: &str) -> Vec<Value> {
        self.get(&format!("{}/{sid}/Modifications.json", self.calls()))
            .await["modifications"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The dialled legs of `parent`, as the API lists them.
    async fn legs(&self, parent: &str) -> Vec<Value> {
        self.get(&format!("{}.json?ParentCallSid={parent}", self.calls()))
            .await["calls"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn conferences(&self) -> String {
        format!(
            "{}/call/2012-04-24/Accounts/{}/Conferences",
            self.base, self.sid
        )
    }

    /// A conference's URL (`.json`), from its resource.
    fn conference_url(&self, conference: &Value) -> String {
        format!("{}{}", self.base, conference["uri"].as_str().unwrap())
    }

    /// The participants of a conference, from its resource.
    async fn participants(&self, conference: &Value) -> Vec<Value> {
        let url = format!(
            "{}{}",
            self.base,
            conference["subresource_uris"]["participants"]
                .as_str()
                .unwrap()
        );
        self.get(&url).await["participants"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn recordings_of(&self, call: &str) -> String {
        format!("{}/{call}/Recordings", self.calls())
    }

    fn fetches(&self, path: &str) -> Vec<Received> {
        self.app.received_at(path)
    }
}

/// The tests of dying and draining workers on moto take turns: each runs two workers that
/// heartbeat every 200 ms and a reconciler every 250 ms against the one moto server every suite
/// shares; two at once starved each other's calls of answers (each passes alone; together both
/// timed out).
static MOTO_WORKERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Polls `check` until it returns `Some`, or fails after 60 seconds saying what it waited for
/// (a generous bound: on two busy cores, with moto serialising every request and the real
/// phones' tests beside, a lease running out and its sweep can take most of 20 s).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status_is(local: &Local, sid: &str, status: &str) -> Option<()> {
    (local.call(sid).await["status"] == status).then_some(())
}

fn leg_to<'a>(legs: &'a [Value], to: &str) -> Option<&'a Value> {
    legs.iter().find(|l| l["to"] == to)
}

/// (a) The seed's transfer: Bob's RCML dials Bob; the app redirects the call to CallToAlice;
/// Bob's leg hangs up and the caller ends up connected to Alice.
async fn transfer_bob_to_alice(local: Local) {
    let call = local.incoming("/bob").await;
    let bob = eventually("Bob's leg to answer", || async {
        let legs = local.legs(&call).await;
        leg_to(&legs, "client:bob")
            .filter(|l| l["status"] == "in-progress")
            .cloned()
    })
    .await;
    let first = &local.fetches("/bob")[0];
    assert_eq!(first.params["CallSid"], call);
    assert_eq!(first.params["CallStatus"], "ringing");
    assert_eq!(first.params["Direction"], "inbound");
    // Signed with the account's AuthToken, as every request of the platform is: Twilio's
    // request validators accept it.
    assert_eq!(
        first.header("x-teleapi-signature"),
        Some(independent_signature(TOKEN, &local.app.url("/bob"), &first.params).as_str()),
        "{first:?}"
    );
    assert_eq!(bob["direction"], "outbound-dial");
    assert_eq!(bob["from"], "+15551230001");

    let redirect = local
        .modify(&call, &format!("Url={}", local.app("/alice")))
        .await;
    let alice = eventually("Alice's leg to answer", || async {
        let legs = local.legs(&call).await;
        leg_to(&legs, "client:alice")
            .filter(|l| l["status"] == "in-progress")
            .cloned()
    })
    .await;
    let fetch = &local.fetches("/alice")[0];
    assert_eq!(fetch.method, "POST");
    for (name, value) in [
        ("CallSid", call.as_str()),
        ("AccountSid", local.sid.as_str()),
        ("From", "+15551230001"),
        ("To", "+15551230002"),
        ("CallStatus", "in-progress"),
        ("Direction", "inbound"),
        ("ApiVersion", "2012-04-24"),
    ] {
        assert_eq!(fetch.params[name], value, "{name}");
    }
    assert_eq!(
        local.call(bob["sid"].as_str().unwrap()).await["status"],
        "completed",
        "Bob hung up"
    );
    assert_eq!(local.call(&call).await["status"], "in-progress");
    assert_eq!(alice["parent_call_sid"], call.as_str());

    // (g) The modification's outcome, as the worker reported it.
    eventually("the redirect to be applied", || async {
        let list = local.modifications(&call).await;
        (list[0]["sid"] == redirect["intent_sid"] && list[0]["status"] == "applied").then_some(())
    })
    .await;
}

/// (b) The conference: the caller is redirected into a conference, and outgoing calls bring
/// clients, a SIP endpoint and a number into it.
async fn conference(local: Local) {
    let call = local.incoming("/hold").await;
    eventually("the caller to be answered", || {
        status_is(&local, &call, "in-progress")
    })
    .await;
    local
        .modify(&call, &format!("Url={}", local.app("/conference")))
        .await;
    let mut invited = Vec::new();
    for to in [
        "client:bob",
        "client:carol",
        "sip:dave@pbx.example.com",
        "+15557654321",
    ] {
        let body = format!(
            "From=%2B15551230001&To={}&Url={}",
            encode(to),
            local.app("/conference")
        );
        invited.push((local.create(&body).await, to));
    }
    for (sid, to) in &invited {
        eventually(&format!("{to} to join"), || {
            status_is(&local, sid, "in-progress")
        })
        .await;
    }
    eventually("every leg to fetch the conference", || async {
        (local.fetches("/conference").len() >= 5).then_some(())
    })
    .await;
    let fetched: Vec<String> = local
        .fetches("/conference")
        .iter()
        .map(|r| r.params["CallSid"].clone())
        .collect();
    assert!(fetched.contains(&call));
    for (sid, _) in &invited {
        assert!(fetched.contains(sid), "{sid} fetched the conference");
    }
    assert_eq!(local.call(&call).await["status"], "in-progress");
    assert_eq!(local.all_calls().await.len(), 5);

    // The room is a conference of the API, with all five in it, in the order they joined.
    let room = eventually("the conference with its five participants", || async {
        let list = local
            .get(&format!("{}.json?FriendlyName=room-1", local.conferences()))
            .await;
        let room = list["conferences"].as_array()?.first()?.clone();
        (local.participants(&room).await.len() == 5 && room["status"] == "in-progress")
            .then_some(room)
    })
    .await;
    let joined: Vec<String> = local
        .participants(&room)
        .await
        .iter()
        .map(|p| p["call_sid"].as_str().unwrap().to_owned())
        .collect();
    assert!(joined.contains(&call), "the caller is in the room");
    for (sid, _) in &invited {
        assert!(joined.contains(sid), "{sid} is a participant");
    }
    // Whoever hangs up leaves; the last one to leave ends it.
    local.modify(&call, "Status=completed").await;
    eventually("the caller to leave the room", || async {
        (local.participants(&room).await.len() == 4).then_some(())
    })
    .await;
    for (sid, _) in &invited {
        local.modify(sid, "Status=completed").await;
    }
    let ended = eventually("the conference to end", || async {
        let room = local.get(&local.conference_url(&room)).await;
        (room["status"] == "completed").then_some(room)
    })
    .await;
    assert_eq!(ended["reason_conference_ended"], "last-participant-left");
    assert!(local.participants(&ended).await.is_empty());
}

/// (b') A moderated room: it waits (`init`) until the moderator, who starts it, joins, and ends
/// when the moderator leaves; the others go on with the RCML after their `<Dial>`.
async fn a_moderated_conference(local: Local) {
    local.app.always(
        "/member",
        Reply::rcml(&format!(
            "<Response><Dial><Conference startConferenceOnEnter=\"false\" muted=\"true\" waitUrl=\"{}\" waitMethod=\"GET\">room-2</Conference></Dial>\
             <Say>The conference has ended</Say><Hangup/></Response>",
            local.app.url("/waiting")
        )),
    );
    local.app.always(
        "/waiting",
        Reply::rcml("<Response><Play loop=\"0\">wait.mp3</Play></Response>"),
    );
    local.app.always(
        "/moderator",
        Reply::rcml(
            "<Response><Dial><Conference endConferenceOnExit=\"true\" participantLabel=\"moderator\">room-2</Conference></Dial></Response>",
        ),
    );
    let member = local.incoming("/member").await;
    let room = eventually("the room to wait for its moderator", || async {
        let list = local
            .get(&format!("{}.json?FriendlyName=room-2", local.conferences()))
            .await;
        let room = list["conferences"].as_array()?.first()?.clone();
        (room["status"] == "init" && local.participants(&room).await.len() == 1).then_some(room)
    })
    .await;
    let waiting = &local.participants(&room).await[0];
    eventually("the wait music to be fetched", || async {
        (local.fetches("/waiting").first()?.params.get("CallSid")? == &member).then_some(())
    })
    .await;
    assert_eq!(waiting["call_sid"], member.as_str());
    assert_eq!(waiting["muted"], true);
    assert_eq!(waiting["start_conference_on_enter"], false);

    let moderator = local.incoming("/moderator").await;
    eventually("the moderator to start the room", || async {
        let room = local.get(&local.conference_url(&room)).await;
        (room["status"] == "in-progress").then_some(())
    })
    .await;
    let muted = local
        .get(&format!(
            "{}/Participants.json?Muted=false",
            local.conference_url(&room).trim_end_matches(".json")
        ))
        .await;
    assert_eq!(muted["participants"][0]["label"], "moderator");
    assert_eq!(muted["participants"][0]["call_sid"], moderator.as_str());

    local.modify(&moderator, "Status=completed").await;
    let ended = eventually("the room to end with its moderator", || async {
        let room = local.get(&local.conference_url(&room)).await;
        (room["status"] == "completed").then_some(room)
    })
    .await;
    assert_eq!(
        ended["reason_conference_ended"],
        "participant-with-end-conference-on-exit-left"
    );
    assert_eq!(ended["call_sid_ending_conference"], moderator.as_str());
    // The member went on with its RCML after the <Dial>: it was told so, and hung up.
    eventually("the member to go on after the conference", || {
        status_is(&local, &member, "completed")
    })
    .await;
}

/// (b'') A warm transfer run through the conference API: a customer and an agent in a room;
/// the customer on hold with music and back; the agent adds a second agent to the room and
/// coaches it; the agent is muted and unmuted; an announcement to the room; the agent leaves
/// (removed); the room is ended and everyone goes on after their `<Dial>`. Every change is an
/// intent of the conference, applied by the worker, and what the worker did is what the API
/// shows.
async fn a_warm_transfer_through_the_conference_api(local: Local) {
    // Whoever joins first creates the room, and its <Conference> names the room's
    // StatusCallback (later ones are ignored): the customer's and the agent's both name it,
    // since either may be first.
    let events = local.app.url("/conference-events");
    let join = |label: &str| {
        format!(
            "<Response><Dial><Conference participantLabel=\"{label}\" statusCallback=\"{events}\" \
             statusCallbackEvent=\"start end join leave mute hold modify announcement\">support</Conference>\
             </Dial><Say>Thank you for calling</Say><Hangup/></Response>"
        )
    };
    local
        .app
        .always("/customer", Reply::rcml(&join("customer")));
    local.app.always("/conference-events", Reply::status(204));
    local.app.always("/agent", Reply::rcml(&join("agent")));
    local.app.always(
        "/music",
        Reply::rcml("<Response><Play loop=\"0\">music.mp3</Play></Response>"),
    );
    local.app.always(
        "/announce",
        Reply::rcml("<Response><Say>This call is recorded</Say></Response>"),
    );
    let customer = local.incoming("/customer").await;
    let agent = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Aagent&Url={}",
            local.app("/agent")
        ))
        .await;
    let room = eventually("customer and agent in the room", || async {
        let list = local
            .get(&format!(
                "{}.json?FriendlyName=support&Status=in-progress",
                local.conferences()
            ))
            .await;
        let room = list["conferences"].as_array()?.first()?.clone();
        (local.participants(&room).await.len() == 2).then_some(room)
    })
    .await;
    let base = local
        .conference_url(&room)
        .trim_end_matches(".json")
        .to_owned();
    let participant = |call: &str| format!("{base}/Participants/{call}.json");
    let change = |call: &str, body: &str| {
        let url = participant(call);
        let body = body.to_owned();
        let local = &local;
        async move {
            let (status, answer) = local.post(&url, &body).await;
            assert_eq!(status, 200, "{body}: {answer}");
            answer
        }
    };
    let reported = |call: &str, field: &'static str, value: bool| {
        let url = participant(call);
        let local = &local;
        async move {
            eventually(&format!("{field} = {value}"), || async {
                (local.get(&url).await[field] == value).then_some(())
            })
            .await;
        }
    };

    // On hold with the app's music, and back.
    let held = change(
        &customer,
        &format!("Hold=true&HoldUrl={}&HoldMethod=GET", local.app("/music")),
    )
    .await;
    assert_eq!(held["hold"], true);
    assert_eq!(held["label"], "customer");
    assert!(held["intent_sid"].as_str().unwrap().starts_with("MI"));
    reported(&customer, "hold", true).await;
    eventually("the hold music to be fetched", || async {
        let fetched = local.fetches("/music");
        (fetched.first()?.params.get("CallSid")? == &customer).then_some(())
    })
    .await;
    change(&customer, "Hold=false").await;
    reported(&customer, "hold", false).await;

    // The agent adds a second agent to the room, and coaches it.
    let (status, added) = local
        .post(
            &format!("{base}/Participants.json"),
            "From=%2B15551230001&To=client%3Aagent2&Label=agent-2&StatusCallback=",
        )
        .await;
    assert_eq!(status, 400, "an empty StatusCallback is refused: {added}");
    let (status, added) = local
        .post(
            &format!("{base}/Participants.json"),
            "From=%2B15551230001&To=client%3Aagent2&Label=agent-2",
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(
        (added["status"].as_str(), added["label"].as_str()),
        (Some("queued"), Some("agent-2"))
    );
    let second = added["call_sid"].as_str().unwrap().to_owned();
    let call = local.call(&second).await;
    assert_eq!(
        (call["to"].as_str(), call["direction"].as_str()),
        (Some("client:agent2"), Some("outbound-api"))
    );
    eventually("the second agent to join", || async {
        (local.participants(&room).await.len() == 3).then_some(())
    })
    .await;
    assert_eq!(local.get(&participant(&second)).await["label"], "agent-2");
    let coaching = change(&agent, &format!("Coaching=true&CallSidToCoach={second}")).await;
    assert_eq!(coaching["call_sid_to_coach"], second.as_str());
    reported(&agent, "coaching", true).await;
    assert_eq!(
        local.get(&participant(&agent)).await["call_sid_to_coach"],
        second.as_str()
    );

    // The first agent muted and unmuted.
    change(&agent, "Muted=true").await;
    reported(&agent, "muted", true).await;
    change(&agent, "Muted=false").await;
    reported(&agent, "muted", false).await;

    // An announcement to the room.
    let (status, announced) = local
        .post(
            &format!("{base}.json"),
            &format!("AnnounceUrl={}", local.app("/announce")),
        )
        .await;
    assert_eq!(status, 200, "{announced}");
    assert_eq!(announced["status"], "in-progress");
    eventually("the announcement to be fetched", || async {
        let fetched = local.fetches("/announce");
        (fetched.first()?.params.get("ConferenceSid")? == room["sid"].as_str()?).then_some(())
    })
    .await;
    // It has played once the application hears it ended (the worker reports that after the
    // fetch's answer; a room that ends first has nobody left to play it to).
    eventually("the announcement to end", || async {
        local
            .fetches("/conference-events")
            .iter()
            .any(|r| {
                r.params.get("StatusCallbackEvent").map(String::as_str) == Some("announcement-end")
            })
            .then_some(())
    })
    .await;

    // The first agent leaves, removed from the room: its call hangs up.
    let removed = local
        .client
        .delete(participant(&agent))
        .basic_auth(&local.sid, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    assert!(
        removed.headers()["teleapi-intent-sid"]
            .to_str()
            .unwrap()
            .starts_with("MI")
    );
    eventually("the agent's call to end", || {
        status_is(&local, &agent, "completed")
    })
    .await;
    // (Its leaving and its call's end are reported in their own orders: either may come
    // first.)
    eventually("the agent to leave the room", || async {
        let left: Vec<String> = local
            .participants(&room)
            .await
            .iter()
            .map(|p| p["call_sid"].as_str().unwrap().to_owned())
            .collect();
        (left == [customer.clone(), second.clone()]).then_some(())
    })
    .await;

    // The room ends: the customer goes on after its <Dial> and hangs up; so does the second
    // agent, whose RCML has nothing after it.
    let (status, ended) = local
        .post(&format!("{base}.json"), "Status=completed")
        .await;
    assert_eq!(status, 200, "{ended}");
    let ended = eventually("the room to end", || async {
        let room = local.get(&format!("{base}.json")).await;
        (room["status"] == "completed").then_some(room)
    })
    .await;
    assert_eq!(ended["reason_conference_ended"], "conference-ended-via-api");
    for call in [&customer, &second] {
        eventually("everyone to go on and hang up", || {
            status_is(&local, call, "completed")
        })
        .await;
    }

    // Every change is an intent of the conference, applied, in order.
    let modifications = eventually("every change to be applied", || async {
        let list = local.get(&format!("{base}/Modifications.json")).await;
        let all = list["modifications"].as_array()?.clone();
        all.iter().all(|m| m["status"] == "applied").then_some(all)
    })
    .await;
    let actions: Vec<&str> = modifications
        .iter()
        .map(|m| m["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "participant-update",
            "participant-update",
            "participant-update",
            "participant-update",
            "participant-update",
            "announce",
            "participant-remove",
            "end"
        ]
    );
    let seqs: Vec<u64> = modifications
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert_eq!(modifications[0]["conference_sid"], room["sid"]);
    assert_eq!(
        modifications[0]["parameters"]["HoldUrl"],
        local.app.url("/music")
    );

    // The application heard of it all, signed, in Twilio's words, numbered in order.
    // (Says what it heard if it gives up.)
    let deadline = Instant::now() + Duration::from_secs(20);
    let heard = loop {
        let heard = local.fetches("/conference-events");
        let ended = heard.iter().any(|r| {
            r.params.get("StatusCallbackEvent").map(String::as_str) == Some("conference-end")
        });
        if ended {
            break heard;
        }
        let names: Vec<&str> = heard
            .iter()
            .filter_map(|r| r.params.get("StatusCallbackEvent").map(String::as_str))
            .collect();
        assert!(
            Instant::now() < deadline,
            "timed out waiting for conference-end; heard {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut events: Vec<(u64, String, String)> = heard
        .iter()
        .map(|r| {
            let url = local.app.url("/conference-events");
            let expected = independent_signature(TOKEN, &url, &r.params);
            assert_eq!(r.header("x-teleapi-signature"), Some(expected.as_str()));
            assert_eq!(r.params["ConferenceSid"], room["sid"].as_str().unwrap());
            assert_eq!(r.params["FriendlyName"], "support");
            (
                r.params["SequenceNumber"].parse().unwrap(),
                r.params["StatusCallbackEvent"].clone(),
                r.params.get("CallSid").cloned().unwrap_or_default(),
            )
        })
        .collect();
    events.sort();
    let said = |name: &str, call: &str| events.iter().any(|(_, n, c)| n == name && c == call);
    for (name, call) in [
        ("participant-join", customer.as_str()),
        ("conference-start", ""),
        ("participant-join", agent.as_str()),
        ("participant-hold", customer.as_str()),
        ("participant-unhold", customer.as_str()),
        ("participant-join", second.as_str()),
        ("participant-modify", agent.as_str()),
        ("participant-mute", agent.as_str()),
        ("participant-unmute", agent.as_str()),
        ("announcement-end", ""),
        ("participant-leave", agent.as_str()),
        ("participant-leave", customer.as_str()),
        ("conference-end", ""),
    ] {
        assert!(said(name, call), "{name} {call}: heard {events:?}");
    }
    let order: Vec<&str> = events.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(order.first(), Some(&"participant-join"), "{order:?}");
    assert_eq!(order.last(), Some(&"conference-end"), "{order:?}");

    // Nothing more can change in a room that has ended.
    let (status, refused) = local.post(&participant(&customer), "Muted=true").await;
    assert_eq!(
        (status, refused["code"].as_u64()),
        (409, Some(21220)),
        "{refused}"
    );
}

/// (c) Hanging up: `completed` on a call in progress and `canceled` on a ringing one, each with
/// its signed StatusCallback.
async fn hanging_up_with_status_callbacks(local: Local) {
    let callback = local.app("/status");
    let answered = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}&StatusCallback={callback}",
            local.app("/hold")
        ))
        .await;
    eventually("the call to be answered", || {
        status_is(&local, &answered, "in-progress")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    local.modify(&answered, "Status=completed").await;

    let ringing = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Anoanswer-erin&Url={}&Timeout=600&StatusCallback={callback}",
            local.app("/hold")
        ))
        .await;
    eventually("the call to ring", || {
        status_is(&local, &ringing, "ringing")
    })
    .await;
    local.modify(&ringing, "Status=canceled").await;

    let callbacks = eventually("both StatusCallbacks", || async {
        let got = local.fetches("/status");
        (got.len() >= 2).then_some(got)
    })
    .await;
    let of = |sid: &str| {
        callbacks
            .iter()
            .find(|r| r.params["CallSid"] == sid)
            .unwrap()
            .clone()
    };
    let completed = of(&answered);
    assert_eq!(completed.params["CallStatus"], "completed");
    assert!(completed.params["CallDuration"].parse::<u64>().unwrap() >= 1);
    let canceled = of(&ringing);
    assert_eq!(canceled.params["CallStatus"], "canceled");
    assert_eq!(canceled.params["CallDuration"], "0");
    for request in [&completed, &canceled] {
        let expected = independent_signature(TOKEN, &local.app.url("/status"), &request.params);
        assert_eq!(
            request.header("x-teleapi-signature"),
            Some(expected.as_str())
        );
        assert!(request.header("i-teleapi-idempotency-token").is_some());
    }
    assert_eq!(local.call(&answered).await["status"], "completed");
    assert_eq!(local.call(&ringing).await["status"], "canceled");
}

/// (d) A failing Url leads to the FallbackUrl, and the call goes on with the fallback's RCML.
async fn fallback_on_a_failing_url(local: Local) {
    let call = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}&FallbackUrl={}",
            local.app("/broken"),
            local.app("/fallback")
        ))
        .await;
    let fallback = eventually("the fallback request", || async {
        local.fetches("/fallback").first().cloned()
    })
    .await;
    assert_eq!(fallback.params["ErrorCode"], "11200");
    assert_eq!(fallback.params["ErrorUrl"], local.app.url("/broken"));
    assert_eq!(fallback.params["CallSid"], call);
    eventually("the fallback RCML to run", || async {
        let list = local.modifications(&call).await;
        list.iter()
            .any(|m| m["action"] == "execute" && m["status"] == "applied")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        local.call(&call).await["status"],
        "in-progress",
        "the call goes on"
    );
}

/// What happened to calls, through the API: each request the platform made for a call (the
/// worker's RCML fetches, the fallback, the StatusCallbacks) with its answer, newest first; and
/// the problems met on its behalf, with Twilio's codes: a failed fetch the fallback rescued (a
/// warning), one that ended the call (an error), a verb skipped and an attribute ignored
/// (warnings), a callback given up
/// (a warning), a request the API refused (an error); the account's notifications, filtered.
async fn what_happened_to_a_call(local: Local) {
    local.app.always("/gone", Reply::status(404));
    local.app.always(
        "/typo",
        Reply::rcml(
            "<Response><Sya>hello</Sya><Pause length=\"soon\"/><Play loop=\"0\">music.mp3</Play></Response>",
        ),
    );
    let rescued = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}&FallbackUrl={}&StatusCallback={}",
            local.app("/broken"),
            local.app("/fallback"),
            local.app("/gone")
        ))
        .await;
    let ended = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}",
            local.app("/broken")
        ))
        .await;
    let skipped = local.incoming("/typo").await;
    eventually("the call without a fallback to fail", || {
        status_is(&local, &ended, "failed")
    })
    .await;
    eventually("the fallback's RCML to run", || async {
        let list = local.modifications(&rescued).await;
        list.iter()
            .any(|m| m["action"] == "execute" && m["status"] == "applied")
            .then_some(())
    })
    .await;
    local.modify(&rescued, "Status=completed").await;

    // The requests made for the rescued call, newest first.
    let events = |sid: String| {
        let local = &local;
        async move {
            let url = format!("{}/{sid}/Events.json", local.calls());
            local.get(&url).await["events"].as_array().unwrap().clone()
        }
    };
    let requests = eventually("the StatusCallback's attempt in the log", || async {
        let list = events(rescued.clone()).await;
        list.iter()
            .any(|e| e["request"]["kind"] == "status-callback")
            .then_some(list)
    })
    .await;
    let kinds: Vec<&str> = requests
        .iter()
        .map(|e| e["request"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["status-callback", "fallback", "rcml"],
        "newest first"
    );
    let times: Vec<i64> = requests
        .iter()
        .map(|e| e["request"]["timestamp"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let (callback, fallback, fetch) = (&requests[0], &requests[1], &requests[2]);
    assert_eq!(fetch["request"]["url"], local.app.url("/broken"));
    assert_eq!(fetch["request"]["method"], "POST");
    assert_eq!(fetch["request"]["parameters"]["CallSid"], rescued.as_str());
    assert_eq!(fetch["request"]["attempt"], 1);
    assert_eq!(fetch["response"]["response_code"], 500);
    assert!(fetch["response"]["request_duration"].is_u64());
    assert_eq!(fallback["request"]["url"], local.app.url("/fallback"));
    assert_eq!(fallback["request"]["parameters"]["ErrorCode"], "11200");
    assert_eq!(fallback["request"]["signed"], true);
    assert_eq!(fallback["response"]["response_code"], 200);
    assert!(
        fallback["response"]["response_body"]
            .as_str()
            .unwrap()
            .contains("<Say>Sorry</Say>"),
        "{fallback:#}"
    );
    assert_eq!(callback["request"]["parameters"]["CallStatus"], "completed");
    assert_eq!(callback["response"]["response_code"], 404);

    // Its notifications: the failed fetch, rescued, and the StatusCallback given up on.
    let notifications = |path: String| {
        let local = &local;
        async move {
            let url = format!(
                "{}/call/2012-04-24/Accounts/{}/{path}",
                local.base, local.sid
            );
            local.get(&url).await["notifications"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let of_rescued = eventually("the rescued call's two warnings", || async {
        let list = notifications(format!("Calls/{rescued}/Notifications.json")).await;
        (list.len() == 2).then_some(list)
    })
    .await;
    let codes: Vec<&str> = of_rescued
        .iter()
        .map(|n| n["error_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["15003", "11200"], "newest first");
    assert!(of_rescued.iter().all(|n| n["log"] == "1"), "warnings");
    assert_eq!(of_rescued[1]["request_url"], local.app.url("/broken"));
    assert_eq!(of_rescued[0]["request_url"], local.app.url("/gone"));
    assert!(
        of_rescued[0]["request_variables"]
            .as_str()
            .unwrap()
            .contains("CallStatus=completed")
    );
    assert_eq!(
        of_rescued[1]["more_info"],
        "https://www.twilio.com/docs/errors/11200"
    );
    let one = local
        .get(&format!(
            "{}/{rescued}/Notifications/{}.json",
            local.calls(),
            of_rescued[0]["sid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(one, of_rescued[0]);

    // The call that ended of its failure: an error; a change asked of it afterwards, refused,
    // is an error of its own, with the request.
    let (status, refused) = local
        .post(
            &format!("{}/{ended}.json", local.calls()),
            "Url=https%3A%2F%2Fapp.example.com%2Fx",
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    let of_ended = eventually("the ended call's two errors", || async {
        let list = notifications(format!("Calls/{ended}/Notifications.json")).await;
        (list.len() == 2).then_some(list)
    })
    .await;
    assert!(of_ended.iter().all(|n| n["log"] == "0"), "{of_ended:#?}");
    assert_eq!(
        of_ended[0]["error_code"],
        refused["code"].to_string().as_str()
    );
    assert_eq!(of_ended[0]["request_method"], "POST");
    assert_eq!(
        of_ended[0]["request_variables"],
        "Url=https%3A%2F%2Fapp.example.com%2Fx"
    );
    assert_eq!(of_ended[1]["error_code"], "11200");
    assert!(
        of_ended[1]["message_text"]
            .as_str()
            .unwrap()
            .contains("the call was ended"),
        "{:#}",
        of_ended[1]
    );

    // The verb the worker skipped, and the attribute it ignored: warnings, and the call went on.
    let of_skipped = eventually("the skipped verb's warnings", || async {
        let list = notifications(format!("Calls/{skipped}/Notifications.json")).await;
        (list.len() == 2).then_some(list)
    })
    .await;
    let mut said: Vec<(&str, &str, &str)> = of_skipped
        .iter()
        .map(|n| {
            (
                n["error_code"].as_str().unwrap(),
                n["log"].as_str().unwrap(),
                n["message_text"].as_str().unwrap(),
            )
        })
        .collect();
    said.sort();
    assert_eq!(
        said,
        [
            (
                "12200",
                "1",
                "<Sya> is not a verb the worker runs; it was skipped"
            ),
            (
                "13910",
                "1",
                "Pause: Invalid length value \"soon\"; the default is used"
            )
        ]
    );
    assert_eq!(local.call(&skipped).await["status"], "in-progress");

    // The account's: every call's, filtered by level and date.
    let warnings = notifications("Notifications.json?Log=1".into()).await;
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    let errors = notifications("Notifications.json?Log=error&PageSize=1".into()).await;
    assert_eq!(errors.len(), 1, "a page of one");
    let today = time::OffsetDateTime::now_utc().date();
    let all = notifications(format!("Notifications.json?MessageDate={today}")).await;
    assert_eq!(all.len(), 6);
    let before = notifications(format!(
        "Notifications.json?MessageDate%3C={}",
        today.previous_day().unwrap()
    ))
    .await;
    assert!(before.is_empty());
}

/// (e) Mute, then unmute.
async fn mute_then_unmute(local: Local) {
    let call = local.incoming("/hold").await;
    eventually("the call to be answered", || {
        status_is(&local, &call, "in-progress")
    })
    .await;
    assert_eq!(local.modify(&call, "Mute=true").await["muted"], true);
    assert_eq!(local.modify(&call, "Mute=false").await["muted"], false);
    eventually("both to be applied", || async {
        let list = local.modifications(&call).await;
        let done: Vec<(&str, &str)> = list
            .iter()
            .map(|m| (m["action"].as_str().unwrap(), m["status"].as_str().unwrap()))
            .collect();
        (done == [("mute", "applied"), ("unmute", "applied")]).then_some(())
    })
    .await;
}

/// (f) MoveConnectedCallLeg=true: both legs fetch the new URL, and Bob stays on the line.
async fn moving_both_legs(local: Local) {
    let call = local.incoming("/bob").await;
    let bob = eventually("Bob's leg to answer", || async {
        let legs = local.legs(&call).await;
        leg_to(&legs, "client:bob")
            .filter(|l| l["status"] == "in-progress")
            .cloned()
    })
    .await;
    let bob = bob["sid"].as_str().unwrap().to_owned();
    local
        .modify(
            &call,
            &format!("Url={}&MoveConnectedCallLeg=true", local.app("/conference")),
        )
        .await;
    let fetched = eventually("both legs to fetch the new URL", || async {
        let sids: Vec<String> = local
            .fetches("/conference")
            .iter()
            .map(|r| r.params["CallSid"].clone())
            .collect();
        (sids.len() >= 2).then_some(sids)
    })
    .await;
    assert!(
        fetched.contains(&call) && fetched.contains(&bob),
        "{fetched:?}"
    );
    let bobs = local
        .fetches("/conference")
        .into_iter()
        .find(|r| r.params["CallSid"] == bob)
        .unwrap();
    assert_eq!(bobs.params["ParentCallSid"], call);
    assert_eq!(bobs.params["Direction"], "outbound-dial");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        local.call(&bob).await["status"],
        "in-progress",
        "Bob was moved, not hung up"
    );
}

/// Numbers that do not answer end the way they say: busy, failed, or no-answer at the timeout;
/// a Reject in the incoming call's RCML leaves it unanswered.
async fn phones_that_do_not_answer(local: Local) {
    let mut calls = Vec::new();
    for (to, status) in [
        ("client:busy-bo", "busy"),
        ("client:fail-fay", "failed"),
        ("client:noanswer-ned", "no-answer"),
    ] {
        let body = format!(
            "From=%2B15551230001&To={}&Url={}&Timeout=1",
            encode(to),
            local.app("/hold")
        );
        calls.push((local.create(&body).await, status));
    }
    local.app.always(
        "/reject",
        Reply::rcml("<Response><Reject reason=\"busy\"/></Response>"),
    );
    calls.push((local.incoming("/reject").await, "busy"));
    for (sid, status) in &calls {
        eventually(&format!("{sid} to end {status}"), || {
            status_is(&local, sid, status)
        })
        .await;
    }
    assert!(
        local.fetches("/hold").is_empty(),
        "no unanswered call fetched its RCML"
    );
}

/// The simulated worker announces itself as a real one would, with its own commands queue, and
/// keeps its lease.
async fn the_simulated_worker_heartbeats(local: Local) {
    use teleapi_domain::worker::WorkerStatus;
    let worker = eventually("the worker's first heartbeat", || async {
        local.workers.worker(&local.worker_id).await.unwrap()
    })
    .await;
    assert_eq!(worker.status, WorkerStatus::Active);
    assert!(!worker.command_queue.is_empty());
    assert!(worker.lease_expires_at > worker.date_updated);
}

/// The simulated worker dies in the middle of Bob's call, which it records, and of a room: within
/// its lease and a reconciler run, both legs end `completed`, the application is told, the
/// recording fails, the call says why through its notifications, the room ends, and the worker
/// is marked expired. (Lease
/// 5 s, heartbeats every 200 ms and a reconciler every 250 ms, so that it takes seconds.)
async fn a_worker_that_dies_mid_call(backing: Backing) {
    use teleapi_domain::worker::WorkerStatus;
    let local = Local::start_with(backing, |options| {
        options.worker_lease = Duration::from_secs(5);
        options.reconcile_every = Duration::from_millis(250);
        options.simulator.heartbeat = Duration::from_millis(200);
    })
    .await;
    let call = local.incoming("/bob").await;
    eventually("the call answered", || {
        status_is(&local, &call, "in-progress")
    })
    .await;
    let bob = eventually("Bob's leg answered", || async {
        let legs = local.legs(&call).await;
        leg_to(&legs, "client:bob")
            .filter(|l| l["status"] == "in-progress")
            .map(|l| l["sid"].as_str().unwrap().to_owned())
    })
    .await;
    let url = format!("{}/{call}.json", local.calls());
    let callback = format!("StatusCallback={}", local.app("/status"));
    assert_eq!(local.post(&url, &callback).await.0, 200);
    let recordings = local.recordings_of(&call);
    let (status, recording) = local.post(&format!("{recordings}.json"), "").await;
    assert_eq!(status, 201, "{recording}");
    let recording = format!("{recordings}/{}.json", recording["sid"].as_str().unwrap());
    eventually("the worker to record", || async {
        let listed = local.get(&format!("{recordings}.json")).await;
        (listed["recordings"][0]["status"] == "in-progress").then_some(())
    })
    .await;
    let member = local.incoming("/conference").await;
    let room = eventually("the room to start", || async {
        let listed = local.get(&format!("{}.json", local.conferences())).await;
        let room = listed["conferences"].as_array()?.first()?.clone();
        (room["status"] == "in-progress").then_some(room)
    })
    .await;

    let first = local.simulator.first();
    local.simulator.kill(first.id().as_str());
    for sid in [&call, &bob] {
        eventually(&format!("{sid} ended"), || {
            status_is(&local, sid, "completed")
        })
        .await;
    }
    let told = eventually("the completed callback", || async {
        local.app.received_at("/status").into_iter().next()
    })
    .await;
    assert_eq!(told.params["CallStatus"], "completed");
    assert_eq!(told.params["CallSid"], call);
    eventually("the room's member to end", || {
        status_is(&local, &member, "completed")
    })
    .await;
    let ended = eventually("the room to end", || async {
        let room = local.get(&local.conference_url(&room)).await;
        (room["status"] == "completed").then_some(room)
    })
    .await;
    assert_eq!(ended["reason_conference_ended"], "last-participant-left");
    assert_eq!(ended["call_sid_ending_conference"], member.as_str());
    let failed = eventually("the recording to fail", || async {
        let recording = local.get(&recording).await;
        (recording["status"] == "failed").then_some(recording)
    })
    .await;
    assert_eq!(failed["error_code"], 16105, "{failed}");
    let notices = local
        .get(&format!("{}/{call}/Notifications.json", local.calls()))
        .await;
    let notice = &notices["notifications"][0];
    assert_eq!(notice["error_code"], "15000", "{notices}");
    assert!(
        notice["message_text"]
            .as_str()
            .unwrap()
            .contains(local.worker_id.as_str()),
        "{notices}"
    );
    // Marked once its calls are all ended, a moment after the last of them.
    eventually("the worker marked expired", || async {
        let worker = local.workers.worker(&local.worker_id).await.unwrap()?;
        (worker.status == WorkerStatus::Expired).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_mid_call_in_memory() {
    a_worker_that_dies_mid_call(Backing::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_mid_call_on_moto() {
    let _turn = MOTO_WORKERS.acquire().await.expect("never closed");
    a_worker_that_dies_mid_call(on_moto()).await;
}

/// Two workers, lease 5 s, heartbeats every 200 ms, a reconciler every 250 ms.
async fn two_workers(backing: Backing) -> Local {
    Local::start_with(backing, |options| {
        options.worker_lease = Duration::from_secs(5);
        options.reconcile_every = Duration::from_millis(250);
        options.simulator.heartbeat = Duration::from_millis(200);
        options.simulator.workers = 2;
    })
    .await
}

impl Local {
    /// `GET /dev/Workers`.
    async fn dev_workers(&self) -> Vec<Value> {
        self.get(&format!("{}/dev/Workers", self.base)).await["workers"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The worker (as `GET /dev/Workers` shows it) that holds `call`.
    async fn worker_of(&self, call: &str) -> Option<Value> {
        self.dev_workers()
            .await
            .into_iter()
            .find(|w| w["calls"].as_array().unwrap().iter().any(|c| c == call))
    }

    async fn worker_action(&self, id: &str, action: &str) -> (u16, Value) {
        self.post(
            &format!("{}/dev/Workers/{id}", self.base),
            &format!("Action={action}"),
        )
        .await
    }

    /// A call to Bob, answered, with its StatusCallback at `/status-{name}`: the call and its
    /// leg to Bob.
    async fn call_bob(&self, name: &str) -> (String, String) {
        let call = self.incoming("/bob").await;
        let bob = eventually("Bob's leg answered", || async {
            let legs = self.legs(&call).await;
            leg_to(&legs, "client:bob")
                .filter(|l| l["status"] == "in-progress")
                .map(|l| l["sid"].as_str().unwrap().to_owned())
        })
        .await;
        let callback = format!("StatusCallback={}", self.app(&format!("/status-{name}")));
        self.modify(&call, &callback).await;
        (call, bob)
    }
}

/// Two workers; one is killed in the middle of a transfer. Its calls end within the lease and
/// a sweep, with one `completed` callback each; the other worker's call goes on and can still be
/// transferred; the dead call refuses a change (409, 21220); a new call lands on the survivor;
/// the dead worker ends `expired`; and a late event of its reopens nothing.
async fn a_killed_worker_and_a_survivor(backing: Backing) {
    let local = two_workers(backing).await;
    let (doomed, doomed_bob) = local.call_bob("doomed").await;
    let (kept, kept_bob) = local.call_bob("kept").await;
    let victim = local.worker_of(&doomed).await.expect("a worker holds it");
    let survivor = local.worker_of(&kept).await.expect("a worker holds it");
    assert_ne!(
        victim["id"], survivor["id"],
        "new calls go to the workers in turn"
    );
    assert!(
        victim["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| *c == doomed_bob),
        "a worker lists the legs it holds: {victim}"
    );

    // Mid-transfer: the redirect is taken, and the worker dies before it can report it.
    local
        .modify(&doomed, &format!("Url={}", local.app("/alice")))
        .await;
    let victim_id = victim["id"].as_str().unwrap();
    let (status, killed) = local.worker_action(victim_id, "kill").await;
    assert_eq!(status, 200, "{killed}");
    assert_eq!(killed["state"], "dead");
    for sid in [&doomed, &doomed_bob] {
        eventually(&format!("{sid} ended"), || {
            status_is(&local, sid, "completed")
        })
        .await;
    }
    // The lease (5 s) and a sweep (every 250 ms) end them; `eventually` bounds the wait (60 s:
    // on two cores busy with the rest of the suite, the sweep's moto requests queue behind
    // everyone's). A timing is a benchmark's to measure, not this test's to assert.
    let dead = local.worker_action(victim_id, "kill").await.1;
    assert!(dead["calls"].as_array().unwrap().is_empty(), "{dead}");

    // The survivor's call: untouched, and still transferable.
    assert_eq!(local.call(&kept).await["status"], "in-progress");
    local
        .modify(&kept, &format!("Url={}", local.app("/alice")))
        .await;
    eventually("the kept call transferred", || async {
        let legs = local.legs(&kept).await;
        let alice = leg_to(&legs, "client:alice")?;
        (alice["status"] == "in-progress").then_some(())
    })
    .await;
    eventually("Bob's kept leg hung up", || {
        status_is(&local, &kept_bob, "completed")
    })
    .await;

    // The dead call refuses a change, as any ended call.
    let (status, refused) = local
        .post(
            &format!("{}/{doomed}.json", local.calls()),
            &format!("Url={}", local.app("/alice")),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_u64()),
        (409, Some(21220)),
        "{refused}"
    );

    // A new call lands on the survivor.
    let fresh = local.incoming("/bob").await;
    let holder = eventually("the new call held", || local.worker_of(&fresh)).await;
    assert_eq!(holder["id"], survivor["id"]);
    eventually("the dead worker expired", || async {
        let workers = local.dev_workers().await;
        let dead = workers.iter().find(|w| w["id"] == victim["id"])?;
        (dead["state"] == "expired").then_some(())
    })
    .await;

    // A late event of the dead worker (its call answered again) reopens nothing.
    let late = serde_json::json!({
        "version": 1,
        "type": "call.status",
        "call_sid": doomed,
        "timestamp": teleapi_domain::Timestamp::now().millis(),
        "seq": 1000,
        "status": "in-progress",
        "start_time": teleapi_domain::Timestamp::now().millis()
    });
    let sent = local
        .client
        .post(format!("{}/dev/Events", local.base))
        .body(late.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(local.call(&doomed).await["status"], "completed");

    // Each call's `completed` callback, once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let completed = |name: &str| {
        local
            .app
            .received_at(&format!("/status-{name}"))
            .into_iter()
            .filter(|r| r.params["CallStatus"] == "completed")
            .count()
    };
    assert_eq!(
        completed("doomed"),
        1,
        "the dead worker's call is reported once"
    );
    assert_eq!(completed("kept"), 0, "the survivor's call goes on");
}

/// Two workers; one drains: it gets no new call, its call finishes normally (its RCML runs to
/// the end when Bob's leg is hung up), and then it leaves (`worker.left`).
async fn a_drained_worker_leaves_when_its_calls_end(backing: Backing) {
    use teleapi_domain::worker::WorkerStatus;
    let local = two_workers(backing).await;
    let (call, bob) = local.call_bob("drained").await;
    let worker = local.worker_of(&call).await.expect("a worker holds it");
    let id = worker["id"].as_str().unwrap().to_owned();
    let (status, draining) = local.worker_action(&id, "drain").await;
    assert_eq!(status, 200, "{draining}");
    assert_eq!(draining["state"], "draining");
    for _ in 0..3 {
        let other = local.incoming("/bob").await;
        let holder = eventually("the new call held", || local.worker_of(&other)).await;
        assert_ne!(
            holder["id"], worker["id"],
            "a draining worker gets no new call"
        );
    }
    // Its call goes on until it ends of itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(local.call(&call).await["status"], "in-progress");
    let bob_url = format!("{}/{bob}.json", local.calls());
    assert_eq!(local.post(&bob_url, "Status=completed").await.0, 200);
    eventually("the drained worker's call completed", || {
        status_is(&local, &call, "completed")
    })
    .await;
    let gone = eventually("the drained worker gone", || async {
        let workers = local.dev_workers().await;
        let gone = workers.into_iter().find(|w| w["id"] == worker["id"])?;
        (gone["state"] == "left").then_some(gone)
    })
    .await;
    assert!(gone["calls"].as_array().unwrap().is_empty(), "{gone}");
    let id = teleapi_domain::sid::WorkerId::try_from(id).unwrap();
    eventually("the control plane to hear it left", || async {
        let worker = local.workers.worker(&id).await.unwrap()?;
        (worker.status == WorkerStatus::Left).then_some(())
    })
    .await;
    let completed = local
        .app
        .received_at("/status-drained")
        .into_iter()
        .filter(|r| r.params["CallStatus"] == "completed")
        .count();
    assert_eq!(completed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_and_a_survivor_in_memory() {
    a_killed_worker_and_a_survivor(Backing::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_and_a_survivor_on_moto() {
    let _turn = MOTO_WORKERS.acquire().await.expect("never closed");
    a_killed_worker_and_a_survivor(on_moto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_worker_leaves_when_its_calls_end_in_memory() {
    a_drained_worker_leaves_when_its_calls_end(Backing::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_worker_leaves_when_its_calls_end_on_moto() {
    let _turn = MOTO_WORKERS.acquire().await.expect("never closed");
    a_drained_worker_leaves_when_its_calls_end(on_moto()).await;
}

/// The WAV at `url` (with the account's credentials): its channels and seconds.
async fn wav(local: &Local, url: &str) -> (u16, f64) {
    let response = local
        .client
        .get(url)
        .basic_auth(&local.sid, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{url}");
    assert_eq!(response.headers()["content-type"], "audio/x-wav");
    let bytes = response.bytes().await.unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.bits_per_sample), (8_000, 16));
    (spec.channels, f64::from(reader.duration()) / 8_000.0)
}

/// A recording started, paused (skipping the pause), resumed and stopped through the API: the
/// answers, the rules, the WAV the worker wrote (its channels, and the time recorded), the
/// RecordingStatusCallbacks, the lists, and its deletion.
async fn recording_a_call(local: Local) {
    let call = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}",
            local.app("/hold")
        ))
        .await;
    let recordings = local.recordings_of(&call);
    // Not answered yet: nothing to record.
    let (status, refused) = local.post(&format!("{recordings}.json"), "").await;
    assert_eq!(
        (status, refused["code"].as_u64()),
        (409, Some(21220)),
        "{refused}"
    );
    eventually("the call to be answered", || {
        status_is(&local, &call, "in-progress")
    })
    .await;
    let events = local.app("/recording-events");
    let (status, started) = local
        .post(
            &format!("{recordings}.json"),
            &format!(
                "RecordingChannels=dual&RecordingStatusCallback={events}&RecordingStatusCallbackEvent=in-progress+completed"
            ),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let sid = started["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("RE") && sid.len() == 34);
    assert_eq!(started["status"], "in-progress");
    assert_eq!(started["source"], "StartCallRecordingAPI");
    assert_eq!(started["channels"], 2);
    assert_eq!(started["call_sid"], call.as_str());
    assert_eq!(
        started["uri"],
        format!(
            "/call/2012-04-24/Accounts/{}/Calls/{call}/Recordings/{sid}.json",
            local.sid
        )
    );
    let recorded_from = Instant::now();
    let (status, second) = local.post(&format!("{recordings}.json"), "").await;
    assert_eq!(
        (status, second["code"].as_u64()),
        (409, Some(21220)),
        "one at a time: {second}"
    );
    for bad in [
        "RecordingChannels=stereo",
        "Trim=sometimes",
        "Status=paused",
    ] {
        let (status, _) = local.post(&format!("{recordings}.json"), bad).await;
        assert_eq!(status, 400, "{bad}");
    }

    let current = format!("{recordings}/Twilio.CURRENT.json");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (status, paused) = local
        .post(&current, "Status=paused&PauseBehavior=skip")
        .await;
    assert_eq!(
        (status, paused["status"].as_str()),
        (200, Some("paused")),
        "{paused}"
    );
    let audible = recorded_from.elapsed();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, resumed) = local.post(&current, "Status=in-progress").await;
    assert_eq!(
        (status, resumed["status"].as_str()),
        (200, Some("in-progress")),
        "{resumed}"
    );
    let resumed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let one = format!("{recordings}/{sid}.json");
    let (status, stopped) = local.post(&one, "Status=stopped").await;
    assert_eq!(
        (status, stopped["status"].as_str()),
        (200, Some("stopped")),
        "{stopped}"
    );
    let audible = audible + resumed_at.elapsed();
    let (status, late) = local.post(&one, "Status=paused").await;
    assert_eq!(
        (status, late["code"].as_u64()),
        (409, Some(21220)),
        "{late}"
    );
    let (status, _) = local.post(&current, "Status=paused").await;
    assert_eq!(status, 404, "no active recording any more");

    let account_path = format!(
        "{}/call/2012-04-24/Accounts/{}/Recordings",
        local.base, local.sid
    );
    let done = eventually("the recording to complete", || async {
        let recording = local.get(&format!("{account_path}/{sid}.json")).await;
        (recording["status"] == "completed").then_some(recording)
    })
    .await;
    let media_url = done["media_url"].as_str().unwrap().to_owned();
    assert_eq!(media_url, format!("{account_path}/{sid}"));
    let (channels, seconds) = wav(&local, &format!("{media_url}.wav")).await;
    assert_eq!(channels, 2);
    // What was recorded: the time between the answers, less the skipped pause. The requests'
    // own time is the jitter: ±0.3 s.
    let expected = audible.as_secs_f64();
    assert!(
        (seconds - expected).abs() < 0.3,
        "{seconds} s of media, {expected} s recorded"
    );
    assert_eq!(done["duration"], format!("{}", seconds.round() as u64));
    let anonymous = local
        .client
        .get(format!("{media_url}.wav"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "the media needs the account's credentials"
    );
    let mp3 = local
        .client
        .get(format!("{media_url}.mp3"))
        .basic_auth(&local.sid, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(mp3.status(), 200);
    assert_eq!(mp3.headers()["content-type"], "audio/mpeg");
    let mp3 = mp3.bytes().await.unwrap();
    assert!(
        mp3.len() > 1_000 && (mp3.starts_with(b"ID3") || mp3[0] == 0xff),
        "an MP3 stream of {} bytes",
        mp3.len()
    );

    let callbacks = eventually("the in-progress and completed callbacks", || async {
        let got = local.fetches("/recording-events");
        (got.len() >= 2).then_some(got)
    })
    .await;
    let statuses: Vec<&str> = callbacks
        .iter()
        .map(|r| r.params["RecordingStatus"].as_str())
        .collect();
    assert_eq!(statuses, ["in-progress", "completed"]);
    let completed = &callbacks[1];
    assert_eq!(completed.params["RecordingSid"], sid);
    assert_eq!(completed.params["CallSid"], call);
    assert_eq!(completed.params["RecordingUrl"], media_url);
    assert_eq!(completed.params["RecordingChannels"], "2");
    assert_eq!(
        completed.params["RecordingDuration"],
        done["duration"].as_str().unwrap()
    );
    for request in &callbacks {
        let expected =
            independent_signature(TOKEN, &local.app.url("/recording-events"), &request.params);
        assert_eq!(
            request.header("x-teleapi-signature"),
            Some(expected.as_str())
        );
    }

    let listed = local.get(&format!("{recordings}.json")).await;
    assert_eq!(
        listed["recordings"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    let by_call = local
        .get(&format!("{account_path}.json?CallSid={call}"))
        .await;
    assert_eq!(by_call["recordings"][0]["sid"], sid.as_str());

    // Only a finished recording may be deleted; then it and its media are gone.
    local.modify(&call, "Status=completed").await;
    let deleted = local
        .client
        .delete(format!("{account_path}/{sid}.json"))
        .basic_auth(&local.sid, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = local
        .client
        .get(format!("{account_path}/{sid}.json"))
        .basic_auth(&local.sid, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert!(!local.recordings.join(format!("{sid}.wav")).exists());
    assert!(!local.recordings.join(format!("{sid}.mp3")).exists());
}

/// `Record=true` on a new call: the worker records it from answer, and the recording completes
/// when the call ends.
async fn recording_from_answer(local: Local) {
    let call = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}&Record=true&RecordingTrack=inbound&RecordingStatusCallback={}",
            local.app("/hold"),
            local.app("/recorded")
        ))
        .await;
    let recordings = local.recordings_of(&call);
    let listed = eventually("the recording to start", || async {
        let list = local.get(&format!("{recordings}.json")).await;
        let first = list["recordings"].get(0).cloned();
        first.filter(|r| r["status"] == "in-progress")
    })
    .await;
    assert_eq!(listed["source"], "OutboundAPI");
    assert_eq!(listed["channels"], 1);
    assert_eq!(listed["track"], "inbound");
    let in_progress = local
        .client
        .delete(format!(
            "{recordings}/{}.json",
            listed["sid"].as_str().unwrap()
        ))
        .basic_auth(&local.sid, Some(TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(
        in_progress.status(),
        409,
        "a recording is deleted once it has completed"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    local.modify(&call, "Status=completed").await;
    let callback = eventually("the completed callback", || async {
        local.fetches("/recorded").pop()
    })
    .await;
    assert_eq!(callback.params["RecordingStatus"], "completed");
    assert_eq!(callback.params["RecordingSource"], "OutboundAPI");
    let (channels, seconds) =
        wav(&local, &format!("{}.wav", callback.params["RecordingUrl"])).await;
    assert_eq!(channels, 1);
    assert!(seconds >= 0.5, "{seconds}");
}

/// The media messages of `track` among `heard`.
fn media_of<'a>(heard: &'a [Heard], track: &str) -> Vec<&'a Heard> {
    heard
        .iter()
        .filter(|h| h.message["event"] == "media" && h.message["media"]["track"] == track)
        .collect()
}

/// The protocol a voice bot sees, message by message: `connected`, `start` (sids, tracks,
/// custom parameters, the media format), `media` for each track every 20 ms (160 bytes of
/// μ-law; chunks and timestamps in step; sequence numbers one by one), and `stop`; the
/// stream's StatusCallbacks; the API's rules.
async fn streaming_a_call(local: Local) {
    let bot = WsPeer::start().await;
    let call = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}",
            local.app("/hold")
        ))
        .await;
    let streams = format!("{}/{call}/Streams.json", local.calls());
    let body = format!(
        "Url={}&Name=bot&Track=both_tracks&Parameter1.Name=customer&Parameter1.Value=42&Parameter2.Name=lang&Parameter2.Value=en-GB&StatusCallback={}",
        encode(&bot.url("/media")),
        local.app("/stream-events")
    );
    let (status, refused) = local.post(&streams, &body).await;
    assert_eq!(
        (status, refused["code"].as_u64()),
        (409, Some(21220)),
        "not answered yet: {refused}"
    );
    eventually("the call to be answered", || {
        status_is(&local, &call, "in-progress")
    })
    .await;
    let (status, started) = local.post(&streams, &body).await;
    assert_eq!(status, 201, "{started}");
    let sid = started["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("MZ") && sid.len() == 34, "{sid}");
    assert_eq!(
        (started["status"].as_str(), started["name"].as_str()),
        (Some("in-progress"), Some("bot"))
    );
    assert_eq!(started["call_sid"], call.as_str());
    let (status, same_name) = local.post(&streams, &body).await;
    assert_eq!(
        (status, same_name["code"].as_u64()),
        (409, Some(21220)),
        "{same_name}"
    );
    for bad in [
        "Url=http%3A%2F%2F127.0.0.1%2Fmedia".to_owned(),
        "Url=ws%3A%2F%2F10.0.0.7%2Fmedia".to_owned(),
        "Name=no-url".to_owned(),
        format!("Url={}&Track=sideways", encode(&bot.url("/x"))),
        format!("Url={}&Parameter1.Value=orphan", encode(&bot.url("/x"))),
    ] {
        let (status, answer) = local.post(&streams, &bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }

    // A second of streaming, then stopped by its name.
    let heard = eventually("a second of media", || async {
        let heard = bot.heard("/media").pop()?;
        (media_of(&heard, "inbound").len() >= 50).then_some(())
    })
    .await;
    let () = heard;
    let (status, stopped) = local
        .post(
            &format!("{}/{call}/Streams/bot.json", local.calls()),
            "Status=stopped",
        )
        .await;
    assert_eq!(
        (status, stopped["status"].as_str()),
        (200, Some("stopped")),
        "{stopped}"
    );
    assert_eq!(stopped["sid"], sid.as_str());
    let heard = eventually("the stop message", || async {
        let heard = bot.heard("/media").pop()?;
        heard
            .iter()
            .any(|h| h.message["event"] == "stop")
            .then_some(heard)
    })
    .await;

    let connected = &heard[0].message;
    assert_eq!(connected["event"], "connected");
    assert_eq!(
        (
            connected["protocol"].as_str(),
            connected["version"].as_str()
        ),
        (Some("Call"), Some("1.0.0"))
    );
    let start = &heard[1].message;
    assert_eq!(start["event"], "start");
    assert_eq!(start["sequenceNumber"], "1");
    assert_eq!(start["streamSid"], sid.as_str());
    assert_eq!(start["start"]["streamSid"], sid.as_str());
    assert_eq!(start["start"]["callSid"], call.as_str());
    assert_eq!(start["start"]["accountSid"], local.sid.as_str());
    assert_eq!(
        start["start"]["tracks"],
        serde_json::json!(["inbound", "outbound"])
    );
    assert_eq!(
        start["start"]["customParameters"],
        serde_json::json!({"customer": "42", "lang": "en-GB"})
    );
    assert_eq!(
        start["start"]["mediaFormat"],
        serde_json::json!({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1})
    );
    for (n, h) in heard[1..].iter().enumerate() {
        assert_eq!(
            h.message["sequenceNumber"],
            (n + 1).to_string(),
            "one by one"
        );
        assert_eq!(h.message["streamSid"], sid.as_str());
    }
    let last = heard.last().unwrap();
    assert_eq!(last.message["event"], "stop");
    assert_eq!(last.message["stop"]["callSid"], call.as_str());
    assert_eq!(last.message["stop"]["accountSid"], local.sid.as_str());
    for track in ["inbound", "outbound"] {
        let media = media_of(&heard, track);
        for (n, h) in media.iter().enumerate() {
            let m = &h.message["media"];
            assert_eq!(m["chunk"], (n + 1).to_string(), "{track}");
            assert_eq!(m["timestamp"], (n * 20).to_string(), "{track}");
            let payload = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                m["payload"].as_str().unwrap(),
            )
            .unwrap();
            assert_eq!(payload.len(), 160, "20 ms of 8 kHz μ-law");
        }
        // Paced in real time: one message a track every 20 ms, on average over the stream
        // (±3 ms: the test's own scheduling on a loaded machine is the jitter).
        let span = media.last().unwrap().at - media[0].at;
        let mean = span.as_secs_f64() * 1000.0 / (media.len() - 1) as f64;
        assert!(
            (mean - 20.0).abs() < 3.0,
            "{track}: {mean} ms between messages"
        );
    }

    let callbacks = eventually("the stream's callbacks", || async {
        let got = local.fetches("/stream-events");
        (got.len() >= 2).then_some(got)
    })
    .await;
    let events: Vec<&str> = callbacks
        .iter()
        .map(|r| r.params["StreamEvent"].as_str())
        .collect();
    assert_eq!(events, ["stream-started", "stream-stopped"]);
    assert_eq!(callbacks[0].params["StreamSid"], sid);
    assert_eq!(callbacks[0].params["StreamName"], "bot");
    assert_eq!(callbacks[0].params["CallSid"], call);
    let (status, again) = local
        .post(
            &format!("{}/{call}/Streams/{sid}.json", local.calls()),
            "Status=stopped",
        )
        .await;
    assert_eq!(
        (status, again["code"].as_u64()),
        (409, Some(21220)),
        "{again}"
    );
}

/// `<Connect><Stream>`: the bot's audio is played back 20 ms at a time, its marks come back
/// once what it sent before them has played (or at once when it clears the rest), and when it
/// closes the socket the call goes on with the RCML after `<Connect>`.
async fn a_voice_bot_on_a_bidirectional_stream(local: Local) {
    use teleapi_tests::ws::Step;
    let bot = WsPeer::start().await;
    let audio = |bytes: usize| {
        let payload = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            vec![0x7f; bytes],
        );
        Step::Send(serde_json::json!({"event": "media", "media": {"payload": payload}}))
    };
    let mark =
        |name: &str| Step::Send(serde_json::json!({"event": "mark", "mark": {"name": name}}));
    bot.script(
        "/bot",
        vec![
            audio(800), // 100 ms
            mark("greeting"),
            audio(8000), // a second
            mark("question"),
            Step::Wait(Duration::from_millis(400)),
            Step::Send(serde_json::json!({"event": "clear"})),
            Step::Wait(Duration::from_millis(200)),
            Step::Close,
        ],
    );
    let rcml = format!(
        "<Response><Connect><Stream url=\"{}\"><Parameter name=\"lang\" value=\"en\"/></Stream></Connect><Say>Goodbye</Say><Hangup/></Response>",
        bot.url("/bot")
    );
    local.app.always("/connect", Reply::rcml(&rcml));
    let call = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}",
            local.app("/connect")
        ))
        .await;
    eventually("the call to end after the stream", || {
        status_is(&local, &call, "completed")
    })
    .await;
    let heard = bot.heard("/bot").pop().expect("the bot was connected");
    let start = heard
        .iter()
        .find(|h| h.message["event"] == "start")
        .unwrap();
    assert_eq!(
        start.message["start"]["tracks"],
        serde_json::json!(["inbound"])
    );
    assert_eq!(
        start.message["start"]["customParameters"],
        serde_json::json!({"lang": "en"})
    );
    let marks: Vec<&Heard> = heard
        .iter()
        .filter(|h| h.message["event"] == "mark")
        .collect();
    let names: Vec<&str> = marks
        .iter()
        .map(|h| h.message["mark"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["greeting", "question"]);
    // The greeting's mark once its 100 ms played; the question's when the rest was cleared,
    // 400 ms after it was sent, not after its second. (Measured from when the bot read
    // `start`, which this test's busy runtime may delay by a few tens of ms: the bounds allow
    // for it.)
    let sent = start.at;
    let greeting = marks[0].at - sent;
    let question = marks[1].at - sent;
    assert!(
        greeting >= Duration::from_millis(60) && greeting < Duration::from_millis(350),
        "{greeting:?}"
    );
    assert!(
        question >= Duration::from_millis(380) && question < Duration::from_millis(900),
        "{question:?}"
    );
    assert!(
        heard.iter().all(|h| h.message["event"] != "stop"),
        "the bot closed it: no stop"
    );
}

/// DTMF both ways: `SendDigits` played to the callee once it answers; `<Play digits>`;
/// digits pressed on a call (teleapi-local's dev route) collected by `<Gather>` and posted to
/// its action as Twilio does, and heard by the call's stream as `dtmf` messages.
async fn digits_in_and_out(local: Local) {
    let digits_of = |call: &str| {
        let url = format!("{}/dev/Calls/{call}/Digits", local.base);
        let client = local.client.clone();
        async move {
            let got: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            (
                got["sent"].as_str().unwrap().to_owned(),
                got["pressed"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (status, refused) = local
        .post(
            &format!("{}.json", local.calls()),
            &format!(
                "From=%2B15551230001&To=client%3Abob&Url={}&SendDigits=12x",
                local.app("/hold")
            ),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let dialled = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}&SendDigits=99w%23",
            local.app("/hold")
        ))
        .await;
    eventually("the digits to be played to the callee", || async {
        (digits_of(&dialled).await.0 == "99#").then_some(())
    })
    .await;

    local.app.always(
        "/ivr",
        Reply::rcml(
            "<Response><Play digits=\"1w2\"/><Gather numDigits=\"3\" action=\"/pin\" timeout=\"500\"><Say>Enter your PIN</Say></Gather><Say>Nothing</Say><Hangup/></Response>",
        ),
    );
    local
        .app
        .always("/pin", Reply::rcml("<Response><Hangup/></Response>"));
    let bot = WsPeer::start().await;
    let call = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Abob&Url={}",
            local.app("/ivr")
        ))
        .await;
    eventually("the call to be answered", || {
        status_is(&local, &call, "in-progress")
    })
    .await;
    let (status, _) = local
        .post(
            &format!("{}/{call}/Streams.json", local.calls()),
            &format!("Url={}", encode(&bot.url("/dtmf"))),
        )
        .await;
    assert_eq!(status, 201);
    eventually("the stream to start", || async {
        let heard = bot.heard("/dtmf").pop()?;
        heard
            .iter()
            .any(|h| h.message["event"] == "start")
            .then_some(())
    })
    .await;
    eventually("<Play digits> to be played", || async {
        (digits_of(&call).await.0 == "12").then_some(())
    })
    .await;
    let press = |digits: &str| {
        let url = format!("{}/dev/Calls/{call}/Digits", local.base);
        let client = local.client.clone();
        let body = format!("Digits={}", encode(digits));
        async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(press("42").await, 204);
    assert_eq!(press("7").await, 204);
    let gathered = eventually("the gathered digits at the action", || async {
        local.fetches("/pin").pop()
    })
    .await;
    assert_eq!(gathered.method, "POST");
    assert_eq!(gathered.params["Digits"], "427");
    assert_eq!(gathered.params["FinishedOnKey"], "");
    assert_eq!(gathered.params["CallSid"], call);
    eventually("the call to hang up", || {
        status_is(&local, &call, "completed")
    })
    .await;
    assert_eq!(digits_of(&call).await, ("12".to_owned(), "427".to_owned()));
    let heard = bot.heard("/dtmf").pop().unwrap();
    let dtmf: Vec<(&str, &str)> = heard
        .iter()
        .filter(|h| h.message["event"] == "dtmf")
        .map(|h| {
            (
                h.message["dtmf"]["track"].as_str().unwrap(),
                h.message["dtmf"]["digit"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dtmf,
        [
            ("inbound_track", "4"),
            ("inbound_track", "2"),
            ("inbound_track", "7")
        ]
    );
    let heard = eventually("the stream to stop with its call", || async {
        let heard = bot.heard("/dtmf").pop()?;
        (heard.last()?.message["event"] == "stop").then_some(heard)
    })
    .await;
    assert_eq!(
        heard.last().unwrap().message["stop"]["callSid"],
        call.as_str()
    );
    assert_eq!(press("1").await, 404, "the call is over");
    assert_eq!(press("1x").await, 400);
}

on_both_backends!(
    transfer_bob_to_alice,
    conference,
    a_moderated_conference,
    a_warm_transfer_through_the_conference_api,
    hanging_up_with_status_callbacks,
    fallback_on_a_failing_url,
    mute_then_unmute,
    moving_both_legs,
    phones_that_do_not_answer,
    the_simulated_worker_heartbeats,
    recording_a_call,
    recording_from_answer,
    streaming_a_call,
    a_voice_bot_on_a_bidirectional_stream,
    digits_in_and_out,
    what_happened_to_a_call,
);
