//! The simulated world of `teleapi-local`: phones that ring and answer, prompts that take the
//! time they would, and tones for audio ([`SimulatedMedia`], the kit's [`Media`]), and the
//! media workers that run on it ([`Simulator`]): the kit's workers, each with its own id,
//! commands queue and heartbeats, which can be drained and killed.
//!
//! Phones ring for `ring` and answer, unless the number contains `busy`, `noanswer` or
//! `fail`. `<Say>` takes about two and a half words a second, `<Play>` 2 s a loop (`loop="0"`:
//! an hour), `<Pause>` its length, DTMF 100 ms a digit (500 ms a `w`), all multiplied by
//! `speed`. What a call "hears" from its caller is a 440 Hz tone, what it plays them 660 Hz.

mod recording;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use teleapi_domain::conference::ParticipantState;
use teleapi_domain::recording::RecordingSpec;
use teleapi_domain::sid::WorkerId;
use teleapi_domain::worker::HEARTBEAT_INTERVAL;
use teleapi_domain::{CallSid, ConferenceSid, Timestamp};
use teleapi_ports::Queue;
use teleapi_worker::audio::{FRAME_BYTES, SAMPLE_RATE, mulaw};
use teleapi_worker::{
    AudioTap, InboundCall, Inputs, LegInfo, LegInput, Life, Media, PlayId, Prompt, RecordingMedia,
    SharedQueue, Stores, Track, Worker, WorkerConfig, WorkerHandle, WorkerQueues,
};
use tokio::task::JoinHandle;

/// How the simulated world behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// How long a leg rings before it is answered.
    pub ring: Duration,
    /// Multiplies every simulated duration (Say, Play, Pause, ring timeouts): 0.01 runs a
    /// minute-long call in 600 ms.
    pub speed: f64,
    /// Whether the workers run at all (`--no-simulator`: commands stay on the queue, for a real
    /// worker or for measuring the API alone).
    pub enabled: bool,
    /// How often each worker sends `worker.heartbeat` (every 10 s, as a real worker; less in
    /// tests).
    pub heartbeat: Duration,
    /// Where recordings' media is written (`--recordings-dir`).
    pub recordings_dir: PathBuf,
    /// How many workers run (`--workers`).
    pub workers: usize,
    /// Where the API is reached, for the `RecordingUrl` the workers give an action URL (the
    /// stack sets it).
    pub public_url: String,
}

/// Where a local stack keeps recordings unless told otherwise.
pub fn default_recordings_dir() -> PathBuf {
    std::env::temp_dir().join("teleapi-local-recordings")
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            ring: Duration::from_millis(1500),
            speed: 1.0,
            enabled: true,
            heartbeat: HEARTBEAT_INTERVAL,
            recordings_dir: default_recordings_dir(),
            workers: 1,
            public_url: String::new(),
        }
    }
}

/// The DTMF of one call, as the simulated phones heard it: what the platform played
/// (`SendDigits`, `<Play digits>`) and what the caller pressed (`POST /dev/Calls/{Sid}/Digits`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dtmf {
    pub sent: String,
    pub pressed: String,
}

/// A simulated phone on a leg.
struct Phone {
    inputs: Inputs,
    /// The prompt playing, and the timer that ends it.
    playing: Option<(PlayId, JoinHandle<()>)>,
    /// Ringing or answering, until answered.
    ringing: Option<JoinHandle<()>>,
    /// The far end's number: how it talks when listened to ([`talk`]).
    far_end: String,
    /// Its talk, while it is listened to.
    talking: Option<JoinHandle<()>>,
}

/// How long the far end `number` speaks once listened to (at the simulator's speed), then it is
/// silent: a number with `machine` in it is an answering machine's 4-second greeting, one with
/// `silent` never speaks, and anyone else says hello for a second.
fn talk(number: &str) -> Option<f64> {
    let number = number.to_ascii_lowercase();
    if number.contains("silent") {
        None
    } else if number.contains("machine") {
        Some(4.0)
    } else {
        Some(1.0)
    }
}

