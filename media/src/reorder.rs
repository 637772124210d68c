//! A small reorder buffer: a leg's received frames come out in sequence order, one per 20 ms
//! tick, though the network delivered them late, twice or out of order. It holds at most
//! [`DEPTH`] frames (60 ms); a frame that never came is skipped once later ones wait behind it,
//! and a frame older than the last one played is dropped.

use std::collections::BTreeMap;

/// Frames held at most; beyond, the oldest is played (or dropped) to keep the delay bounded.
pub const DEPTH: usize = 3;

/// Frames of one source, by RTP sequence number.
#[derive(Debug, Default)]
pub struct Reorder<T> {
    frames: BTreeMap<u64, T>,
    /// The extended sequence number of the next frame to play.
    next: Option<u64>,
    /// The highest extended sequence number seen, for unwrapping.
    highest: Option<u64>,
}

impl<T> Reorder<T> {
    pub fn new() -> Self {
        Self {
            frames: BTreeMap::new(),
            next: None,
            highest: None,
        }
    }

    /// Forgets everything: the source changed (a new SSRC, a new peer).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The 16-bit sequence number extended to 64 bits, next to the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            return u64::from(seq) + (1 << 16); // room to go back before the first
        };
        let base = highest & !0xffff;
        let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
        candidates
            .into_iter()
            .map(|b| b.wrapping_add(u64::from(seq)))
            .min_by_key(|c| c.abs_diff(highest))
            .unwrap_or(highest)
    }

    /// A frame received; `false` if it came too late (already played or skipped) or twice.
    pub fn push(&mut self, seq: u16, frame: T) -> bool {
        let extended = self.extend(seq);
        if self.next.is_some_and(|next| extended < next) || self.frames.contains_key(&extended) {
            return false;
        }
        self.highest = Some(self.highest.map_or(extended, |h| h.max(extended)));
        self.frames.insert(extended, frame);
        while self.frames.len() > DEPTH {
            // Too far behind: the oldest goes, and playing resumes after it.
            if let Some((seq, _)) = self.frames.pop_first() {
                self.next = Some(seq + 1);
            }
        }
        true
    }

    /// The frame to play at this tick, if there is one: the next in sequence, or, when it is
    /// missing and frames wait behind it, the first of them.
    pub fn pop(&mut self) -> Option<T> {
        let (&first, _) = self.frames.first_key_value()?;
        let due = self.next.unwrap_or(first);
        if first != due && self.frames.len() < DEPTH.min(2) {
            // A gap: the missing one may still come.
            self.next = Some(due + 1);
            return None;
        }
        let (seq, frame) = self.frames.pop_first()?;
        self.next = Some(seq + 1);
        Some(frame)
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn played(buffer: &mut Reorder<u16>, ticks: usize) -> Vec<Option<u16>> {
        (0..ticks).map(|_| buffer.pop()).collect()
    }

    #[test]
    fn in_order_frames_come_out_as_they_went_in() {
        let mut buffer = Reorder::new();
        for seq in 10..13 {
            assert!(buffer.push(seq, seq));
            assert_eq!(buffer.pop(), Some(seq));
        }
        assert_eq!(buffer.pop(), None);
    }

    #[test]
    fn swapped_frames_are_put_back_in_order() {
        let mut buffer = Reorder::new();
        buffer.push(1, 1);
        assert_eq!(buffer.pop(), Some(1));
        buffer.push(3, 3);
        buffer.push(2, 2);
        assert_eq!(played(&mut buffer, 3), [Some(2), Some(3), None]);
    }

    #[test]
    fn a_duplicate_or_a_frame_too_late_is_dropped() {
        let mut buffer = Reorder::new();
        buffer.push(1, 1);
        assert!(!buffer.push(1, 1));
        assert_eq!(buffer.pop(), Some(1));
        assert!(!buffer.push(1, 1), "already played");
        assert!(!buffer.push(0, 0), "older than what was played");
    }

    #[test]
    fn a_lost_frame_is_skipped_and_the_delay_stays_bounded() {
        let mut buffer = Reorder::new();
        buffer.push(1, 1);
        assert_eq!(buffer.pop(), Some(1));
        // 2 is lost.
        buffer.push(3, 3);
        buffer.push(4, 4);
        assert_eq!(played(&mut buffer, 3), [Some(3), Some(4), None]);
        // A burst of ten: only the newest DEPTH wait.
        for seq in 5..15 {
            buffer.push(seq, seq);
        }
        assert_eq!(buffer.len(), DEPTH);
        assert_eq!(played(&mut buffer, 4), [Some(12), Some(13), Some(14), None]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut buffer = Reorder::new();
        for seq in [65_534u16, 65_535, 0, 1] {
            buffer.push(seq, seq);
            assert_eq!(buffer.pop(), Some(seq));
        }
        buffer.push(3, 3);
        buffer.push(2, 2);
        assert_eq!(played(&mut buffer, 2), [Some(2), Some(3)]);
    }
}
