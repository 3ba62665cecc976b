//! The engine behind the driver: the kernel's ring, or the epoll emulation of the same
//! ops. One per loop, matched on every enter.

use std::io;
use std::time::{Duration, Instant};

use io_uring::squeue::Entry;

use super::epoll::EpollEngine;
use super::uring::UringEngine;
use super::{Completion, DriverStats, Wait};
use crate::buf::ring::BufRing;

// One per loop, matched on every enter: a box would only add a pointer chase.
#[allow(clippy::large_enum_variant)]
pub(super) enum Backend {
    Uring(UringEngine),
    Epoll(EpollEngine),
}

impl Backend {
    /// Queues an SQE; false when the submission queue is full. Never called on epoll
    /// (which is given attempts, not SQEs).
    ///
    /// # Safety
    ///
    /// The SQE's memory must outlive its last completion.
    pub(super) unsafe fn try_push(&mut self, sqe: &Entry) -> bool {
        match self {
            // SAFETY: forwarded from the caller.
            Backend::Uring(u) => unsafe { u.try_push(sqe) },
            Backend::Epoll(_) => unreachable!("the epoll engine is given attempts"),
        }
    }

    /// Submits and waits per `how`: on io_uring with the teardown `bound` only (the
    /// loop's timer is an op in the ring), on epoll until `until` (the armed timer, or the
    /// bound).
    pub(super) fn enter(
        &mut self,
        how: Wait,
        bound: Option<Duration>,
        until: Option<Instant>,
        stats: &mut DriverStats,
        backlog: &mut Vec<(u64, Completion)>,
    ) -> io::Result<()> {
        match self {
            Backend::Uring(u) => u.enter(how, bound, stats, backlog),
            Backend::Epoll(e) => e.enter(how, until, stats),
        }
    }

    /// Whether everything pushed was submitted and every completion posted is in reach of
    /// `reap` (none held in an overflow list): then quiet ops without a CQE succeeded.
    pub(super) fn submissions_settled(&mut self) -> bool {
        match self {
            Backend::Uring(u) => u.submissions_settled(),
            // Never given quiet ops.
            Backend::Epoll(_) => true,
        }
    }

    pub(super) fn reap(&mut self, out: &mut Vec<(u64, Completion)>) {
        match self {
            Backend::Uring(u) => u.reap(out),
            Backend::Epoll(e) => e.reap(out),
        }
    }

    /// # Safety
    ///
    /// The buffer ring must outlive the engine.
    pub(super) unsafe fn register_buf_ring(&self, buf_ring: &BufRing) -> io::Result<()> {
        match self {
            // SAFETY: forwarded from the caller.
            Backend::Uring(u) => unsafe { u.register_buf_ring(buf_ring) },
            Backend::Epoll(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the epoll engine has no provided-buffer rings",
            )),
        }
    }

    pub(super) fn release_after_fork(self) {
        match self {
            Backend::Uring(u) => u.release_after_fork(),
            Backend::Epoll(e) => drop(e),
        }
    }
}