/// Fake phones and tones: the media of the simulated workers.
#[derive(Clone)]
pub struct SimulatedMedia {
    config: SimulatorConfig,
    phones: Arc<Mutex<HashMap<CallSid, Phone>>>,
    /// Every call's DTMF (only calls that played or heard some), for `GET /dev/Calls/{Sid}/Digits`.
    dtmf: Arc<Mutex<HashMap<CallSid, Dtmf>>>,
    /// The workers, by the address a bridge between workers names ([`teleapi_worker::bridge_uri`]:
    /// a worker's id).
    workers: Arc<Mutex<HashMap<String, WorkerHandle>>>,
    /// The legs of bridges between workers, each with the other end: one end's answer, refusal
    /// or hanging up is what the other hears.
    wires: Arc<Mutex<HashMap<CallSid, CallSid>>>,
}

impl SimulatedMedia {
    pub fn new(config: SimulatorConfig) -> Self {
        Self {
            config,
            phones: Arc::default(),
            dtmf: Arc::default(),
            workers: Arc::default(),
            wires: Arc::default(),
        }
    }

    /// A bridge between workers, placed by the caller's worker (`leg`): offered to the agent's
    /// worker as a leg of its own, wired to this one; it fails if that worker does not take it.
    fn place_bridge(&self, leg: &LegInfo, inputs: Inputs) {
        self.add(leg, inputs.clone(), &leg.to);
        let address = leg.to.rsplit('@').next().unwrap_or_default();
        let worker = self.workers.lock().unwrap().get(address).cloned();
        let far = CallSid::generate();
        {
            let mut wires = self.wires.lock().unwrap();
            wires.insert(leg.sid.clone(), far.clone());
            wires.insert(far.clone(), leg.sid.clone());
        }
        if !worker.is_some_and(|w| w.bridge_in(far, &leg.from, &leg.to)) {
            self.unwire(&leg.sid);
            inputs.send(LegInput::Failed(format!("no agent at {}", leg.to)));
        }
    }

    /// The other end of `leg`'s wire, if it is a bridge's, which is cut.
    fn unwire(&self, leg: &CallSid) -> Option<CallSid> {
        let mut wires = self.wires.lock().unwrap();
        let other = wires.remove(leg)?;
        wires.remove(&other);
        Some(other)
    }

    /// Tells the other end of `leg`'s wire `input`.
    fn tell_other(&self, leg: &CallSid, input: LegInput, cut: bool) {
        let other = if cut {
            self.unwire(leg)
        } else {
            self.wires.lock().unwrap().get(leg).cloned()
        };
        let inputs = other.and_then(|o| {
            self.phones
                .lock()
                .unwrap()
                .get(&o)
                .map(|p| p.inputs.clone())
        });
        if let Some(inputs) = inputs {
            inputs.send(input);
        }
    }

    fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.config.speed).max(0.0))
    }

    /// How long `prompt` takes to play, in the simulated world's time.
    fn duration(&self, prompt: &Prompt) -> Duration {
        let seconds = match prompt {
            // About two and a half words a second, at least one second.
            Prompt::Say { text, loops, .. } => {
                (text.split_whitespace().count() as f64 / 2.5).max(1.0) * f64::from(*loops)
            }
            Prompt::Play { loops: 0, .. } => 3600.0,
            Prompt::Play { loops, .. } => 2.0 * f64::from(*loops),
            Prompt::Pause { seconds } => f64::from(*seconds),
            Prompt::Digits(digits) => digits_time(digits),
            Prompt::Beep => 0.25,
        };
        self.scaled(seconds)
    }

    fn log_sent(&self, call: &CallSid, digits: &str) {
        let sent: String = digits.chars().filter(|c| *c != 'w').collect();
        if !sent.is_empty() {
            self.dtmf
                .lock()
                .unwrap()
                .entry(call.clone())
                .or_default()
                .sent
                .push_str(&sent);
        }
    }

    /// The caller of a live call presses `digits`; `false` if no simulated phone is on it.
    pub fn press(&self, call: &CallSid, digits: &str) -> bool {
        let phones = self.phones.lock().unwrap();
        let Some(phone) = phones.get(call) else {
            return false;
        };
        let keys: String = digits
            .chars()
            .filter(|c| c.is_ascii_digit() || "*#".contains(*c))
            .collect();
        self.dtmf
            .lock()
            .unwrap()
            .entry(call.clone())
            .or_default()
            .pressed
            .push_str(&keys);
        phone.inputs.send(LegInput::Digits(keys));
        true
    }

    /// The DTMF a call played and heard, if it did.
    pub fn dtmf(&self, call: &CallSid) -> Option<Dtmf> {
        self.dtmf.lock().unwrap().get(call).cloned()
    }

    fn add(&self, leg: &LegInfo, inputs: Inputs, far_end: &str) {
        self.phones.lock().unwrap().insert(
            leg.sid.clone(),
            Phone {
                inputs,
                playing: None,
                ringing: None,
                far_end: far_end.to_owned(),
                talking: None,
            },
        );
    }

    /// Stops what `call` plays, reporting it played; `None` if it played nothing.
    fn stop(&self, call: &CallSid) {
        let mut phones = self.phones.lock().unwrap();
        if let Some(phone) = phones.get_mut(call)
            && let Some((id, timer)) = phone.playing.take()
        {
            timer.abort();
            phone.inputs.send(LegInput::Played(id));
        }
    }
}

