//! The driver: owns everything io_uring (or its epoll stand-in) — the engine, the slab of
//! in-flight operations, the submit/reap cycle, the loop's timer and its wake-up. It
//! knows no op types: an op reaches it as an SQE (io_uring) or an [`Attempt`] (epoll),
//! built by the op's own file (see `crate::op`).
//!
//! Rules it enforces (see `docs/ops-and-buffers.md`):
//! - An op keeps its slot from the moment it is pushed until its last CQE, whatever
//!   `io_uring_enter` returns; a dropped owner turns the slot into an orphan that keeps the
//!   buffers alive and submits an `ASYNC_CANCEL`.
//! - Ops are pushed during an iteration and submitted once, by [`Driver::submit_and_reap`];
//!   a full SQ is submitted early and the push retried.
//! - `EINTR`, `EAGAIN` and `EBUSY` from `io_uring_enter` mean "reap and go again", never an
//!   error for users.
//! - Internal completions (cancels, the timer, the wake-up) are handled here and never
//!   reach the loop.
//! - Teardown cancels everything and reaps until the slab is empty; whatever the kernel
//!   still holds after the bound is leaked, never freed.

pub(crate) mod attempt;
mod backend;
mod engine;
mod epoll;
mod iowq;
mod quiet;
mod setup;
pub(crate) mod slots;
pub(crate) mod tag;
mod timer;
mod uring;
mod wake;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use io_uring::opcode;
use io_uring::squeue::{Entry, Flags};

pub(crate) use attempt::{ARGS, Attempt, Interest, Outcome};
pub use engine::Engine;
pub(crate) use iowq::IowqLimits;
pub(crate) use setup::RingSize;
pub use setup::SetupMode;
pub(crate) use slots::{Completion, Dispatch, Driven, OpHandler, Orphan};
pub(crate) use tag::OpKey;
pub(crate) use wake::Unparker;

use crate::buf::ring::BufRing;
use backend::Backend;
use epoll::EpollEngine;
use quiet::QuietOps;
use slots::Slots;
use timer::LoopTimer;
use uring::UringEngine;
use wake::WakeRead;

/// Counters the driver keeps; read them with [`EventLoop::driver_stats`](crate::EventLoop::driver_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// `io_uring_enter` calls made.
    pub enters: u64,
    /// SQEs pushed.
    pub sqes: u64,
    /// CQEs reaped.
    pub cqes: u64,
    /// Times the SQ was full and had to be submitted early.
    pub sq_full: u64,
    /// Completions the kernel dropped because the CQ was full (`IORING_CQ_OVERFLOW`); with
    /// `FEAT_NODROP` (required) it stays zero.
    pub cq_overflow: u64,
    /// Enters after which the kernel held completions in its overflow list (the CQ was
    /// full; `FEAT_NODROP` kept them, and later enters flushed them). Zero on epoll.
    pub cq_backlogged: u64,
    /// CQEs that named no live operation (must stay zero).
    pub stale_cqes: u64,
    /// Quiet ops (stream and datagram sends) that succeeded without posting a CQE; the
    /// driver settled them (see `Driver::submit_quiet`). Zero on epoll.
    pub quiet: u64,
    /// Completions that reported `ENOBUFS`: a receive found the provided-buffer ring
    /// empty (the transport re-arms; it is backpressure, not an error).
    pub enobufs: u64,
    /// Multishot ops (accept, receive) the kernel ended on its own — a last completion
    /// without `F_MORE` that was neither a cancel nor end of stream — and that their
    /// owner then re-armed or retired.
    pub multishot_ended: u64,
}

/// How [`Driver::submit_and_reap`] may use `io_uring_enter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Submit, and block until a CQE arrives (or the deadline, or a wake-up).
    Block,
    /// Submit (possibly nothing) and let the kernel post deferred completions.
    Poll,
    /// Enter only if there is something to submit.
    IfSubmitting,
}

