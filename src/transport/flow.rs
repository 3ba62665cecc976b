//! Write flow control shared by every transport: the high/low water marks and whether the
//! protocol is paused (asyncio's `_maybe_pause_protocol` / `_maybe_resume_protocol`).
//!
//! A transport measures its write buffer (bytes accepted by `write` and not yet taken by
//! the kernel); `pause_writing` is due when that goes strictly above the high mark,
//! `resume_writing` when it comes back to the low mark or below. [`WaterMarks`] keeps that
//! decision in one place; each transport only says when its buffer changed and calls its
//! protocol when told to.

use std::io;

use super::{DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER};

/// The water marks of one transport and whether its protocol was paused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaterMarks {
    high: usize,
    low: usize,
    paused: bool,
}

impl Default for WaterMarks {
    fn default() -> Self {
        WaterMarks {
            high: DEFAULT_HIGH_WATER,
            low: DEFAULT_LOW_WATER,
            paused: false,
        }
    }
}

impl WaterMarks {
    /// `(low, high)`, as asyncio's `get_write_buffer_limits`.
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.low, self.high)
    }

    /// Sets the marks as asyncio does: a missing low is high/4, a missing high 4 × low;
    /// high < low is an error (and changes nothing).
    pub(crate) fn set(&mut self, high: Option<usize>, low: Option<usize>) -> io::Result<()> {
        let (high, low) = match (high, low) {
            (None, None) => (DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER),
            (Some(h), None) => (h, h / 4),
            (None, Some(l)) => (4 * l, l),
            (Some(h), Some(l)) => (h, l),
        };
        if high < low {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("high-water mark ({high}) must be >= low-water mark ({low})"),
            ));
        }
        self.high = high;
        self.low = low;
        Ok(())
    }

    /// Whether the protocol is paused (between a `pause_writing` and its `resume_writing`).
    pub(crate) fn paused(&self) -> bool {
        self.paused
    }

    /// With `size` bytes buffered: true when the protocol must be told `pause_writing`
    /// now (it goes paused).
    pub(crate) fn pause_due(&mut self, size: usize) -> bool {
        let due = !self.paused && size > self.high;
        self.paused |= due;
        due
    }

    /// With `size` bytes buffered: true when the protocol must be told `resume_writing`
    /// now (it goes unpaused).
    pub(crate) fn resume_due(&mut self, size: usize) -> bool {
        let due = self.paused && size <= self.low;
        self.paused &= !due;
        due
    }
}

/// What a protocol was last told of its transport's water marks, so that it hears
/// `pause_writing` and `resume_writing` alternately and only when the marks' state
/// differs from its last word. A protocol busy in another callback is told later (the
/// transport retries through `call_soon`; one retry queued at a time).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Told {
    paused: bool,
    retry_scheduled: bool,
}

impl Told {
    /// The notice owed now: `Some(true)` for `pause_writing`, `Some(false)` for
    /// `resume_writing`.
    pub(crate) fn owed(&self, marks: &WaterMarks) -> Option<bool> {
        (marks.paused() != self.paused).then_some(marks.paused())
    }

    /// The protocol is about to hear `paused`.
    pub(crate) fn tell(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// The protocol was busy and did not hear `paused`; true when the caller must queue
    /// a retry.
    pub(crate) fn busy(&mut self, paused: bool) -> bool {
        self.paused = !paused;
        !std::mem::replace(&mut self.retry_scheduled, true)
    }

    /// The queued retry runs.
    pub(crate) fn retried(&mut self) {
        self.retry_scheduled = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn told_alternates_and_retries_once() {
        let mut m = WaterMarks::default();
        m.set(Some(10), Some(5)).unwrap();
        let mut t = Told::default();
        assert_eq!(t.owed(&m), None);
        assert!(m.pause_due(11));
        assert_eq!(t.owed(&m), Some(true));
        t.tell(true);
        assert!(t.busy(true), "first busy: queue a retry");
        assert!(!t.busy(true), "one retry at a time");
        assert_eq!(t.owed(&m), Some(true), "still owed");
        t.retried();
        t.tell(true);
        assert_eq!(t.owed(&m), None);
        assert!(m.resume_due(5));
        assert_eq!(t.owed(&m), Some(false));
    }

    #[test]
    fn limits_follow_asyncio() {
        let mut m = WaterMarks::default();
        assert_eq!(m.limits(), (16384, 65536));
        m.set(Some(100), None).unwrap();
        assert_eq!(m.limits(), (25, 100));
        m.set(None, Some(10)).unwrap();
        assert_eq!(m.limits(), (10, 40));
        assert!(m.set(Some(1), Some(2)).is_err());
        assert_eq!(m.limits(), (10, 40), "a refused setting changes nothing");
        m.set(Some(0), Some(0)).unwrap();
        assert_eq!(m.limits(), (0, 0));
    }

    #[test]
    fn pause_strictly_above_high_resume_at_or_below_low() {
        let mut m = WaterMarks::default();
        m.set(Some(100), Some(10)).unwrap();
        assert!(!m.pause_due(100), "at the high mark: not yet");
        assert!(m.pause_due(101));
        assert!(!m.pause_due(500), "once");
        assert!(m.paused());
        assert!(!m.resume_due(11));
        assert!(m.resume_due(10));
        assert!(!m.resume_due(0), "once");
        assert!(!m.paused());
        assert!(!m.resume_due(0), "never resumed unpaused");
    }
}
