//! The audio of prompts: `<Say>` spoken by espeak-ng (offline), `<Play>` fetched over HTTP(S)
//! and decoded (WAV, MP3) with symphonia, resampled to 8 kHz with rubato, and cached by URL as
//! HTTP's caching rules allow (http-cache-semantics); `<Pause>` as silence; DTMF as keys.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};
use teleapi_worker::Prompt;
use tokio::io::AsyncWriteExt;

use crate::pacer::{FRAME, FRAME_SAMPLES};
use crate::sound::Part;

/// The largest audio file fetched for `<Play>` (Twilio's limit is in the tens of MB).
pub const MAX_AUDIO_BYTES: usize = 32 * 1024 * 1024;

/// A conference's beep: a tone of 440 Hz (A4), apart from speech's formants and from the tests'
/// phones' tones.
pub const BEEP_HZ: f64 = 440.0;
/// How long a `<Play>` fetch or a `<Say>` may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// Decoded files cached at most (each a few seconds to minutes of 8 kHz audio).
const CACHED_FILES: usize = 64;

/// Turns prompts into audio.
#[derive(Clone)]
pub struct Prompts {
    http: reqwest::Client,
    espeak: String,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
}

struct Cached {
    policy: CachePolicy,
    samples: Arc<[i16]>,
}

impl Prompts {
    /// `espeak`: the speech program (`espeak-ng`, on the PATH).
    pub fn new(espeak: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(LOAD_TIMEOUT)
            .build()
            .expect("an HTTP client builds");
        Self {
            http,
            espeak: espeak.into(),
            cache: Arc::default(),
        }
    }

    /// What `prompt` plays.
    pub async fn parts(&self, prompt: &Prompt) -> Result<Vec<Part>, String> {
        Ok(match prompt {
            Prompt::Say {
                text,
                voice,
                language,
                loops,
            } => {
                let samples: Arc<[i16]> = self
                    .say(text, voice.as_deref(), language.as_deref())
                    .await?
                    .into();
                vec![Part::Samples {
                    samples,
                    loops: (*loops).max(1),
                }]
            }
            Prompt::Play { url, loops } => vec![Part::Samples {
                samples: self.fetch(url).await?,
                loops: *loops,
            }],
            Prompt::Pause { seconds } => vec![Part::Silence(
                u64::from(*seconds) * 1_000 / FRAME.as_millis() as u64,
            )],
            Prompt::Digits(keys) => vec![Part::Keys(keys.clone())],
            Prompt::Beep => vec![Part::Samples {
                samples: crate::sound::tone(BEEP_HZ, 0.25).into(),
                loops: 1,
            }],
        })
    }