/// The engine and the op slab, shared by the loop and every op on this thread.
pub(crate) struct Driver {
    inner: RefCell<Inner>,
    /// Fds closed since the last enter (the epoll engine forgets their registrations).
    /// Kept outside `inner`: an fd may close while `inner` is borrowed (an orphan freed
    /// during a completion).
    closed_fds: RefCell<Vec<i32>>,
    /// Ops whose owner went away while `inner` was borrowed (an orphan freed during a
    /// completion dropped another op's owner); abandoned at the next enter.
    deferred: RefCell<Vec<(OpKey, Box<dyn Orphan>)>>,
    /// The epoll engine's epoll fd (`None` on io_uring).
    epoll: Option<i32>,
    /// Whether quiet ops are available (io_uring with `IORING_FEAT_CQE_SKIP`).
    quiet_ops: bool,
    /// The wake-up eventfd's writer, handed to other threads.
    unparker: Unparker,
}

struct Inner {
    /// The engine (io_uring, or the epoll emulation); `None` once the loop is closed.
    backend: Option<Backend>,
    slots: Slots,
    /// CQEs reaped early (to relieve a full CQ while pushing), not yet dispatched.
    backlog: Vec<(u64, Completion)>,
    /// Internal SQEs (cancels, the timer, the wake-up read) still in the ring.
    internal_in_flight: usize,
    stats: DriverStats,
    /// Provided-buffer rings registered with the ring; they must outlive it.
    buf_rings: Vec<Rc<BufRing>>,
    /// Close timed out with ops still in the kernel; their memory is never freed.
    leaked: bool,
    /// Quiet ops pushed and not yet settled.
    quiet: QuietOps,
    timer: LoopTimer,
    /// The wake-up read kept in the ring (io_uring).
    wake: WakeRead,
    /// The eventfd is registered with epoll (until teardown).
    wake_registered: bool,
    unparker: Unparker,
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the event loop is closed")
}

impl Driver {
    /// Sets up an io_uring ring.
    pub(crate) fn new(size: RingSize) -> io::Result<Driver> {
        let (ring, mode, probe) = setup::build_ring(size)?;
        let unparker = Unparker::new()?;
        let driver = Self::with_backend(
            Backend::Uring(UringEngine::new(ring, mode, probe)),
            unparker,
        );
        driver.inner.borrow_mut().arm_wake();
        Ok(driver)
    }

    /// Sets up the epoll engine (readiness-based emulation of the same ops).
    pub(crate) fn new_epoll() -> io::Result<Driver> {
        let unparker = Unparker::new()?;
        let engine = EpollEngine::new(unparker.clone())?;
        let driver = Self::with_backend(Backend::Epoll(engine), unparker);
        driver.inner.borrow_mut().wake_registered = true;
        Ok(driver)
    }

    fn with_backend(backend: Backend, unparker: Unparker) -> Driver {
        Driver {
            closed_fds: RefCell::new(Vec::new()),
            deferred: RefCell::new(Vec::new()),
            epoll: match &backend {
                Backend::Epoll(e) => Some(e.epoll_fd()),
                Backend::Uring(_) => None,
            },
            quiet_ops: match &backend {
                Backend::Uring(u) => u.skips_successful_cqes(),
                Backend::Epoll(_) => false,
            },
            unparker: unparker.clone(),
            inner: RefCell::new(Inner {
                backend: Some(backend),
                slots: Slots::default(),
                backlog: Vec::new(),
                internal_in_flight: 0,
                stats: DriverStats::default(),
                buf_rings: Vec::new(),
                leaked: false,
                quiet: QuietOps::default(),
                timer: LoopTimer::default(),
                wake: WakeRead::default(),
                wake_registered: false,
                unparker,
            }),
        }
    }

