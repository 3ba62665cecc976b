//! Quiet ops: operations submitted with `IOSQE_CQE_SKIP_SUCCESS`, whose success posts no
//! CQE; the driver settles them itself.
//!
//! Why: a transport's send to a socket with room completes during the very
//! `io_uring_enter` that submits it. Its CQE would end that enter's wait at once, and the
//! loop would enter again only to wait for the next real event — two enters per
//! request/response. A quiet send posts nothing when it succeeds, so one enter submits it
//! and sleeps until the next event.
//!
//! Why it is sound: a quiet op must finish *inline*, during its own submission, and a short
//! result must count as a failure. A stream send with `MSG_DONTWAIT | MSG_WAITALL` is one:
//! the kernel never parks it waiting for room (`REQ_F_NOWAIT`), and a send that took only
//! part of the buffer fails with the count it did take (`io_sendrecv_fail`) instead of
//! retrying. A datagram send with `MSG_DONTWAIT` is one too (a datagram goes whole or not
//! at all). A failure posts its CQE as usual, during that same enter (or into the
//! overflow list, which `IORING_SQ_CQ_OVERFLOW` reports). So once an enter has consumed
//! the whole SQ, the CQ has been reaped and no overflow is held back, every quiet op that
//! saw no CQE has succeeded, with the result it was pushed with — and the kernel is done
//! with its buffers.
//!
//! The enter that submits a quiet op may sleep through it, so an owner that comes to need
//! its completion says so (`Driver::await_quiet`: the next enter does not sleep). The
//! stream transport pushes its sends quiet only when nothing (a close, a `write_eof`, a
//! paused protocol) waits on them — all of which is known when it pushes, just before
//! the enter; datagram sends are pushed during callbacks, so a close or a pause after
//! them calls `await_quiet`.

use super::Completion;
use super::tag::{self, OpKey};

/// One quiet op not yet settled.
struct Unsettled {
    key: OpKey,
    /// The completion's result when the op succeeds (a send: its length).
    success: i32,
    /// A CQE came for it: it failed (or ended short) and is dispatched as it is.
    reported: bool,
}

/// The quiet ops pushed since the last settlement.
#[derive(Default)]
pub(super) struct QuietOps {
    unsettled: Vec<Unsettled>,
    /// The next enter must not sleep before they are settled: a reap could not settle
    /// them (the SQ was not all consumed, or completions were held in the overflow list),
    /// or an owner waits on one (`Driver::await_quiet`).
    awaited: bool,
    /// Scratch for the completions a settlement makes (kept to avoid an allocation).
    settled: Vec<(u64, Completion)>,
}

impl QuietOps {
    pub(super) fn is_empty(&self) -> bool {
        self.unsettled.is_empty()
    }

    /// Whether the next enter must not sleep (see `awaited`).
    pub(super) fn awaited(&self) -> bool {
        self.awaited
    }

    /// A reap could not settle them yet, or an owner waits on one.
    pub(super) fn hurry(&mut self) {
        if !self.unsettled.is_empty() {
            self.awaited = true;
        }
    }

    /// A quiet op was pushed; `success` is its result if no CQE comes.
    pub(super) fn pushed(&mut self, key: OpKey, success: i32) {
        debug_assert!(key.is_quiet());
        self.unsettled.push(Unsettled {
            key,
            success,
            reported: false,
        });
    }

    /// Notes the quiet ops among freshly reaped CQEs: they reported themselves.
    pub(super) fn saw(&mut self, cqes: &[(u64, Completion)]) {
        if self.unsettled.is_empty() {
            return;
        }
        for (user_data, _) in cqes {
            if !tag::is_quiet_op(*user_data) {
                continue;
            }
            if let Some(op) = self
                .unsettled
                .iter_mut()
                .find(|op| op.key.user_data() == *user_data)
            {
                op.reported = true;
            }
        }
    }

