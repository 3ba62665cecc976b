//! The ring driver: owns the `IoUring`, the slab of in-flight operations, and the
//! submit/reap cycle. It knows nothing of op types, tasks or timers.
//!
//! Rules it enforces (see `docs/op-lifecycle.md`):
//! - An op keeps its slot from the moment its SQE is pushed until its last CQE, whatever
//!   `io_uring_enter` returns; a dropped owner turns the slot into an orphan that keeps the
//!   buffers alive and submits an `ASYNC_CANCEL`.
//! - SQEs are pushed during an iteration and submitted once, by [`Driver::submit_and_reap`];
//!   a full SQ is submitted early and the push retried.
//! - `EINTR`, `EAGAIN` and `EBUSY` from `io_uring_enter` mean "reap and go again", never an
//!   error for users.
//! - Teardown cancels everything and reaps until the slab is empty; whatever the kernel
//!   still holds after the bound is leaked, never freed.

mod setup;
#[allow(dead_code)] // multishot and handler paths are used by the transports
pub(crate) mod slots;

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use io_uring::squeue::Entry;
use io_uring::types::{CancelBuilder, SubmitArgs, Timespec};
use io_uring::{IoUring, Probe, opcode};

pub(crate) use setup::RingSize;
pub use setup::SetupMode;
pub(crate) use slots::{Completion, Dispatch, Driven, INTERNAL_BIT, OpHandler, OpKey, Orphan};

use crate::buf::ring::BufRing;
use slots::Slots;

/// `user_data` of the driver's own `ASYNC_CANCEL` SQEs.
const CANCEL_TOKEN: u64 = INTERNAL_BIT | (1 << 56);

/// `IORING_ENTER_GETEVENTS` (the io-uring crate does not re-export its sys constants).
const GETEVENTS: u32 = 1;

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
    /// Times the kernel reported CQ overflow (completions kept by `FEAT_NODROP`).
    pub cq_overflow: u64,
    /// CQEs that named no live operation (must stay zero).
    pub stale_cqes: u64,
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
}

struct Inner {
    /// `None` once the loop is closed.
    ring: Option<IoUring>,
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
    mode: SetupMode,
    #[allow(dead_code)] // read by the networking layer (buffer rings, multishot paths)
    probe: Probe,
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the event loop is closed")
}

#[allow(dead_code)] // multishot and handler paths are used by the transports
impl Driver {
    /// Sets up a ring.
    pub(crate) fn new(size: RingSize) -> io::Result<Driver> {
        let (ring, mode, probe) = setup::build_ring(size)?;
        Ok(Driver {
            inner: RefCell::new(Inner {
                ring: Some(ring),
                slots: Slots::default(),
                backlog: Vec::new(),
                internal_in_flight: 0,
                stats: DriverStats::default(),
                buf_rings: Vec::new(),
                leaked: false,
                mode,
                probe,
            }),
        })
    }

    /// The set-up flags in use.
    pub(crate) fn mode(&self) -> SetupMode {
        self.inner.borrow().mode
    }

    /// Whether the kernel supports an opcode.
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        self.inner.borrow().probe.is_supported(opcode)
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> DriverStats {
        let inner = self.inner.borrow();
        DriverStats {
            stale_cqes: inner.slots.stale_cqes,
            ..inner.stats
        }
    }

    /// Operations in the kernel, internal ones included.
    pub(crate) fn in_flight(&self) -> usize {
        let inner = self.inner.borrow();
        inner.slots.len() + inner.internal_in_flight
    }