    /// Speech of `text`, 8 kHz.
    pub async fn say(
        &self,
        text: &str,
        voice: Option<&str>,
        language: Option<&str>,
    ) -> Result<Vec<i16>, String> {
        let voice = espeak_voice(voice, language);
        let mut child = tokio::process::Command::new(&self.espeak)
            .args(["--stdout", "--stdin", "-v", &voice])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("{} did not start: {e}", self.espeak))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let text = text.to_owned();
        tokio::spawn(async move {
            let _ = stdin.write_all(text.as_bytes()).await;
        });
        let output = tokio::time::timeout(LOAD_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| "speech took too long".to_owned())?
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!("{} failed ({})", self.espeak, output.status));
        }
        let decoded = tokio::task::spawn_blocking(move || decode(output.stdout))
            .await
            .map_err(|e| e.to_string())??;
        Ok(decoded)
    }

    /// The audio at `url`, from the cache while it is fresh (or the server says it has not
    /// changed).
    pub async fn fetch(&self, url: &str) -> Result<Arc<[i16]>, String> {
        let request = http::Request::get(url)
            .body(())
            .map_err(|e| format!("'{url}': {e}"))?;
        let now = SystemTime::now();
        let cached = self.cache.lock().unwrap().get(url).map(|c| {
            (
                c.policy.before_request(&request, now),
                c.samples.clone(),
                c.policy.clone(),
            )
        });
        let mut outgoing = self.http.get(url);
        let mut revalidating = None;
        match cached {
            Some((BeforeRequest::Fresh(_), samples, _)) => return Ok(samples),
            Some((BeforeRequest::Stale { request: parts, .. }, samples, policy)) => {
                for (name, value) in &parts.headers {
                    outgoing = outgoing.header(name, value);
                }
                revalidating = Some((samples, policy));
            }
            None => {}
        }
        let response = outgoing
            .send()
            .await
            .map_err(|e| format!("fetching '{url}': {e}"))?;
        let mut head = http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            head = head.header(name, value);
        }
        let head = head.body(()).map_err(|e| e.to_string())?;
        let options = CacheOptions {
            shared: false,
            cache_heuristic: 0.0,
            ..CacheOptions::default()
        };
        if let Some((samples, policy)) = revalidating
            && response.status() == reqwest::StatusCode::NOT_MODIFIED
        {
            if let AfterResponse::NotModified(policy, _) =
                policy.after_response(&request, &head, SystemTime::now())
            {
                self.store(url, policy, samples.clone());
            }
            return Ok(samples);
        }
        if !response.status().is_success() {
            return Err(format!("fetching '{url}': HTTP {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_AUDIO_BYTES as u64)
        {
            return Err(format!("'{url}' is larger than {MAX_AUDIO_BYTES} bytes"));
        }
        let bytes = read_bounded(response).await?;
        let samples: Arc<[i16]> = tokio::task::spawn_blocking(move || decode(bytes))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("'{url}': {e}"))?
            .into();
        let policy = CachePolicy::new_options(&request, &head, SystemTime::now(), options);
        if policy.is_storable() {
            self.store(url, policy, samples.clone());
        }
        Ok(samples)
    }

    fn store(&self, url: &str, policy: CachePolicy, samples: Arc<[i16]>) {
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= CACHED_FILES && !cache.contains_key(url) {
            // The one that goes stale first makes room.
            let now = SystemTime::now();
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| c.policy.time_to_live(now))
                .map(|(u, _)| u.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        cache.insert(url.to_owned(), Cached { policy, samples });
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_AUDIO_BYTES {
            return Err(format!("larger than {MAX_AUDIO_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// espeak-ng's voice for RCML's `voice` and `language`: the language (`en-US` → `en-us`),
/// with a male or female variant for `man` and `woman` (Twilio's `alice` and Polly's voices
/// have no espeak counterpart: the language's default voice speaks).
pub fn espeak_voice(voice: Option<&str>, language: Option<&str>) -> String {
    let language = language
        .map(|l| l.to_ascii_lowercase())
        .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or_else(|| "en-us".into());
    let variant = match voice.map(str::to_ascii_lowercase).as_deref() {
        Some("man") => "+m3",
        Some("woman") => "+f3",
        _ => "",
    };
    format!("{language}{variant}")
}

/// Any WAV or MP3 file as 8 kHz mono samples.
pub fn decode(bytes: Vec<u8>) -> Result<Vec<i16>, String> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let source = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            &Hint::new(),
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| format!("not audio this worker plays (WAV, MP3): {e}"))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("no audio track")?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or("no audio track")?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| e.to_string())?;
    let (mut mono, mut rate, mut interleaved) = (Vec::<f32>::new(), 0u32, Vec::<f32>::new());
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) | Err(Error::ResetRequired) => break,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.to_string()),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(Error::DecodeError(_)) => continue,
            Err(e) => return Err(e.to_string()),
        };
        rate = buffer.spec().rate();
        let channels = buffer.spec().channels().count().max(1);
        buffer.copy_to_vec_interleaved(&mut interleaved);
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
        if mono.len() > 3600 * 48_000 {
            return Err("longer than an hour".into());
        }
    }
    if rate == 0 {
        return Ok(Vec::new());
    }
    let resampled = resample(&mono, rate)?;
    Ok(resampled
        .iter()
        .map(|s| (s.clamp(-1.0, 1.0) * 32_767.0) as i16)
        .collect())
}

/// `samples` at `rate`, at 8 kHz.
fn resample(samples: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::{Fft, FixedSync, Resampler};
    if rate == 8_000 || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut resampler = Fft::<f32>::new(rate as usize, 8_000, 1_024, 1, FixedSync::Input)
        .map_err(|e| e.to_string())?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| e.to_string())?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| e.to_string())?;
    Ok(output.take_data())
}

/// Frames of 20 ms in `samples` (rounded up).
pub fn frames(samples: usize) -> usize {
    samples.div_ceil(FRAME_SAMPLES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, samples: &[i16]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
        for s in samples {
            writer.write_sample(*s).unwrap();
        }
        writer.finalize().unwrap();
        out.into_inner()
    }

    #[test]
    fn a_wav_at_any_rate_comes_out_at_8_khz() {
        for rate in [8_000u32, 16_000, 22_050, 44_100] {
            let tone: Vec<i16> = (0..rate)
                .map(|i| {
                    ((i as f64 * 2.0 * std::f64::consts::PI * 1_000.0 / f64::from(rate)).sin()
                        * 8_000.0) as i16
                })
                .collect();
            let decoded = decode(wav(rate, &tone)).unwrap();
            let length = decoded.len() as i64;
            assert!((length - 8_000).abs() <= 8, "{rate}: {length}");
            let peak = decoded.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!((7_000..9_000).contains(&peak), "{rate}: {peak}");
        }
    }

    #[test]
    fn what_is_not_audio_says_so() {
        let err = decode(b"<html>not found</html>".to_vec()).unwrap_err();
        assert!(err.contains("not audio"), "{err}");
    }

    #[test]
    fn voices_and_languages() {
        assert_eq!(espeak_voice(None, None), "en-us");
        assert_eq!(espeak_voice(Some("woman"), Some("fr-FR")), "fr-fr+f3");
        assert_eq!(espeak_voice(Some("Polly.Joanna"), Some("en-GB")), "en-gb");
        assert_eq!(espeak_voice(Some("man"), Some("x;rm -rf")), "en-us+m3");
    }
}