/// How long DTMF takes to play: 100 ms a digit, 500 ms a `w` (unscaled seconds).
fn digits_time(digits: &str) -> f64 {
    digits
        .chars()
        .map(|c| if c == 'w' { 0.5 } else { 0.1 })
        .sum()
}

#[async_trait]
impl Media for SimulatedMedia {
    fn place(&self, leg: &LegInfo, inputs: Inputs) {
        if teleapi_worker::bridged_agent(&leg.to).is_some() {
            return self.place_bridge(leg, inputs);
        }
        let to = leg.to.to_ascii_lowercase();
        if to.contains("busy") {
            inputs.send(LegInput::Busy);
        } else if to.contains("fail") {
            inputs.send(LegInput::Failed("the number fails".into()));
        } else if !to.contains("noanswer") {
            let (ring, answered) = (self.config.ring, inputs.clone());
            let timer = tokio::spawn(async move {
                tokio::time::sleep(ring).await;
                answered.send(LegInput::Answered);
            });
            self.add(leg, inputs, &leg.to);
            if let Some(phone) = self.phones.lock().unwrap().get_mut(&leg.sid) {
                phone.ringing = Some(timer);
            }
            return;
        }
        self.add(leg, inputs, &leg.to);
    }

    fn attach(&self, leg: &LegInfo, inputs: Inputs) {
        self.add(leg, inputs, &leg.from);
    }

    async fn answer(&self, leg: &CallSid) {
        tokio::time::sleep(self.config.ring).await;
        self.tell_other(leg, LegInput::Answered, false);
    }

    fn reject(&self, leg: &CallSid, busy: bool) {
        let refusal = if busy {
            LegInput::Busy
        } else {
            LegInput::Failed("refused".into())
        };
        self.tell_other(leg, refusal, true);
        self.hang_up(leg);
    }

    fn hang_up(&self, leg: &CallSid) {
        self.tell_other(leg, LegInput::HungUp, true);
        if let Some(phone) = self.phones.lock().unwrap().remove(leg) {
            for timer in phone
                .ringing
                .into_iter()
                .chain(phone.talking)
                .chain(phone.playing.map(|(_, t)| t))
            {
                timer.abort();
            }
        }
    }

    fn play(&self, leg: &CallSid, id: PlayId, prompt: Prompt) {
        self.stop(leg);
        if let Prompt::Digits(digits) = &prompt {
            self.log_sent(leg, digits);
        }
        let mut phones = self.phones.lock().unwrap();
        let Some(phone) = phones.get_mut(leg) else {
            return;
        };
        let (length, inputs) = (self.duration(&prompt), phone.inputs.clone());
        let timer = tokio::spawn(async move {
            tokio::time::sleep(length).await;
            inputs.send(LegInput::Played(id));
        });
        phone.playing = Some((id, timer));
    }

    fn stop_playing(&self, leg: &CallSid) {
        self.stop(leg);
    }

    fn send_digits(&self, leg: &CallSid, digits: &str) {
        // Played to the callee while the call goes on, a digit every 100 ms.
        let (media, call, digits) = (self.clone(), leg.clone(), digits.to_owned());
        tokio::spawn(async move {
            for digit in digits.chars() {
                let pause = if digit == 'w' { 0.5 } else { 0.1 };
                tokio::time::sleep(media.scaled(pause)).await;
                media.log_sent(&call, &digit.to_string());
            }
        });
    }

    fn bridge(&self, _a: &CallSid, _b: &CallSid) {}