    /// Whether the ring is gone (loop closed).
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.borrow().ring.is_none()
    }

    /// Registers a provided-buffer ring; it lives as long as the ring (or is leaked with it).
    pub(crate) fn register_buf_ring(&self, buf_ring: BufRing) -> io::Result<Rc<BufRing>> {
        let mut inner = self.inner.borrow_mut();
        let ring = inner.ring.as_ref().ok_or_else(closed_error)?;
        // SAFETY: the ring memory is a live mapping of `entries` entries; it is kept in
        // `buf_rings` until the io_uring itself is gone (or leaked together with it).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                buf_ring.ring_addr(),
                buf_ring.entries(),
                buf_ring.bgid(),
                0,
            )
        }?;
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
        let mut inner = self.inner.borrow_mut();
        if inner.ring.is_none() {
            return Err(closed_error());
        }
        let key = inner.slots.insert(driven);
        let sqe = sqe.user_data(key.user_data());
        // SAFETY: the caller guarantees the SQE's memory outlives the op.
        if let Err(e) = unsafe { inner.push(&sqe) } {
            inner.slots.remove_unsubmitted(key);
            return Err(e);
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
        if inner.ring.is_none() {
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
        let wait = match wait {
            Wait::Block if !inner.backlog.is_empty() => Wait::Poll,
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
        if let Some(ring) = inner.ring.take() {
            let fd = ring.as_raw_fd();
            // Not dropped: its Drop would munmap an address range the child may reuse.
            std::mem::forget(ring);
            // SAFETY: the forgotten IoUring owned this fd and will never use or close it.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }

    /// Loop teardown: cancel every op, wait (at most `bound`) for the last CQEs, then unmap
    /// the ring. What the kernel still holds after the bound is leaked, never freed.
    /// Returns the number of ops leaked.
    pub(crate) fn shutdown(&self, bound: Duration) -> usize {
        let mut inner = self.inner.borrow_mut();
        if inner.ring.is_none() {
            return 0;
        }
        inner.slots.abandon_all();
        let cancel_all = opcode::AsyncCancel2::new(CancelBuilder::any())
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
        let ring = inner.ring.take();
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
            let ring = self.ring.as_mut().ok_or_else(closed_error)?;
            // SAFETY: the caller guarantees the SQE's memory outlives the op.
            if unsafe { ring.submission().push(sqe) }.is_ok() {
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

    /// Submits the SQ with `GETEVENTS`, optionally waiting for one CQE (with a time bound,
    /// used only at teardown). Interruptions and busy states are retried or end the wait.
    fn enter(&mut self, how: Wait, bound: Option<Duration>) -> io::Result<()> {
        let mut wait = how == Wait::Block;
        let mut busy_rounds = 0u32;
        loop {
            let ring = self.ring.as_mut().ok_or_else(closed_error)?;
            let to_submit = ring.submission().len() as u32;
            if to_submit == 0 && how == Wait::IfSubmitting && !self.kernel_holds_completions() {
                return Ok(());
            }
            self.stats.enters += 1;
            let ring = self.ring.as_mut().ok_or_else(closed_error)?;
            let result = match bound {
                Some(t) if wait => {
                    let ts = Timespec::from(t);
                    let args = SubmitArgs::new().timespec(&ts);
                    ring.submitter().submit_with_args(1, &args)
                }
                _ => {
                    let flags = GETEVENTS;
                    // SAFETY: no argument pointer is passed; the SQ entries were pushed by
                    // `push`, whose callers guarantee their memory.
                    unsafe {
                        ring.submitter().enter::<libc::sigset_t>(
                            to_submit,
                            u32::from(wait),
                            flags,
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
                        let mut early = std::mem::take(&mut self.backlog);
                        let before = early.len();
                        self.reap_ring(&mut early);
                        let progressed = early.len() > before;
                        self.backlog = early;
                        if progressed {
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
        if let Some(ring) = self.ring.as_mut() {
            let overflow = ring.completion().overflow();
            self.stats.cq_overflow = u64::from(overflow);
        }
        Ok(())
    }

    /// Whether the kernel holds completions back (overflow backlog, or task work the
    /// kernel flagged) that only an enter would post.
    fn kernel_holds_completions(&mut self) -> bool {
        match self.ring.as_mut() {
            Some(ring) => {
                let sq = ring.submission();
                sq.cq_overflow() || sq.taskrun()
            }
            None => false,
        }
    }

    /// Moves the backlog and every CQE in the ring into `out`.
    fn reap(&mut self, out: &mut Vec<(u64, Completion)>) {
        out.append(&mut self.backlog);
        self.reap_ring(out);
    }

    fn reap_ring(&mut self, out: &mut Vec<(u64, Completion)>) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        for cqe in ring.completion() {
            self.stats.cqes += 1;
            if cqe.user_data() == CANCEL_TOKEN {
                // The driver's own cancels need no dispatch.
                self.internal_in_flight = self.internal_in_flight.saturating_sub(1);
                continue;
            }
            out.push((
                cqe.user_data(),
                Completion {
                    result: cqe.result(),
                    flags: cqe.flags(),
                },
            ));
        }
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