    /// Every unsettled op was submitted and its CQE, if any, reaped: those without one
    /// succeeded. Their completions go into `out` at `at` (before what the same enter
    /// reaped: they finished during its submission). Returns how many were settled.
    pub(super) fn settle(&mut self, out: &mut Vec<(u64, Completion)>, at: usize) -> u64 {
        let mut settled = std::mem::take(&mut self.settled);
        settled.extend(
            self.unsettled
                .drain(..)
                .filter(|op| !op.reported)
                .map(|op| {
                    let completion = Completion {
                        result: op.success,
                        flags: 0,
                    };
                    (op.key.user_data(), completion)
                }),
        );
        let n = settled.len() as u64;
        out.splice(at..at, settled.drain(..));
        self.settled = settled;
        self.awaited = false;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::slots::Slots;
    use crate::driver::{Dispatch, Driven, Driver, OpHandler, RingSize, Wait};
    use crate::fd::SharedFd;
    use crate::op;
    use std::cell::Cell;
    use std::io::Read;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;

    fn cqe(key: OpKey, result: i32) -> (u64, Completion) {
        (key.user_data(), Completion { result, flags: 0 })
    }

    #[test]
    fn ops_without_a_cqe_settle_as_successes_before_the_reaped_cqes() {
        let mut slots = Slots::default();
        let loud = slots.insert(Driven::Future);
        let a = slots.insert_as(Driven::Future, true);
        let b = slots.insert_as(Driven::Future, true);
        assert!(a.is_quiet() && b.is_quiet() && !loud.is_quiet());
        let mut quiet = QuietOps::default();
        quiet.pushed(a, 64);
        quiet.pushed(b, 128);
        // b came back short (a CQE); a and the loud op's CQE did not / did.
        let mut out = vec![cqe(loud, 5), cqe(b, 100)];
        quiet.saw(&out);
        assert_eq!(quiet.settle(&mut out, 0), 1);
        assert_eq!(out, vec![cqe(a, 64), cqe(loud, 5), cqe(b, 100)]);
        assert!(quiet.is_empty());
    }

    #[test]
    fn internal_and_loud_cqes_are_never_taken_for_quiet_ones() {
        let mut slots = Slots::default();
        let a = slots.insert_as(Driven::Future, true);
        let mut quiet = QuietOps::default();
        quiet.pushed(a, 1);
        let internal = (
            a.user_data() | tag::INTERNAL_BIT,
            Completion {
                result: 0,
                flags: 0,
            },
        );
        let loud = slots.insert(Driven::Future);
        let mut out = vec![internal, cqe(loud, 0)];
        quiet.saw(&out);
        assert_eq!(quiet.settle(&mut out, 2), 1);
        assert_eq!(out[2], cqe(a, 1));
    }

    /// Pushes an `at_once` send of `data` on `fd` as a quiet op, submits it, and returns
    /// its completion's result and whether it posted a CQE.
    fn quiet_send(driver: &Rc<Driver>, fd: &SharedFd, data: &[u8]) -> (i32, bool) {
        let send = op::Send::at_once(fd.clone(), data.to_vec());
        let before = driver.stats();
        let seen = Rc::new(Seen::default());
        let send = driver
            .submit_quiet(send, seen.clone(), 0)
            .map_err(|(e, _)| e)
            .expect("push");
        let mut out = Vec::new();
        driver
            .submit_and_reap(Wait::Poll, None, &mut out)
            .expect("enter");
        for (user_data, c) in out {
            let k = OpKey::from_user_data(user_data).expect("a slot's CQE");
            if let Dispatch::Handler(handler, tag, c) = driver.complete(k, c) {
                handler.on_completion(tag, c);
            }
        }
        let Some(result) = seen.0.take() else {
            panic!("a quiet op must be settled by the enter that submitted it");
        };
        drop(send.finish());
        let after = driver.stats();
        (result, after.cqes > before.cqes)
    }

    /// Records the result it is given.
    #[derive(Default)]
    struct Seen(Cell<Option<i32>>);
    impl OpHandler for Seen {
        fn on_completion(self: Rc<Self>, _tag: u32, c: Completion) {
            self.0.set(Some(c.result));
        }
    }

    /// The kernel behaviour quiet sends rely on, on a real socket: a send that fits posts
    /// no CQE and is settled with its length; one that does not fit reports the short
    /// count (or `EAGAIN`) with a CQE — never a silent success for bytes not taken.
    #[test]
    fn a_quiet_send_is_silent_only_when_it_took_everything() {
        let Ok(driver) = Driver::new(RingSize {
            sq_entries: 8,
            cq_entries: 16,
        }) else {
            eprintln!("io_uring refused here; skipped");
            return;
        };
        let driver = Rc::new(driver);
        assert!(driver.quiet_ops(), "Linux 6.x has IORING_FEAT_CQE_SKIP");
        let (a, mut b) = UnixStream::pair().unwrap();
        let a = SharedFd::new(OwnedFd::from(a));
        let small = [7u8; 64];
        assert_eq!(quiet_send(&driver, &a, &small), (64, false));
        assert_eq!(driver.stats().quiet, 1);

        // Far more than the socket buffer holds, with nobody reading.
        let big = vec![9u8; 16 << 20];
        let (taken, posted) = quiet_send(&driver, &a, &big);
        assert!(posted, "a short quiet send must post its CQE");
        assert!(
            taken == -libc::EAGAIN || (0 < taken && (taken as usize) < big.len()),
            "short count or EAGAIN, got {taken}"
        );
        assert_eq!(
            driver.stats().quiet,
            1,
            "the short send was not settled as a success"
        );
        // Now the buffer is full: nothing fits, and that is reported too.
        assert_eq!(quiet_send(&driver, &a, &small), (-libc::EAGAIN, true));

        // What was reported taken is exactly what the peer receives.
        let expected = 64 + taken.max(0) as usize;
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), expected);
        assert!(got[..64].iter().all(|&x| x == 7) && got[64..].iter().all(|&x| x == 9));
        assert_eq!(driver.shutdown(std::time::Duration::from_secs(1)), 0);
    }
}