    /// The set-up flags in use (`None` on the epoll engine).
    pub(crate) fn mode(&self) -> Option<SetupMode> {
        match self.inner.borrow().backend.as_ref()? {
            Backend::Uring(u) => Some(u.mode()),
            Backend::Epoll(_) => None,
        }
    }

    /// Caps the io-wq worker threads of the calling thread (io_uring; see `iowq.rs`) and
    /// returns the limits in force before; `Ok(None)` on the epoll engine, which has no
    /// io-wq. Zero in a field leaves that pool's limit as it is.
    pub(crate) fn set_iowq_limits(&self, limits: IowqLimits) -> io::Result<Option<IowqLimits>> {
        match self.inner.borrow().backend.as_ref() {
            Some(Backend::Uring(u)) => u.set_iowq_limits(limits).map(Some),
            Some(Backend::Epoll(_)) => Ok(None),
            None => Err(closed_error()),
        }
    }

    /// Which engine runs the ops.
    pub(crate) fn engine(&self) -> Engine {
        if self.epoll.is_some() {
            Engine::Epoll
        } else {
            Engine::Uring
        }
    }

    /// Whether the engine supports an opcode (on epoll: whether ops of that kind have an
    /// attempt; see `crate::op`).
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        match self.inner.borrow().backend.as_ref() {
            Some(Backend::Uring(u)) => u.supports(opcode),
            Some(Backend::Epoll(_)) => crate::op::runs_on_epoll(opcode),
            None => false,
        }
    }

    /// What wakes this driver from another thread.
    pub(crate) fn unparker(&self) -> Unparker {
        self.unparker.clone()
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> DriverStats {
        let inner = self.inner.borrow();
        DriverStats {
            stale_cqes: inner.slots.stale_cqes,
            enobufs: inner.slots.enobufs,
            multishot_ended: inner.slots.multishot_ended,
            ..inner.stats
        }
    }

    /// Operations in the kernel, internal ones (the timer, the wake-up) included.
    pub(crate) fn in_flight(&self) -> usize {
        let inner = self.inner.borrow();
        let native = if self.epoll.is_some() {
            usize::from(inner.wake_registered) + usize::from(inner.timer.armed.is_some())
        } else {
            0
        };
        inner.slots.len() + inner.internal_in_flight + native
    }

    /// An fd is about to close; the epoll engine must forget its registration before the
    /// number is reused.
    pub(crate) fn fd_closing(&self, fd: i32) {
        if let Some(epfd) = self.epoll {
            // Deregister now, while the number still names this file (a dup elsewhere
            // would otherwise keep it registered); the table is reset at the next enter.
            crate::sys::nonblocking::epoll_del(epfd, fd);
            self.closed_fds.borrow_mut().push(fd);
        }
    }

    /// Whether quiet submissions are quiet (io_uring with `IORING_FEAT_CQE_SKIP`);
    /// elsewhere they are ordinary ones.
    pub(crate) fn quiet_ops(&self) -> bool {
        self.quiet_ops
    }

    /// Registers a provided-buffer ring; it lives as long as the ring (or is leaked with it).
    pub(crate) fn register_buf_ring(&self, buf_ring: BufRing) -> io::Result<Rc<BufRing>> {
        let mut inner = self.inner.borrow_mut();
        let backend = inner.backend.as_ref().ok_or_else(closed_error)?;
        // SAFETY: the buffer ring is kept in `buf_rings` until the engine is gone (or
        // leaked together with it).
        unsafe { backend.register_buf_ring(&buf_ring) }?;
        let buf_ring = Rc::new(buf_ring);
        inner.buf_rings.push(buf_ring.clone());
        Ok(buf_ring)
    }

    /// Pushes an op and opens its slot: the SQE `sqe` builds from `op` on io_uring, the
    /// attempt `attempt` builds on epoll (`None`: it cannot run there, and completes with
    /// `EINVAL`). With `quiet` set (and quiet ops available) it is submitted with
    /// `IOSQE_CQE_SKIP_SUCCESS`: a success posts no CQE and the driver completes it with
    /// that result after the enter that submitted it (see the `quiet` module).
    ///
    /// # Safety
    ///
    /// Every pointer in the SQE or attempt must stay valid until the op's last CQE: the
    /// caller keeps the memory in the op's owner and hands it to [`Driver::abandon`] if
    /// the owner goes first. With `quiet`, the op must finish during its submission and
    /// report anything but the full `quiet` result with a CQE.
    pub(crate) unsafe fn push<O>(
        &self,
        op: &mut O,
        sqe: fn(&mut O) -> Entry,
        attempt: fn(&mut O) -> Option<Attempt>,
        driven: Driven,
        quiet: Option<i32>,
    ) -> io::Result<OpKey> {
        let quiet = quiet.filter(|_| self.quiet_ops);
        let mut inner = self.inner.borrow_mut();
        if inner.backend.is_none() {
            return Err(closed_error());
        }
        let key = inner.slots.insert_as(driven, quiet.is_some());
        let pushed = if self.epoll.is_some() {
            // SAFETY: the caller guarantees the attempt's memory outlives the op.
            unsafe { inner.push_attempt(key.user_data(), attempt(op)) }
        } else {
            let mut sqe = sqe(op).user_data(key.user_data());
            if quiet.is_some() {
                sqe = sqe.flags(Flags::SKIP_SUCCESS);
            }
            // SAFETY: the caller guarantees the SQE's memory outlives the op.
            unsafe { inner.push(&sqe) }
        };
        if let Err(e) = pushed {
            inner.slots.remove_unsubmitted(key);
            return Err(e);
        }
        if let Some(success) = quiet {
            inner.quiet.pushed(key, success);
        }
        Ok(key)
    }

    /// The owner of a quiet op not yet settled now needs its completion (a close waits
    /// for it, a paused protocol for its resume): the next enter must not sleep before
    /// it is settled.
    pub(crate) fn await_quiet(&self) {
        self.inner.borrow_mut().quiet.hurry();
    }

    /// Polls a future-driven op.
    pub(crate) fn poll_op(&self, key: OpKey, cx: &mut Context<'_>) -> Poll<Completion> {
        self.inner.borrow_mut().slots.poll(key, cx)
    }

    /// The owner of an op went away: if the op is still in flight, keep `op` (its memory)
    /// as an orphan until the op's last CQE and ask the kernel to cancel it; else drop it.
    /// Allocates only for an op still in flight.
    pub(crate) fn abandon<T: Orphan + 'static>(&self, key: OpKey, op: T) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            // Inside the driver's own work (an orphan freed during a completion dropped
            // this owner): finish the abandon at the next enter.
            self.deferred.borrow_mut().push((key, Box::new(op)));
            return;
        };
        if inner.leaked {
            // Close gave up on the kernel: its buffers may still be written. Never free.
            std::mem::forget(op);
            return;
        }
        if !inner.slots.live(key) {
            drop(inner);
            drop(op);
            return;
        }
        inner.abandon(key, Box::new(op));
    }

    /// Asks the kernel to cancel an op (its slot stays until its CQE).
    pub(crate) fn cancel(&self, key: OpKey) {
        self.inner.borrow_mut().cancel(key);
    }

    /// Records a CQE for an op and says what to do about it.
    pub(crate) fn complete(&self, key: OpKey, completion: Completion) -> Dispatch {
        self.inner.borrow_mut().slots.complete(key, completion)
    }

    /// Submits what was pushed and reaps every available op completion into `out`
    /// (internal ones are handled here).
    ///
    /// `Wait::Block` blocks until at least one completion arrives (unless some are
    /// already reaped), `deadline` passes, or the [`Unparker`] is used; `Wait::Poll`
    /// enters the kernel even with nothing to submit, so deferred completions get posted;
    /// `Wait::IfSubmitting` enters only to submit. A `deadline` is kept armed (one
    /// timeout op in the ring, or the `epoll_wait` timeout) until it passes, even when
    /// this enter does not wait.
    pub(crate) fn submit_and_reap(
        &self,
        wait: Wait,
        deadline: Option<Instant>,
        out: &mut Vec<(u64, Completion)>,
    ) -> io::Result<()> {
        self.abandon_deferred();
        let mut inner = self.inner.borrow_mut();
        if self.epoll.is_some() {
            let closed = std::mem::take(&mut *self.closed_fds.borrow_mut());
            if let Some(Backend::Epoll(e)) = inner.backend.as_mut() {
                for fd in closed {
                    e.forget_fd(fd);
                }
            }
        }
        if let Some(deadline) = deadline {
            inner.arm_timer(deadline);
        }
        let wait = match wait {
            // Completions already in hand, or quiet ops a reap could not settle: do not
            // sleep before they are dispatched.
            Wait::Block if !inner.backlog.is_empty() || inner.quiet.awaited() => Wait::Poll,
            w => w,
        };
        inner.enter(wait, None)?;
        inner.reap(out);
        Ok(())
    }

    fn abandon_deferred(&self) {
        if self.deferred.borrow().is_empty() {
            return;
        }
        let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
        for (key, orphan) in deferred {
            let mut inner = self.inner.borrow_mut();
            if inner.leaked {
                std::mem::forget(orphan);
            } else if inner.slots.live(key) {
                inner.abandon(key, orphan);
            } else {
                drop(inner);
                drop(orphan);
            }
        }
    }

    /// In a forked child: the ring's queues are not mapped here (`MADV_DONTFORK`) and its
    /// ops belong to the parent, so touching them would fault. Drops this process's hold
    /// on the ring (its fd) without touching the queues; later pushes fail as on a closed
    /// loop, and what the slots hold is this process's copy, freed normally.
    pub(crate) fn release_after_fork(&self) {
        let mut inner = self.inner.borrow_mut();
        if let Some(backend) = inner.backend.take() {
            backend.release_after_fork();
        }
    }

    /// Loop teardown: cancel every op, wait (at most `bound`) for the last CQEs, then unmap
    /// the ring. What the kernel still holds after the bound is leaked, never freed.
    /// Returns the number of ops leaked.
    pub(crate) fn shutdown(&self, bound: Duration) -> usize {
        self.abandon_deferred();
        let mut inner = self.inner.borrow_mut();
        if inner.backend.is_none() {
            return 0;
        }
        inner.slots.abandon_all();
        inner.cancel_all();
        let deadline = Instant::now() + bound;
        let mut reaped = Vec::new();
        while inner.slots.len() + inner.internal_in_flight > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if inner.enter(Wait::Block, Some(deadline - now)).is_err() {
                break;
            }
            // CQEs reaped early (while pushing into a full SQ) first; no wake-up re-arm.
            let mut early = std::mem::take(&mut inner.backlog);
            reaped.append(&mut early);
            let fresh = reaped.len();
            inner.reap_ring(&mut reaped);
            // Left unsettled, each quiet op would count as "still in the kernel" and
            // leak the ring at close.
            inner.settle_quiet(&mut reaped, fresh);
            for (user_data, c) in reaped.drain(..) {
                if let Some(key) = OpKey::from_user_data(user_data) {
                    // Wakers and handlers were dropped by abandon_all.
                    let _ = inner.slots.complete(key, c);
                }
            }
        }
        let leaked = inner.slots.len() + inner.internal_in_flight;
        let ring = inner.backend.take();
        if leaked == 0 {
            // Unmap the io_uring before the buffer rings it may still reference.
            drop(ring);
            inner.buf_rings.clear();
            return 0;
        }
        inner.leaked = true;
        eprintln!(
            "ringloop: {leaked} operations still in the kernel {bound:?} after close; \
             their buffers and the ring are leaked rather than freed early"
        );
        std::mem::forget(ring);
        std::mem::forget(std::mem::take(&mut inner.slots));
        std::mem::forget(std::mem::take(&mut inner.buf_rings));
        std::mem::forget(std::mem::take(&mut inner.timer));
        std::mem::forget(std::mem::take(&mut inner.wake));
        leaked
    }
}

