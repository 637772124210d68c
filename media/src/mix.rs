//! A conference room's audio, one 20 ms frame at a time: each participant hears the sum of
//! the others, not itself. A muted participant is heard by nobody; one on hold hears nobody and
//! is heard by nobody; a coach (`coach`, `CallSidToCoach`) is heard only by the participant it
//! coaches, and hears everyone. The sum is taken once per room (so a room of N costs O(N) a
//! frame, not O(N²)): each listener's frame is the room's sum less its own voice, plus its
//! coaches.

use std::collections::HashMap;

use teleapi_domain::CallSid;

use crate::pacer::FRAME_SAMPLES;

/// How one participant is in its room, as its audio needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub muted: bool,
    pub hold: bool,
    /// Coaching: heard only by this participant.
    pub coaching: Option<CallSid>,
}

/// One room's frame: what everyone said, summed.
#[derive(Debug, Default)]
pub struct RoomMix {
    /// The sum of the voices the whole room hears.
    all: Vec<i32>,
    /// Those voices, to take a listener's own out of the sum.
    voices: HashMap<CallSid, Vec<i16>>,
    /// Coaches' voices, and whom each is for.
    coaching: Vec<(CallSid, Vec<i16>)>,
}

impl RoomMix {
    /// `speaker` said `said` this frame (`None`: nothing arrived, or its call is muted).
    pub fn add(&mut self, speaker: &CallSid, member: &Member, said: Option<&[i16]>) {
        let Some(said) = said else { return };
        if member.muted || member.hold {
            return;
        }
        if let Some(coached) = &member.coaching {
            self.coaching.push((coached.clone(), said.to_vec()));
            return;
        }
        if self.all.is_empty() {
            self.all = vec![0; FRAME_SAMPLES];
        }
        for (sum, sample) in self.all.iter_mut().zip(said) {
            *sum += i32::from(*sample);
        }
        self.voices.insert(speaker.clone(), said.to_vec());
    }

    /// What `listener` hears this frame.
    pub fn heard_by(&self, listener: &CallSid, member: &Member) -> Vec<i16> {
        let mut frame = vec![0i32; FRAME_SAMPLES];
        if member.hold {
            return vec![0; FRAME_SAMPLES];
        }
        if !self.all.is_empty() {
            frame.copy_from_slice(&self.all);
        }
        if let Some(own) = self.voices.get(listener) {
            for (sum, sample) in frame.iter_mut().zip(own) {
                *sum -= i32::from(*sample);
            }
        }
        for (coached, said) in &self.coaching {
            if coached == listener {
                for (sum, sample) in frame.iter_mut().zip(said) {
                    *sum += i32::from(*sample);
                }
            }
        }
        frame
            .into_iter()
            .map(|s| s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Member {
        Member {
            muted: false,
            hold: false,
            coaching: None,
        }
    }

    fn voice(level: i16) -> Vec<i16> {
        vec![level; FRAME_SAMPLES]
    }

    #[test]
    fn each_hears_the_others_and_not_itself() {
        let (a, b, c) = (
            CallSid::generate(),
            CallSid::generate(),
            CallSid::generate(),
        );
        let mut room = RoomMix::default();
        room.add(&a, &member(), Some(&voice(1)));
        room.add(&b, &member(), Some(&voice(10)));
        room.add(&c, &member(), Some(&voice(100)));
        assert_eq!(room.heard_by(&a, &member()), voice(110));
        assert_eq!(room.heard_by(&b, &member()), voice(101));
        assert_eq!(room.heard_by(&c, &member()), voice(11));
    }

    #[test]
    fn muted_hold_and_coach() {
        let (a, b, c, coach) = (
            CallSid::generate(),
            CallSid::generate(),
            CallSid::generate(),
            CallSid::generate(),
        );
        let muted = Member {
            muted: true,
            ..member()
        };
        let hold = Member {
            hold: true,
            ..member()
        };
        let coaching = Member {
            coaching: Some(a.clone()),
            ..member()
        };
        let mut room = RoomMix::default();
        room.add(&a, &member(), Some(&voice(1)));
        room.add(&b, &muted, Some(&voice(10)));
        room.add(&c, &hold, Some(&voice(100)));
        room.add(&coach, &coaching, Some(&voice(1_000)));
        assert_eq!(room.heard_by(&a, &member()), voice(1_000), "only its coach");
        assert_eq!(room.heard_by(&b, &muted), voice(1), "a muted one hears");
        assert_eq!(room.heard_by(&c, &hold), voice(0), "on hold: nobody");
        assert_eq!(
            room.heard_by(&coach, &coaching),
            voice(1),
            "a coach hears all"
        );
    }

    #[test]
    fn loud_rooms_clip_rather_than_wrap() {
        let mut room = RoomMix::default();
        for _ in 0..3 {
            room.add(&CallSid::generate(), &member(), Some(&voice(20_000)));
        }
        assert_eq!(
            room.heard_by(&CallSid::generate(), &member()),
            voice(i16::MAX)
        );
        let empty = RoomMix::default();
        assert_eq!(empty.heard_by(&CallSid::generate(), &member()), voice(0));
    }
}