    fn unbridge(&self, _leg: &CallSid) {}

    fn set_muted(&self, _leg: &CallSid, _muted: bool) {}

    fn room(&self, _room: &ConferenceSid, _state: &ParticipantState) {}

    fn leave_room(&self, _room: &ConferenceSid, _leg: &CallSid) {}

    fn tap(&self, _leg: &CallSid) -> Box<dyn AudioTap> {
        Box::new(Tones)
    }

    fn listen(&self, leg: &CallSid, on: bool) {
        let mut phones = self.phones.lock().unwrap();
        let Some(phone) = phones.get_mut(leg) else {
            return;
        };
        if let Some(talking) = phone.talking.take() {
            talking.abort();
        }
        let Some(seconds) = talk(&phone.far_end).filter(|_| on) else {
            return;
        };
        let (length, inputs) = (self.scaled(seconds), phone.inputs.clone());
        phone.talking = Some(tokio::spawn(async move {
            inputs.send(LegInput::Speech(true));
            tokio::time::sleep(length).await;
            inputs.send(LegInput::Speech(false));
        }));
    }

    fn record(&self, _leg: &CallSid, spec: &RecordingSpec) -> Box<dyn RecordingMedia> {
        Box::new(recording::Tones::start(
            spec.clone(),
            self.config.recordings_dir.clone(),
        ))
    }
}

/// A simulated leg's audio: 440 Hz from the caller, 660 Hz towards them.
struct Tones;

/// 20 ms of a tone, from sample `n` on, in μ-law.
pub fn tone(hz: f64, n: u64) -> Vec<u8> {
    (0..FRAME_BYTES as u64)
        .map(|i| {
            let t = (n + i) as f64 / f64::from(SAMPLE_RATE);
            mulaw(((2.0 * std::f64::consts::PI * hz * t).sin() * 6000.0) as i16)
        })
        .collect()
}

impl AudioTap for Tones {
    fn read(&mut self, track: Track, sample: u64) -> Vec<u8> {
        match track {
            Track::Inbound => tone(440.0, sample),
            Track::Outbound => tone(660.0, sample),
        }
    }

    fn play(&mut self, _frame: &[u8]) {}
}

/// One simulated worker and how to reach it.
#[derive(Clone)]
pub struct SimulatedWorker {
    pub handle: WorkerHandle,
    /// When it was killed, if it was.
    pub killed_at: Option<Timestamp>,
}

/// A worker's media that is not the simulated world's (a SIP/RTP worker's), and where other
/// workers reach its agents (`None`: they do not).
#[derive(Clone)]
pub struct RealMedia {
    pub media: Arc<dyn Media>,
    pub bridge_address: Option<String>,
}

/// The simulated workers of a local stack, on one simulated world.
#[derive(Clone)]
pub struct Simulator {
    config: SimulatorConfig,
    media: SimulatedMedia,
    workers: Arc<Mutex<Vec<SimulatedWorker>>>,
    /// Runs that have not started yet (started by [`Simulator::run`]).
    pending: Arc<Mutex<Vec<Worker>>>,
    /// Inbound calls go to the active workers in turn.
    next: Arc<Mutex<usize>>,
}

impl Simulator {
    /// `config.workers` workers, each reading its own commands queue (`{prefix}{n}` in
    /// `commands`, whose URLs `own_url` makes) and, for new calls, the default queue of
    /// `commands`, and writing to `events`.
    pub fn new(
        commands: Arc<dyn Queue>,
        own_url: impl Fn(usize) -> String,
        events: Arc<dyn Queue>,
        config: SimulatorConfig,
    ) -> Self {
        Self::reading(commands, own_url, events, config, None)
    }

    /// [`Simulator::new`], with workers that read the control plane's `stores` (they sign
    /// their RCML fetches with the accounts' AuthTokens, and hold as many callers in a queue
    /// as the application set).
    pub fn reading(
        commands: Arc<dyn Queue>,
        own_url: impl Fn(usize) -> String,
        events: Arc<dyn Queue>,
        config: SimulatorConfig,
        stores: Option<Stores>,
    ) -> Self {
        Self::on_media(commands, own_url, events, config, stores, Vec::new())
    }

