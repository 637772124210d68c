//! Audio every worker writes the same way: G.711 μ-law for media streams, and recordings as a
//! WAV file (8 kHz, 16-bit PCM, one channel or one per leg) with an MP3 of the same audio
//! beside it (32 kbit/s, LAME), which is what the Recordings API serves.

#[cfg(feature = "audio-files")]
use std::path::Path;

/// Samples a second, of every recording and stream.
pub const SAMPLE_RATE: u32 = 8_000;

/// Bytes (samples) of μ-law in 20 ms: one media stream frame.
pub const FRAME_BYTES: usize = 160;

/// G.711 μ-law of one 16-bit sample.
pub fn mulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut value = i32::from(sample);
    let sign = if value < 0 {
        value = -value;
        0x80
    } else {
        0
    };
    value = value.min(CLIP) + BIAS;
    let exponent = (0..8).rev().find(|e| value & (0x80 << e) != 0).unwrap_or(0);
    let mantissa = (value >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// A recording's files.
#[cfg(feature = "audio-files")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub wav: Vec<u8>,
    pub mp3: Vec<u8>,
    /// Sample frames (samples per channel).
    pub frames: u64,
}

/// `samples` (interleaved when `channels` is 2) as a WAV file and an MP3 of the same audio.
#[cfg(feature = "audio-files")]
pub fn encode_recording(channels: u16, samples: &[i16]) -> Result<Encoded, String> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let mut writer = hound::WavWriter::new(&mut wav, spec).map_err(|e| e.to_string())?;
    for sample in samples {
        writer.write_sample(*sample).map_err(|e| e.to_string())?;
    }
    writer.finalize().map_err(|e| e.to_string())?;
    Ok(Encoded {
        wav: wav.into_inner(),
        mp3: encode_mp3(channels, samples)?,
        frames: samples.len() as u64 / u64::from(channels.max(1)),
    })
}

/// Writes `samples` (interleaved when `channels` is 2) as a WAV file at `path` and an MP3
/// beside it (`.mp3`); the number of sample frames (samples per channel).
#[cfg(feature = "audio-files")]
pub fn write_recording(path: &Path, channels: u16, samples: &[i16]) -> Result<u64, String> {
    let encoded = encode_recording(channels, samples)?;
    std::fs::write(path, encoded.wav).map_err(|e| e.to_string())?;
    std::fs::write(path.with_extension("mp3"), encoded.mp3).map_err(|e| e.to_string())?;
    Ok(encoded.frames)
}

#[cfg(feature = "audio-files")]
fn encode_mp3(channels: u16, samples: &[i16]) -> Result<Vec<u8>, String> {
    use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, InterleavedPcm, MonoPcm, Quality};
    let failed = |e: &dyn std::fmt::Display| format!("mp3: {e}");
    let mut builder = Builder::new().ok_or("mp3: LAME did not start")?;
    builder
        .set_num_channels(u8::try_from(channels).unwrap_or(1))
        .map_err(|e| failed(&e))?;
    builder
        .set_sample_rate(SAMPLE_RATE)
        .map_err(|e| failed(&e))?;
    builder.set_brate(Bitrate::Kbps32).map_err(|e| failed(&e))?;
    builder.set_quality(Quality::Good).map_err(|e| failed(&e))?;
    let mut encoder = builder.build().map_err(|e| failed(&e))?;
    // LAME writes into the buffer's spare room: it must be there before each call (an empty
    // one reads as "unbounded" to LAME).
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(samples.len()));
    if channels == 2 {
        encoder.encode_to_vec(InterleavedPcm(samples), &mut out)
    } else {
        encoder.encode_to_vec(MonoPcm(samples), &mut out)
    }
    .map_err(|e| failed(&e))?;
    out.reserve(7_200);
    encoder
        .flush_to_vec::<FlushNoGap>(&mut out)
        .map_err(|e| failed(&e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mulaw_matches_g711() {
        // Reference values of the G.711 μ-law table.
        assert_eq!(mulaw(0), 0xff);
        assert_eq!(mulaw(-1), 0x7f);
        assert_eq!(mulaw(32_767), 0x80);
        assert_eq!(mulaw(-32_768), 0x00);
        assert_eq!(mulaw(1_000), 0xce);
    }

    #[test]
    #[cfg(feature = "audio-files")]
    fn writes_a_wav_and_an_mp3() {
        let dir = std::env::temp_dir().join(format!("teleapi-audio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tone: Vec<i16> = (0..8_000)
            .map(|n| ((n as f64 * 0.3).sin() * 6_000.0) as i16)
            .collect();
        for channels in [1u16, 2] {
            let path = dir.join(format!("tone-{channels}.wav"));
            let frames = write_recording(&path, channels, &tone).unwrap();
            assert_eq!(frames, 8_000 / u64::from(channels));
            let reader = hound::WavReader::open(&path).unwrap();
            assert_eq!(reader.spec().channels, channels);
            assert_eq!(u64::from(reader.duration()), frames);
            let mp3 = std::fs::metadata(path.with_extension("mp3")).unwrap().len();
            assert!(mp3 > 500, "{mp3}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
