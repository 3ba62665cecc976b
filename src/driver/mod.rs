//! The ring driver: owns the `IoUring`, the slab of in-flight operations, and the
//! submit/reap cycle. It knows nothing of op types, tasks or timers.
//!
//! Rules it enforces (see `docs/ops-and-buffers.md`):
//! - An op keeps its slot from the moment its SQE is pushed until its last CQE, whatever
//!   `io_uring_enter` returns; a dropped owner turns the slot into an orphan that keeps the
//!   buffers alive and submits an `ASYNC_CANCEL`.
//! - SQEs are pushed during an iteration and submitted once, by [`Driver::submit_and_reap`];
//!   a full SQ is submitted early and the push retried.
//! - `EINTR`, `EAGAIN` and `EBUSY` from `io_uring_enter` mean "reap and go again", never an
//!   error for users.
//! - Teardown cancels everything and reaps until the slab is empty; whatever the kernel
//!   still holds after the bound is leaked, never freed.

mod epoll;
mod quiet;
mod setup;
#[allow(dead_code)] // multishot and handler paths are used by the transports
pub(crate) mod slots;
mod uring;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use io_uring::opcode;
use io_uring::squeue::{Entry, Flags};

pub(crate) use setup::RingSize;
pub use setup::SetupMode;
pub(crate) use slots::{Completion, Dispatch, Driven, INTERNAL_BIT, OpHandler, OpKey, Orphan};

use crate::buf::ring::BufRing;
use epoll::EpollEngine;
use quiet::QuietOps;
use slots::Slots;
use uring::UringEngine;

/// `user_data` of the driver's own `ASYNC_CANCEL` SQEs.
const CANCEL_TOKEN: u64 = INTERNAL_BIT | (1 << 56);

/// Which engine executes the loop's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A Linux io_uring ring (the point of ringloop).
    Uring,
    /// epoll readiness plus non-blocking syscalls: the baseline, and the fallback where
    /// io_uring is refused.
    Epoll,
    /// io_uring, falling back to epoll (with a note on stderr) only when it is refused.
    Auto,
}

/// The engine behind the driver: the same SQEs, executed by the kernel's ring or emulated
/// on epoll.
// One per loop, matched on every enter: a box would only add a pointer chase.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Uring(UringEngine),
    Epoll(EpollEngine),
}

impl Backend {
    /// Queues an SQE; false when the submission queue is full.
    ///
    /// # Safety
    ///
    /// The SQE's memory must outlive its last completion.
    unsafe fn try_push(&mut self, sqe: &Entry) -> bool {
        match self {
            // SAFETY: forwarded from the caller.
            Backend::Uring(u) => unsafe { u.try_push(sqe) },
            // SAFETY: forwarded from the caller.
            Backend::Epoll(e) => unsafe { e.push(sqe) },
        }
    }

    fn enter(
        &mut self,
        how: Wait,
        bound: Option<Duration>,
        stats: &mut DriverStats,
        backlog: &mut Vec<(u64, Completion)>,
    ) -> io::Result<()> {
        match self {
            Backend::Uring(u) => u.enter(how, bound, stats, backlog),
            Backend::Epoll(e) => e.enter(how, bound, stats),
        }
    }

    /// Whether everything pushed was submitted and every completion posted is in reach of
    /// `reap` (none held in an overflow list): then quiet ops without a CQE succeeded.
    fn submissions_settled(&mut self) -> bool {
        match self {
            Backend::Uring(u) => u.submissions_settled(),
            // Never given quiet ops.
            Backend::Epoll(_) => true,
        }
    }

    fn reap(&mut self, out: &mut Vec<(u64, Completion)>) {
        match self {
            Backend::Uring(u) => u.reap(out),
            Backend::Epoll(e) => e.reap(out),
        }
    }

    fn supports(&self, opcode: u8) -> bool {
        match self {
            Backend::Uring(u) => u.supports(opcode),
            Backend::Epoll(_) => EpollEngine::supports(opcode),
        }
    }

    /// # Safety
    ///
    /// The buffer ring must outlive the engine.
    unsafe fn register_buf_ring(&self, buf_ring: &BufRing) -> io::Result<()> {
        match self {
            // SAFETY: forwarded from the caller.
            Backend::Uring(u) => unsafe { u.register_buf_ring(buf_ring) },
            Backend::Epoll(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the epoll engine has no provided-buffer rings",
            )),
        }
    }

    fn release_after_fork(self) {
        match self {
            Backend::Uring(u) => u.release_after_fork(),
            Backend::Epoll(e) => drop(e),
        }
    }
}

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
    /// driver settled
    /// them (see [`Driver::push_quiet_op`]). Zero on epoll.
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
    /// Submit, and block until a CQE arrives.
    Block,
    /// Submit (possibly nothing) and let the kernel post deferred completions.
    Poll,
    /// Enter only if there is something to submit.
    IfSubmitting,
}