impl Inner {
    /// Pushes an SQE, submitting early when the SQ is full.
    ///
    /// # Safety
    ///
    /// The SQE's memory must outlive its last CQE.
    unsafe fn push(&mut self, sqe: &Entry) -> io::Result<()> {
        loop {
            let backend = self.backend.as_mut().ok_or_else(closed_error)?;
            // SAFETY: the caller guarantees the SQE's memory outlives the op.
            if unsafe { backend.try_push(sqe) } {
                self.stats.sqes += 1;
                return Ok(());
            }
            self.stats.sq_full += 1;
            self.enter(Wait::Poll, None)?;
            let mut early = std::mem::take(&mut self.backlog);
            self.reap_ring(&mut early);
            self.backlog = early;
        }
    }

    /// Queues an attempt with the epoll engine.
    ///
    /// # Safety
    ///
    /// The attempt's memory must outlive its last completion.
    unsafe fn push_attempt(&mut self, user_data: u64, attempt: Option<Attempt>) -> io::Result<()> {
        match self.backend.as_mut() {
            Some(Backend::Epoll(e)) => {
                // SAFETY: forwarded from the caller.
                unsafe { e.push(user_data, attempt) };
                self.stats.sqes += 1;
                Ok(())
            }
            _ => Err(closed_error()),
        }
    }

