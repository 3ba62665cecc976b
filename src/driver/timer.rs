//! The loop's timer: one deadline, the nearest, kept armed by the driver.
//!
//! On io_uring it is one `IORING_OP_TIMEOUT` in the ring (timers go through the ring: the
//! enter that waits for completions also wakes at the deadline), moved earlier with a
//! `TIMEOUT_UPDATE` when a nearer deadline comes, and forgotten when its CQE comes. A
//! later deadline never re-arms it: the loop simply wakes early, finds nothing due, and
//! arms the next. On epoll the same armed deadline is the `epoll_wait` timeout, fired
//! once an enter passes it. The timespecs the kernel reads live here (or are leaked with
//! the ring).

use std::cell::UnsafeCell;
use std::time::Instant;

use io_uring::opcode;
use io_uring::squeue::Entry;
use io_uring::types::Timespec;

use super::tag;

/// The deadline currently armed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Armed {
    pub(super) deadline: Instant,
    generation: u64,
}

pub(super) struct LoopTimer {
    pub(super) armed: Option<Armed>,
    generation: u64,
    /// Read by the kernel when a timeout SQE is submitted; only written before the push.
    arm_ts: Box<UnsafeCell<Timespec>>,
    update_ts: Box<UnsafeCell<Timespec>>,
}

impl Default for LoopTimer {
    fn default() -> Self {
        LoopTimer {
            armed: None,
            generation: 0,
            arm_ts: Box::new(UnsafeCell::new(Timespec::new())),
            update_ts: Box::new(UnsafeCell::new(Timespec::new())),
        }
    }
}

impl LoopTimer {
    /// The SQE that makes the ring's timeout fire no later than `deadline` (a new timeout,
    /// or an update of the armed one), and the state to record once it is pushed; `None`
    /// when the armed one already fires by then.
    pub(super) fn ring_sqe(&mut self, deadline: Instant, now: Instant) -> Option<(Entry, Armed)> {
        let relative = Timespec::from(deadline.saturating_duration_since(now));
        match self.armed {
            Some(armed) if armed.deadline <= deadline => None,
            Some(armed) => {
                // SAFETY: written only here, before its SQE is pushed; the kernel copies it
                // while the SQE is submitted, later in this same iteration.
                unsafe { *self.update_ts.get() = relative };
                let sqe = opcode::TimeoutUpdate::new(
                    tag::TIMER | armed.generation,
                    self.update_ts.get().cast_const(),
                )
                .build()
                .user_data(tag::TIMER_UPDATE);
                Some((
                    sqe,
                    Armed {
                        deadline,
                        generation: armed.generation,
                    },
                ))
            }
            None => {
                let generation = (self.generation + 1) & tag::PAYLOAD_MASK;
                self.generation = generation;
                // SAFETY: as above.
                unsafe { *self.arm_ts.get() = relative };
                let sqe = opcode::Timeout::new(self.arm_ts.get().cast_const())
                    .build()
                    .user_data(tag::TIMER | generation);
                Some((
                    sqe,
                    Armed {
                        deadline,
                        generation,
                    },
                ))
            }
        }
    }

    /// Arms `deadline` natively (epoll): the armed deadline moves earlier, never later.
    pub(super) fn arm_native(&mut self, deadline: Instant) {
        match self.armed {
            Some(armed) if armed.deadline <= deadline => {}
            _ => {
                self.armed = Some(Armed {
                    deadline,
                    generation: 0,
                })
            }
        }
    }

    /// A native timer's deadline passed (epoll).
    pub(super) fn expire_native(&mut self, now: Instant) {
        if self.armed.is_some_and(|a| a.deadline <= now) {
            self.armed = None;
        }
    }

    /// The ring's timeout with this `user_data` completed (fired, or was cancelled).
    pub(super) fn ring_fired(&mut self, user_data: u64) {
        let generation = user_data & tag::PAYLOAD_MASK;
        if self.armed.is_some_and(|a| a.generation == generation) {
            self.armed = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Driver, RingSize, Wait};
    use std::time::Duration;

    #[test]
    fn a_nearer_deadline_updates_the_ring_timeout_and_a_later_one_does_not() {
        let now = Instant::now();
        let mut t = LoopTimer::default();
        let (sqe, armed) = t.ring_sqe(now + Duration::from_secs(5), now).unwrap();
        assert_eq!(sqe.get_user_data() & tag::KIND_MASK, tag::TIMER);
        t.armed = Some(armed);
        assert!(t.ring_sqe(now + Duration::from_secs(9), now).is_none());
        let (sqe, updated) = t.ring_sqe(now + Duration::from_secs(1), now).unwrap();
        assert_eq!(sqe.get_user_data(), tag::TIMER_UPDATE);
        assert_eq!(updated.generation, armed.generation);
        t.armed = Some(updated);
        // A stale timer's CQE (another generation) leaves the armed one alone.
        t.ring_fired(tag::TIMER | (armed.generation + 1));
        assert!(t.armed.is_some());
        t.ring_fired(tag::TIMER | armed.generation);
        assert!(t.armed.is_none());
    }

    #[test]
    fn a_blocking_wait_ends_at_the_deadline_on_both_engines() {
        let mut drivers = vec![Driver::new_epoll().unwrap()];
        if let Ok(u) = Driver::new(RingSize {
            sq_entries: 8,
            cq_entries: 16,
        }) {
            drivers.push(u);
        }
        for driver in drivers {
            let mut out = Vec::new();
            // Settle the wake-up read armed at set-up.
            driver.submit_and_reap(Wait::Poll, None, &mut out).unwrap();
            let base = driver.in_flight();
            let started = Instant::now();
            let far = started + Duration::from_secs(30);
            let near = started + Duration::from_millis(40);
            while Instant::now() < near {
                // The far deadline is armed first, then the near one moves it earlier.
                driver
                    .submit_and_reap(Wait::Poll, Some(far), &mut out)
                    .unwrap();
                assert_eq!(driver.in_flight(), base + 1, "one timer armed");
                driver
                    .submit_and_reap(Wait::Block, Some(near), &mut out)
                    .unwrap();
            }
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(40), "woke early: {took:?}");
            assert!(took < Duration::from_secs(5), "slept past: {took:?}");
            assert!(out.is_empty(), "the timer is internal: {out:?}");
            assert_eq!(driver.shutdown(Duration::from_secs(1)), 0);
        }
    }
}