/// The ring and the op slab, shared by the loop and every op future on this thread.
pub(crate) struct Driver {
    inner: RefCell<Inner>,
    /// Fds closed since the last enter (the epoll engine forgets their registrations).
    /// Kept outside `inner`: an fd may close while `inner` is borrowed (an orphan freed
    /// during a completion).
    closed_fds: RefCell<Vec<i32>>,
    /// The epoll engine's epoll fd (`None` on io_uring).
    epoll: Option<i32>,
    /// Whether quiet ops are available (io_uring with `IORING_FEAT_CQE_SKIP`).
    quiet_ops: bool,
}

struct Inner {
    /// The engine (io_uring, or the epoll emulation); `None` once the loop is closed.
    backend: Option<Backend>,
    slots: Slots,
    /// CQEs reaped early (to relieve a full CQ while pushing), not yet dispatched.
    backlog: Vec<(u64, Completion)>,
    /// Internal SQEs (cancels, the loop's timer and wake-up read) still in the kernel.
    internal_in_flight: usize,
    stats: DriverStats,
    /// Provided-buffer rings registered with the ring; they must outlive it.
    buf_rings: Vec<Rc<BufRing>>,
    /// Close timed out with ops still in the kernel; their memory is never freed.
    leaked: bool,
    /// Quiet ops pushed and not yet settled.
    quiet: QuietOps,
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the event loop is closed")
}

#[allow(dead_code)] // multishot and handler paths are used by the transports
impl Driver {
    /// Sets up an io_uring ring.
    pub(crate) fn new(size: RingSize) -> io::Result<Driver> {
        let (ring, mode, probe) = setup::build_ring(size)?;
        Ok(Self::with_backend(Backend::Uring(UringEngine::new(
            ring, mode, probe,
        ))))
    }

    /// Sets up the epoll engine (readiness-based emulation of the same ops).
    pub(crate) fn new_epoll() -> io::Result<Driver> {
        Ok(Self::with_backend(Backend::Epoll(EpollEngine::new()?)))
    }