    /// Pushes one of the driver's internal SQEs, counting it until its last CQE.
    ///
    /// # Safety
    ///
    /// As [`Inner::push`].
    unsafe fn push_internal(&mut self, sqe: &Entry) -> bool {
        // SAFETY: forwarded from the caller.
        let pushed = unsafe { self.push(sqe) }.is_ok();
        if pushed {
            self.internal_in_flight += 1;
        }
        pushed
    }

    /// Keeps a read on the wake-up eventfd in the ring (io_uring).
    fn arm_wake(&mut self) {
        if !matches!(self.backend, Some(Backend::Uring(_))) {
            return;
        }
        if let Some(sqe) = self.wake.sqe(&self.unparker) {
            // SAFETY: the 8-byte target is owned by `self.wake` and outlives the op:
            // teardown waits for the op's CQE, or leaks it with the ring.
            if unsafe { self.push_internal(&sqe) } {
                self.wake.armed = true;
            }
        }
    }

    /// Makes sure the timer fires no later than `deadline`.
    fn arm_timer(&mut self, deadline: Instant) {
        match self.backend {
            Some(Backend::Uring(_)) => {
                if let Some((sqe, armed)) = self.timer.ring_sqe(deadline, Instant::now()) {
                    // SAFETY: the timespecs are owned by `self.timer`, written only before
                    // a push and copied by the kernel at submission; they live as long
                    // as the ring (or are leaked with it).
                    if unsafe { self.push_internal(&sqe) } {
                        self.timer.armed = Some(armed);
                    }
                }
            }
            Some(Backend::Epoll(_)) => self.timer.arm_native(deadline),
            None => {}
        }
    }

