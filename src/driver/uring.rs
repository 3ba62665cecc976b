//! The io_uring engine: pushes SQEs into the kernel's submission queue and reaps the
//! completion queue, with one `io_uring_enter` per loop iteration.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use io_uring::squeue::Entry;
use io_uring::types::{SubmitArgs, Timespec};
use io_uring::{IoUring, Probe};

use super::iowq::{self, IowqLimits};
use super::{Completion, DriverStats, SetupMode, Wait};
use crate::buf::ring::BufRing;

/// `IORING_ENTER_GETEVENTS` (the io-uring crate does not re-export its sys constants).
const GETEVENTS: u32 = 1;

pub(super) struct UringEngine {
    ring: IoUring,
    mode: SetupMode,
    probe: Probe,
}

impl UringEngine {
    pub(super) fn new(ring: IoUring, mode: SetupMode, probe: Probe) -> Self {
        UringEngine { ring, mode, probe }
    }

    pub(super) fn mode(&self) -> SetupMode {
        self.mode
    }

    /// Caps this thread's io-wq workers; returns the limits in force before.
    pub(super) fn set_iowq_limits(&self, limits: IowqLimits) -> io::Result<IowqLimits> {
        iowq::apply(&self.ring, limits)
    }

    pub(super) fn supports(&self, opcode: u8) -> bool {
        self.probe.is_supported(opcode)
    }

    /// Whether the kernel honours `IOSQE_CQE_SKIP_SUCCESS` (Linux 5.17+); quiet ops need it.
    pub(super) fn skips_successful_cqes(&self) -> bool {
        self.ring.params().is_feature_skip_cqe_on_success()
    }

    /// Whether the SQ is empty (every pushed SQE was consumed, so issued) and no CQE is
    /// held in the kernel's overflow list: after a reap, every completion an inline op
    /// posted has been seen.
    pub(super) fn submissions_settled(&mut self) -> bool {
        let sq = self.ring.submission();
        sq.is_empty() && !sq.cq_overflow()
    }

    /// Queues an SQE; false when the SQ is full.
    ///
    /// # Safety
    ///
    /// The SQE's memory must outlive its last CQE.
    pub(super) unsafe fn try_push(&mut self, sqe: &Entry) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { self.ring.submission().push(sqe) }.is_ok()
    }

    /// # Safety
    ///
    /// The buffer ring must outlive the io_uring.
    pub(super) unsafe fn register_buf_ring(&self, buf_ring: &BufRing) -> io::Result<()> {
        // SAFETY: the ring memory is a live mapping of `entries` entries; the caller keeps
        // it until the io_uring itself is gone.
        unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                buf_ring.ring_addr(),
                buf_ring.entries(),
                buf_ring.bgid(),
                0,
            )
        }
    }

    /// Submits the SQ with `GETEVENTS`, optionally waiting for one CQE (with a time bound,
    /// used only at teardown). Interruptions and busy states are retried or end the wait.
    pub(super) fn enter(
        &mut self,
        how: Wait,
        bound: Option<Duration>,
        stats: &mut DriverStats,
        backlog: &mut Vec<(u64, Completion)>,
    ) -> io::Result<()> {
        let mut wait = how == Wait::Block;
        let mut busy_rounds = 0u32;
        loop {
            let to_submit = self.ring.submission().len() as u32;
            if to_submit == 0 && how == Wait::IfSubmitting && !self.kernel_holds_completions() {
                return Ok(());
            }
            stats.enters += 1;
            let result = match bound {
                Some(t) if wait => {
                    let ts = Timespec::from(t);
                    let args = SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
                _ => {
                    // SAFETY: no argument pointer is passed; the SQ entries were pushed by
                    // `try_push`, whose callers guarantee their memory.
                    unsafe {
                        self.ring.submitter().enter::<libc::sigset_t>(
                            to_submit,
                            u32::from(wait),
                            GETEVENTS,
                            None,
                        )
                    }
                }
            };
            match result {
                Ok(_) => break,
                Err(e) => match e.raw_os_error() {
                    // A signal arrived: what was submitted is in; a wait simply ends.
                    Some(libc::EINTR) if wait => break,
                    Some(libc::EINTR) => continue,
                    Some(libc::ETIME) => break,
                    // CQ overflow backlog or no memory for now: reap, then go again.
                    Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                        busy_rounds += 1;
                        let before = backlog.len();
                        self.reap(backlog);
                        if backlog.len() > before {
                            wait = false;
                        } else if busy_rounds > 1000 {
                            return Err(e);
                        } else {
                            std::thread::yield_now();
                        }
                    }
                    _ => return Err(e),
                },
            }
        }
        stats.cq_overflow = u64::from(self.ring.completion().overflow());
        if self.ring.submission().cq_overflow() {
            stats.cq_backlogged += 1;
        }
        Ok(())
    }

    /// Whether the kernel holds completions back (overflow backlog, or task work it
    /// flagged) that only an enter would post.
    fn kernel_holds_completions(&mut self) -> bool {
        let sq = self.ring.submission();
        sq.cq_overflow() || sq.taskrun()
    }

    /// Moves every CQE in the ring into `out`.
    pub(super) fn reap(&mut self, out: &mut Vec<(u64, Completion)>) {
        for cqe in self.ring.completion() {
            out.push((
                cqe.user_data(),
                Completion {
                    result: cqe.result(),
                    flags: cqe.flags(),
                },
            ));
        }
    }

    /// In a forked child: the ring's queues are not mapped here (`MADV_DONTFORK`) and its
    /// ops belong to the parent, so touching them would fault. Drops this process's hold
    /// on the ring (its fd) without touching the queues.
    pub(super) fn release_after_fork(self) {
        let fd = self.ring.as_raw_fd();
        // Not dropped: its Drop would munmap an address range the child may reuse.
        std::mem::forget(self.ring);
        // SAFETY: the forgotten IoUring owned this fd and will never use or close it.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}