    fn with_backend(backend: Backend) -> Driver {
        Driver {
            closed_fds: RefCell::new(Vec::new()),
            epoll: match &backend {
                Backend::Epoll(e) => Some(e.epoll_fd()),
                Backend::Uring(_) => None,
            },
            quiet_ops: match &backend {
                Backend::Uring(u) => u.skips_successful_cqes(),
                Backend::Epoll(_) => false,
            },
            inner: RefCell::new(Inner {
                backend: Some(backend),
                slots: Slots::default(),
                backlog: Vec::new(),
                internal_in_flight: 0,
                stats: DriverStats::default(),
                buf_rings: Vec::new(),
                leaked: false,
                quiet: QuietOps::default(),
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

    /// Which engine runs the ops.
    pub(crate) fn engine(&self) -> Engine {
        match self.inner.borrow().backend.as_ref() {
            Some(Backend::Epoll(_)) => Engine::Epoll,
            _ => Engine::Uring,
        }
    }

    /// Whether the engine supports an opcode.
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        self.inner
            .borrow()
            .backend
            .as_ref()
            .is_some_and(|b| b.supports(opcode))
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

    /// Operations in the kernel, internal ones included.
    pub(crate) fn in_flight(&self) -> usize {
        let inner = self.inner.borrow();
        inner.slots.len() + inner.internal_in_flight
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

    /// Whether [`Driver::push_quiet_op`] pushes quiet ops (io_uring with
    /// `IORING_FEAT_CQE_SKIP`); elsewhere it pushes ordinary ones.
    pub(crate) fn quiet_ops(&self) -> bool {
        self.quiet_ops
    }

    /// Whether the ring is gone (loop closed).
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.borrow().backend.is_none()
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

    /// Pushes an operation's SQE and opens its slot.
    ///
    /// # Safety
    ///
    /// Every pointer in `sqe` must stay valid until the op's last CQE: the caller keeps the
    /// memory in the op's owner and hands it to [`Driver::abandon`] if the owner goes first.
    pub(crate) unsafe fn push_op(&self, sqe: Entry, driven: Driven) -> io::Result<OpKey> {
        // SAFETY: forwarded from the caller.
        unsafe { self.push_op_as(sqe, driven, None) }
    }

    /// [`Driver::push_op`] for a quiet op: submitted with `IOSQE_CQE_SKIP_SUCCESS`, so a
    /// success posts no CQE and the driver completes it with `success` after the enter
    /// that submitted it (see the `quiet` module). Where [`Driver::quiet_ops`] is false
    /// it is an ordinary op.
    ///
    /// # Safety
    ///
    /// As [`Driver::push_op`]. Besides, the op must finish during its submission, and
    /// report anything but the full `success` with a CQE — a stream send with
    /// `MSG_DONTWAIT | MSG_WAITALL` or a datagram send with `MSG_DONTWAIT` (sent whole or
    /// not at all), nothing else — and nobody may need its completion
    /// before the loop's next real event (the enter that submits it may sleep), unless
    /// it says so with [`Driver::await_quiet`].
    pub(crate) unsafe fn push_quiet_op(
        &self,
        sqe: Entry,
        driven: Driven,
        success: i32,
    ) -> io::Result<OpKey> {
        let quiet = self.quiet_ops.then_some(success);
        // SAFETY: forwarded from the caller.
        unsafe { self.push_op_as(sqe, driven, quiet) }
    }

    /// The owner of a quiet op not yet settled now needs its completion (a close waits
    /// for it, a paused protocol for its resume): the next enter must not sleep before
    /// it is settled.
    pub(crate) fn await_quiet(&self) {
        self.inner.borrow_mut().quiet.hurry();
    }

    /// # Safety
    ///
    /// As [`Driver::push_quiet_op`] when `quiet` is set, else as [`Driver::push_op`].
    unsafe fn push_op_as(
        &self,
        sqe: Entry,
        driven: Driven,
        quiet: Option<i32>,
    ) -> io::Result<OpKey> {
        let mut inner = self.inner.borrow_mut();
        if inner.backend.is_none() {
            return Err(closed_error());
        }
        let key = inner.slots.insert_as(driven, quiet.is_some());
        let mut sqe = sqe.user_data(key.user_data());
        if quiet.is_some() {
            sqe = sqe.flags(Flags::SKIP_SUCCESS);
        }
        // SAFETY: the caller guarantees the SQE's memory outlives the op.
        if let Err(e) = unsafe { inner.push(&sqe) } {
            inner.slots.remove_unsubmitted(key);
            return Err(e);
        }
        if let Some(success) = quiet {
            inner.quiet.pushed(key, success);
        }
        Ok(key)
    }

    /// Pushes one of the loop's internal SQEs (`user_data` with [`INTERNAL_BIT`] set).
    ///
    /// # Safety
    ///
    /// As [`Driver::push_op`]: the SQE's memory must outlive its last CQE.
    pub(crate) unsafe fn push_internal(&self, sqe: Entry) -> io::Result<()> {
        debug_assert!(sqe.get_user_data() & INTERNAL_BIT != 0);
        let mut inner = self.inner.borrow_mut();
        if inner.backend.is_none() {
            return Err(closed_error());
        }
        // SAFETY: forwarded from the caller.
        unsafe { inner.push(&sqe) }?;
        inner.internal_in_flight += 1;
        Ok(())
    }

    /// Records that an internal SQE's last CQE was seen.
    pub(crate) fn internal_done(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.internal_in_flight = inner.internal_in_flight.saturating_sub(1);
    }

    /// Polls a single-shot op future.
    pub(crate) fn poll_op(&self, key: OpKey, cx: &mut Context<'_>) -> Poll<Completion> {
        self.inner.borrow_mut().slots.poll(key, cx)
    }

    /// Polls a multishot op future for its next completion.
    pub(crate) fn poll_next(&self, key: OpKey, cx: &mut Context<'_>) -> Poll<Option<Completion>> {
        self.inner.borrow_mut().slots.poll_next(key, cx)
    }

    /// The owner of an in-flight op went away: keep `orphan` until the op's last CQE, and
    /// ask the kernel to cancel the op.
    pub(crate) fn abandon(&self, key: OpKey, orphan: Box<dyn Orphan>) {
        let mut inner = self.inner.borrow_mut();
        if inner.leaked {
            // Close gave up on the kernel: its buffers may still be written. Never free.
            std::mem::forget(orphan);
            return;
        }
        if inner.slots.abandon(key, orphan) {
            inner.cancel(key);
        }
    }

    /// Asks the kernel to cancel an op (its slot stays until its CQE).
    pub(crate) fn cancel(&self, key: OpKey) {
        self.inner.borrow_mut().cancel(key);
    }

    /// Records a CQE for an op and says what to do about it.
    pub(crate) fn complete(&self, key: OpKey, completion: Completion) -> Dispatch {
        self.inner.borrow_mut().slots.complete(key, completion)
    }

    /// Submits what was pushed and reaps every available CQE into `out`.
    ///
    /// `Wait::Block` blocks until at least one CQE arrives (unless some are already
    /// reaped); `Wait::Poll` enters the kernel even with nothing to submit, so deferred
    /// completions get posted; `Wait::IfSubmitting` enters only to submit.
    pub(crate) fn submit_and_reap(
        &self,
        wait: Wait,
        out: &mut Vec<(u64, Completion)>,
    ) -> io::Result<()> {
        let mut inner = self.inner.borrow_mut();
        if self.epoll.is_some() {
            let closed = std::mem::take(&mut *self.closed_fds.borrow_mut());
            if let Some(Backend::Epoll(e)) = inner.backend.as_mut() {
                for fd in closed {
                    e.forget_fd(fd);
                }
            }
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
        let mut inner = self.inner.borrow_mut();
        if inner.backend.is_none() {
            return 0;
        }
        inner.slots.abandon_all();
        let cancel_all = opcode::AsyncCancel2::new(io_uring::types::CancelBuilder::any())
            .build()
            .user_data(CANCEL_TOKEN);
        // SAFETY: a cancel SQE points to no memory.
        if unsafe { inner.push(&cancel_all) }.is_ok() {
            inner.internal_in_flight += 1;
        }
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
            inner.reap(&mut reaped);
            for (user_data, c) in reaped.drain(..) {
                match OpKey::from_user_data(user_data) {
                    Some(key) => {
                        // Wakers and handlers were dropped by abandon_all.
                        let _ = inner.slots.complete(key, c);
                    }
                    None if !c.more() => {
                        inner.internal_in_flight = inner.internal_in_flight.saturating_sub(1)
                    }
                    None => {}
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
        {
            eprintln!(
                "ringloop: {leaked} operations still in the kernel {bound:?} after close; \
                 their buffers and the ring are leaked rather than freed early"
            );
            std::mem::forget(ring);
            std::mem::forget(std::mem::take(&mut inner.slots));
            std::mem::forget(std::mem::take(&mut inner.buf_rings));
        }
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

    /// Submits what was pushed, optionally waiting for one completion (with a time bound,
    /// used only at teardown). Interruptions and busy states are retried or end the wait;
    /// completions reaped early to relieve the kernel go to the backlog.
    fn enter(&mut self, how: Wait, bound: Option<Duration>) -> io::Result<()> {
        let backend = self.backend.as_mut().ok_or_else(closed_error)?;
        backend.enter(how, bound, &mut self.stats, &mut self.backlog)
    }

    /// Moves the backlog and every CQE in the ring into `out`, then settles the quiet ops
    /// that are known to have succeeded.
    fn reap(&mut self, out: &mut Vec<(u64, Completion)>) {
        out.append(&mut self.backlog);
        let fresh = out.len();
        self.reap_ring(out);
        if self.quiet.is_empty() {
            return;
        }
        if self
            .backend
            .as_mut()
            .is_some_and(|b| b.submissions_settled())
        {
            self.stats.quiet += self.quiet.settle(out, fresh);
        } else {
            self.quiet.hurry();
        }
    }

    fn reap_ring(&mut self, out: &mut Vec<(u64, Completion)>) {
        let Some(backend) = self.backend.as_mut() else {
            return;
        };
        let before = out.len();
        backend.reap(out);
        self.stats.cqes += (out.len() - before) as u64;
        self.quiet.saw(&out[before..]);
        // The driver's own cancels need no dispatch (order of the rest is kept).
        let mut cancels = 0;
        let mut i = before;
        out.retain(|(user_data, _)| {
            let keep = i < before || *user_data != CANCEL_TOKEN;
            i += 1;
            if !keep {
                cancels += 1;
            }
            keep
        });
        self.internal_in_flight = self.internal_in_flight.saturating_sub(cancels);
    }

    fn cancel(&mut self, key: OpKey) {
        let sqe = opcode::AsyncCancel::new(key.user_data())
            .build()
            .user_data(CANCEL_TOKEN);
        // SAFETY: a cancel SQE points to no memory. A failure means the loop is closed,
        // where teardown cancels everything anyway.
        if unsafe { self.push(&sqe) }.is_ok() {
            self.internal_in_flight += 1;
        }
    }
}