    /// Submits what was pushed, optionally waiting for one completion (until the armed
    /// timer on epoll; with a time bound, used only at teardown). Interruptions and busy
    /// states are retried or end the wait; completions reaped early to relieve the kernel
    /// go to the backlog.
    fn enter(&mut self, how: Wait, bound: Option<Duration>) -> io::Result<()> {
        let until = match (self.timer.armed.map(|a| a.deadline), bound) {
            (Some(a), Some(b)) => Some(a.min(Instant::now() + b)),
            (a, b) => a.or_else(|| b.map(|b| Instant::now() + b)),
        };
        let backend = self.backend.as_mut().ok_or_else(closed_error)?;
        backend.enter(how, bound, until, &mut self.stats, &mut self.backlog)?;
        if matches!(self.backend, Some(Backend::Epoll(_))) {
            // epoll: the armed deadline is native; it fired if the wait passed it.
            self.timer.expire_native(Instant::now());
        }
        Ok(())
    }

    /// Moves the backlog and every op CQE in the ring into `out`, then settles the quiet
    /// ops that are known to have succeeded and re-arms the wake-up read.
    fn reap(&mut self, out: &mut Vec<(u64, Completion)>) {
        out.append(&mut self.backlog);
        let fresh = out.len();
        self.reap_ring(out);
        if !self.wake.armed {
            self.arm_wake();
        }
        self.settle_quiet(out, fresh);
    }