    /// [`Simulator::reading`], with each worker's legs on a media of its own instead of
    /// simulated phones (`--sip`: SIP/RTP workers' real phones; one worker per media, each
    /// with the address other workers bridge to); the workers are drained, killed and listed
    /// just the same. No media: `config.workers` simulated workers.
    pub fn on_media(
        commands: Arc<dyn Queue>,
        own_url: impl Fn(usize) -> String,
        events: Arc<dyn Queue>,
        config: SimulatorConfig,
        stores: Option<Stores>,
        real: Vec<RealMedia>,
    ) -> Self {
        let media = SimulatedMedia::new(config.clone());
        let started = Timestamp::now().millis();
        let mut workers = Vec::new();
        let mut pending = Vec::new();
        // `--no-simulator`: no worker at all (commands stay on the queue).
        let count = match (config.enabled, real.len()) {
            (false, _) => 0,
            (true, 0) => config.workers.max(1),
            (true, media) => media,
        };
        for n in 1..=count {
            let id = WorkerId::try_from(format!("teleapi-local.{started}.{n}"))
                .expect("a valid worker id");
            let mut worker_config = WorkerConfig::new(id.clone());
            worker_config.heartbeat = config.heartbeat;
            // Simulated workers (more than one) reach each other's agents through the
            // simulated world, by id; real ones at their address.
            let (legs, bridge_address): (Arc<dyn Media>, _) = match real.get(n - 1) {
                Some(real) => (real.media.clone(), real.bridge_address.clone()),
                None => (Arc::new(media.clone()), (count > 1).then(|| id.to_string())),
            };
            worker_config.bridge_address = bridge_address;
            worker_config.time_scale = config.speed;
            worker_config.public_url = config.public_url.clone();
            let queues = WorkerQueues {
                commands: commands.clone(),
                own_url: own_url(n),
                shared: Some(SharedQueue {
                    queue: commands.clone(),
                    url: None,
                }),
                events: events.clone(),
            };
            let mut worker = Worker::new(worker_config, queues, legs);
            if let Some(stores) = &stores {
                worker = worker.reading(stores.clone());
            }
            media
                .workers
                .lock()
                .unwrap()
                .insert(id.to_string(), worker.handle());
            workers.push(SimulatedWorker {
                handle: worker.handle(),
                killed_at: None,
            });
            pending.push(worker);
        }
        Self {
            config,
            media,
            workers: Arc::new(Mutex::new(workers)),
            pending: Arc::new(Mutex::new(pending)),
            next: Arc::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Runs every worker until it has left or is killed.
    pub async fn run(self) {
        let workers: Vec<Worker> = std::mem::take(&mut *self.pending.lock().unwrap());
        let runs: Vec<_> = workers.into_iter().map(|w| tokio::spawn(w.run())).collect();
        for run in runs {
            let _ = run.await;
        }
    }

    /// The workers, in the order they were started.
    pub fn workers(&self) -> Vec<SimulatedWorker> {
        self.workers.lock().unwrap().clone()
    }

    /// The worker named `id`.
    pub fn worker(&self, id: &str) -> Option<SimulatedWorker> {
        self.workers()
            .into_iter()
            .find(|w| w.handle.id().as_str() == id)
    }

    /// The first worker (the only one, unless `--workers` said more).
    ///
    /// # Panics
    ///
    /// With `--no-simulator`, which runs none.
    pub fn first(&self) -> WorkerHandle {
        self.workers.lock().unwrap()[0].handle.clone()
    }

    /// Kills the worker named `id`: silent from now on. `false` if there is none.
    pub fn kill(&self, id: &str) -> bool {
        let mut workers = self.workers.lock().unwrap();
        let Some(worker) = workers.iter_mut().find(|w| w.handle.id().as_str() == id) else {
            return false;
        };
        if worker.handle.life() != Life::Dead {
            worker.handle.kill();
            worker.killed_at = Some(Timestamp::now());
        }
        true
    }

    /// The next active worker, in turn, for a new call; `None` if none is active.
    pub fn pick(&self) -> Option<WorkerHandle> {
        let workers = self.workers.lock().unwrap();
        let mut next = self.next.lock().unwrap();
        for _ in 0..workers.len() {
            let worker = &workers[*next % workers.len()];
            *next += 1;
            if worker.handle.life() == Life::Active {
                return Some(worker.handle.clone());
            }
        }
        None
    }

    /// An inbound call arrives at `worker`.
    pub fn inbound(&self, worker: &WorkerHandle, call: InboundCall) -> bool {
        worker.inbound(call)
    }

    /// The caller of a live call presses `digits`; `false` if the call is not live here.
    pub fn press(&self, call: &CallSid, digits: &str) -> bool {
        self.media.press(call, digits)
    }

    /// The DTMF a call played and heard here, if it did.
    pub fn dtmf(&self, call: &CallSid) -> Option<Dtmf> {
        self.media.dtmf(call)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use teleapi_domain::{AccountSid, Direction};

    use super::*;

    fn media() -> SimulatedMedia {
        SimulatedMedia::new(SimulatorConfig {
            ring: Duration::from_millis(10),
            speed: 0.5,
            ..Default::default()
        })
    }

    fn leg(to: &str) -> LegInfo {
        LegInfo {
            sid: CallSid::generate(),
            account_sid: AccountSid::generate(),
            from: "+15551230001".into(),
            to: to.into(),
            direction: Direction::OutboundApi,
            parent: None,
        }
    }

    /// Inputs that land in a list.
    fn heard() -> (Inputs, Arc<Mutex<Vec<LegInput>>>) {
        let list: Arc<Mutex<Vec<LegInput>>> = Arc::default();
        let sink = list.clone();
        (
            Inputs::new(move |input| sink.lock().unwrap().push(input)),
            list,
        )
    }

    #[test]
    fn prompts_take_the_time_they_would_scaled() {
        let m = media();
        let say = |text: &str, loops| Prompt::Say {
            text: text.into(),
            voice: None,
            language: None,
            loops,
        };
        // Two and a half words a second (at least one), times the loops, times the speed.
        assert_eq!(
            m.duration(&say("one two three four five", 2)),
            Duration::from_secs(2)
        );
        assert_eq!(m.duration(&say("hi", 1)), Duration::from_millis(500));
        let play = |loops| Prompt::Play {
            url: "music.mp3".into(),
            loops,
        };
        assert_eq!(m.duration(&play(3)), Duration::from_secs(3));
        assert_eq!(
            m.duration(&play(0)),
            Duration::from_secs(1800),
            "an hour, scaled"
        );
        assert_eq!(
            m.duration(&Prompt::Pause { seconds: 4 }),
            Duration::from_secs(2)
        );
        assert_eq!(
            m.duration(&Prompt::Digits("12w".into())),
            Duration::from_millis(350)
        );
    }

    #[tokio::test]
    async fn the_number_decides_how_a_phone_answers() {
        let m = media();
        let outcome = |to: &'static str| {
            let m = m.clone();
            async move {
                let (inputs, list) = heard();
                m.place(&leg(to), inputs);
                tokio::time::sleep(Duration::from_millis(60)).await;
                list.lock().unwrap().clone()
            }
        };
        assert_eq!(outcome("+15557654321").await, [LegInput::Answered]);
        assert_eq!(outcome("+1555busy").await, [LegInput::Busy]);
        assert!(matches!(
            outcome("+1555fail").await.as_slice(),
            [LegInput::Failed(_)]
        ));
        assert_eq!(outcome("+1555noanswer").await, []);
    }

    #[tokio::test]
    async fn a_prompt_ends_once_stopped_or_played_and_keys_are_heard() {
        let m = media();
        let (inputs, list) = heard();
        let call = leg("+15557654321");
        m.attach(&call, inputs);
        m.play(&call.sid, PlayId(1), Prompt::Pause { seconds: 600 });
        m.stop_playing(&call.sid);
        m.stop_playing(&call.sid);
        m.play(&call.sid, PlayId(2), Prompt::Digits("4w2".into()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(m.press(&call.sid, "9x#"));
        assert!(!m.press(&CallSid::generate(), "1"), "no such call here");
        assert_eq!(
            *list.lock().unwrap(),
            [
                LegInput::Played(PlayId(1)),
                LegInput::Played(PlayId(2)),
                LegInput::Digits("9#".into()),
            ]
        );
        assert_eq!(
            m.dtmf(&call.sid),
            Some(Dtmf {
                sent: "42".into(),
                pressed: "9#".into()
            })
        );
        m.hang_up(&call.sid);
        assert!(!m.press(&call.sid, "1"), "hung up");
    }
}