    /// Quiet ops post no CQE when they succeed: once the kernel took every SQE, those
    /// that did not report themselves are done, and their completions go into `out` at
    /// `at` (before the CQEs reaped since). Until then, the next enter is asked to settle.
    fn settle_quiet(&mut self, out: &mut Vec<(u64, Completion)>, at: usize) {
        if self.quiet.is_empty() {
            return;
        }
        if self
            .backend
            .as_mut()
            .is_some_and(|b| b.submissions_settled())
        {
            self.stats.quiet += self.quiet.settle(out, at);
        } else {
            self.quiet.hurry();
        }
    }

    /// Moves every CQE in the ring into `out`, handling the internal ones (order of the
    /// rest is kept).
    fn reap_ring(&mut self, out: &mut Vec<(u64, Completion)>) {
        let Some(backend) = self.backend.as_mut() else {
            return;
        };
        let before = out.len();
        backend.reap(out);
        self.stats.cqes += (out.len() - before) as u64;
        if !out[before..].iter().any(|(ud, _)| tag::is_internal(*ud)) {
            self.quiet.saw(&out[before..]);
            return;
        }
        self.quiet.saw(&out[before..]);
        let mut i = 0;
        out.retain(|&(user_data, c)| {
            i += 1;
            if i <= before || !tag::is_internal(user_data) {
                return true;
            }
            if !c.more() {
                self.internal_in_flight = self.internal_in_flight.saturating_sub(1);
            }
            match user_data & tag::KIND_MASK {
                tag::WAKE_READ => self.wake.armed = false,
                tag::TIMER => self.timer.ring_fired(user_data),
                // Cancels and timer updates: their outcome shows in their target's CQE.
                _ => {}
            }
            false
        });
    }

    fn abandon(&mut self, key: OpKey, orphan: Box<dyn Orphan>) {
        if self.slots.abandon(key, orphan) {
            self.cancel(key);
        }
    }

    fn cancel(&mut self, key: OpKey) {
        match self.backend.as_mut() {
            Some(Backend::Epoll(e)) => e.cancel(key.user_data()),
            Some(Backend::Uring(_)) => {
                let sqe = opcode::AsyncCancel::new(key.user_data())
                    .build()
                    .user_data(tag::CANCEL);
                // SAFETY: a cancel SQE points to no memory.
                unsafe { self.push_internal(&sqe) };
            }
            // Closed: teardown cancelled everything already.
            None => {}
        }
    }

    /// Teardown: cancel every op, the timer and the wake-up included.
    fn cancel_all(&mut self) {
        match self.backend.as_mut() {
            Some(Backend::Epoll(e)) => {
                e.cancel_all();
                self.wake_registered = false;
                self.timer.armed = None;
            }
            Some(Backend::Uring(_)) => {
                let sqe = opcode::AsyncCancel2::new(io_uring::types::CancelBuilder::any())
                    .build()
                    .user_data(tag::CANCEL);
                // SAFETY: a cancel SQE points to no memory.
                unsafe { self.push_internal(&sqe) };
            }
            None => {}
        }
    }
}
