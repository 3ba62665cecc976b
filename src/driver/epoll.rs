//! The epoll engine: runs each op's [`Attempt`] — a non-blocking syscall the op itself
//! defines — when epoll says its fd is ready, and answers with the same completions the
//! ring would post.
//!
//! This is the readiness-polling baseline the benchmarks compare the ring against, and
//! the fallback where io_uring is refused. It is a fair one — what mio/tokio do:
//! - every fd is registered once, edge-triggered, for reading and writing; no
//!   `epoll_ctl` per operation;
//! - a per-fd readiness cache: an op runs at once when its direction is believed ready
//!   (a new fd is), and waits for the next edge after `EAGAIN`; a short stream read
//!   ([`Outcome::Drained`]) clears the cache too (with edge triggering, new data brings a
//!   new edge), which saves the `EAGAIN` read most loops pay;
//! - ops on one fd and direction run in submission order;
//! - regular files (which epoll refuses) are "always ready": their ops run at once;
//! - ops whose attempt says [`Interest::Blocking`] (file I/O, path calls: `crate::fs`)
//!   run on a thread of the engine's [`Executor`] (the pool behind `run_in_executor`),
//!   which sends back `(user_data, result)` through a queue and wakes the loop; they
//!   complete through the same slots as every other op (see `docs/files.md`).
//!
//! It never reads SQE bytes: what an op does is its attempt's `run` function. Multishot
//! accept is emulated (an attempt that answers [`Outcome::More`], at most
//! [`MULTISHOT_BATCH`] in a row); provided-buffer rings are not (ops without an attempt
//! complete with `EINVAL`). The loop's timer is the `epoll_wait` timeout, and the loop's
//! wake-up eventfd is registered here natively.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::attempt::{Attempt, Interest, Outcome};
use super::{Completion, DriverStats, Unparker, Wait};
use crate::executor::Executor;
use crate::sys::nonblocking as nb;

const F_MORE: u32 = 1 << 1;
/// A multishot op yields to others after this many completions in a row.
const MULTISHOT_BATCH: usize = 32;
/// The bound on the threads running blocking ops (spawned as needed): enough for a queue
/// depth of 64 file reads in flight, as fio's `psync` engine with 64 jobs.
const BLOCKING_THREADS: usize = 64;

/// Which readiness a pending op waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Read,
    Write,
}

#[derive(Default)]
struct FdState {
    registered: bool,
    /// epoll refused the fd (a regular file): ops run at once, blocking.
    always_ready: bool,
    readable: bool,
    writable: bool,
    /// The peer's end of stream (or an error) was seen: reads never block again, and no
    /// further edge will come, so a short read must not clear `readable`.
    read_closed: bool,
    readers: VecDeque<u64>,
    writers: VecDeque<u64>,
}

struct Pending {
    attempt: Attempt,
    dir: Dir,
}

/// What was pushed since the last enter, run at the next one in order (as the kernel
/// does at submit).
enum Submitted {
    Op(u64, Attempt),
    /// An op without an attempt: it cannot run here.
    Unsupported(u64),
    /// Cancel the op with this `user_data`.
    Cancel(u64),
    /// Cancel every op (teardown).
    CancelAll,
}

/// A hasher for `user_data` keys, which are already well spread (index | generation).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

pub(super) struct EpollEngine {
    epfd: OwnedFd,
    /// The loop's wake-up eventfd, registered natively (its fd number is its token).
    wake_fd: RawFd,
    fds: Vec<FdState>,
    pending: IdMap<Pending>,
    submitted: Vec<Submitted>,
    completions: VecDeque<(u64, Completion)>,
    events: Vec<libc::epoll_event>,
    /// Fds whose multishot op yielded while still ready.
    rerun: Vec<(RawFd, Dir)>,
    /// The last blocking enter returned without `epoll_wait`: what it ran had completed
    /// at once (see `enter`). The next one polls, so other fds' readiness is never starved.
    skipped_wait: bool,
    /// Blocking ops run on pool threads, and what they finished (see `start_blocking`).
    blocking: BlockingOps,
}

/// The engine's side of [`Interest::Blocking`] ops: a pool, created at the first such
/// op, and the queue its threads post `(user_data, result)` to before waking the loop.
struct BlockingOps {
    pool: Option<Executor>,
    done: Arc<Mutex<Vec<(u64, i32)>>>,
    unparker: Unparker,
    /// Ops handed to the pool whose result has not been collected.
    running: usize,
}

impl BlockingOps {
    /// Hands `attempt` to a pool thread; false if no thread could take it.
    fn start(&mut self, ud: u64, attempt: Attempt) -> bool {
        let pool = match &self.pool {
            Some(p) => p,
            None => match Executor::new(BLOCKING_THREADS) {
                Ok(p) => self.pool.insert(p),
                Err(_) => return false,
            },
        };
        let done = self.done.clone();
        let unparker = self.unparker.clone();
        let mut attempt = attempt;
        let job = Box::new(move || {
            // SAFETY: the op is in flight until the loop reaps the result this job posts
            // below, so every pointer its attempt carries is alive for this call; nothing
            // on the loop's thread touches the op's memory meanwhile (an InFlight or an
            // orphan owns it, and neither reads it before the completion).
            let r = match unsafe { attempt.run() } {
                Outcome::Done(r) | Outcome::Drained(r) | Outcome::More(r) => r,
                Outcome::NotReady => -libc::EAGAIN,
            };
            done.lock().unwrap_or_else(|p| p.into_inner()).push((ud, r));
            unparker.unpark();
        });
        if pool.submit_job(job).is_err() {
            return false;
        }
        self.running += 1;
        true
    }

    /// Moves what the pool finished into `out`.
    fn collect(&mut self, out: &mut VecDeque<(u64, Completion)>) {
        if self.running == 0 {
            return;
        }
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        self.running -= done.len();
        out.extend(
            done.drain(..)
                .map(|(ud, result)| (ud, Completion { result, flags: 0 })),
        );
    }
}

impl Drop for BlockingOps {
    fn drop(&mut self) {
        // Jobs still queued run and post into `done` (kept alive by their Arc); the
        // driver only drops the engine once every slot was reaped or leaked.
        if let Some(pool) = self.pool.take() {
            pool.shutdown(false);
        }
    }
}

impl EpollEngine {
    /// An engine woken by `unparker`'s eventfd (made non-blocking here, read on each
    /// wake-up).
    pub(super) fn new(unparker: Unparker) -> io::Result<Self> {
        let wake_fd = unparker.raw();
        let epfd = nb::epoll_create()?;
        nb::set_nonblocking(wake_fd)?;
        nb::epoll_add(epfd.as_raw_fd(), wake_fd)?;
        Ok(EpollEngine {
            epfd,
            wake_fd,
            fds: Vec::new(),
            pending: IdMap::default(),
            submitted: Vec::new(),
            completions: VecDeque::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
            rerun: Vec::new(),
            skipped_wait: false,
            blocking: BlockingOps {
                pool: None,
                done: Arc::new(Mutex::new(Vec::new())),
                unparker,
                running: 0,
            },
        })
    }

    pub(super) fn epoll_fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    /// Queues an op for the next `enter`; `None`: the op has no attempt (it completes
    /// with `EINVAL`). Never full.
    ///
    /// # Safety
    ///
    /// The attempt's memory (its op) must outlive its last completion.
    pub(super) unsafe fn push(&mut self, user_data: u64, attempt: Option<Attempt>) {
        self.submitted.push(match attempt {
            Some(a) => Submitted::Op(user_data, a),
            None => Submitted::Unsupported(user_data),
        });
    }

    /// Queues a cancel of the op `user_data` for the next `enter` (in submission order).
    pub(super) fn cancel(&mut self, user_data: u64) {
        self.submitted.push(Submitted::Cancel(user_data));
    }

    /// Queues a cancel of every op (teardown).
    pub(super) fn cancel_all(&mut self) {
        self.submitted.push(Submitted::CancelAll);
    }

    /// Runs what was pushed, then waits for readiness (per `how`, at most until `until`)
    /// and runs what became ready; completions are queued for [`EpollEngine::reap`].
    pub(super) fn enter(
        &mut self,
        how: Wait,
        until: Option<Instant>,
        stats: &mut DriverStats,
    ) -> io::Result<()> {
        let mut submitted = std::mem::take(&mut self.submitted);
        for s in submitted.drain(..) {
            match s {
                Submitted::Op(ud, attempt) => self.start(ud, attempt),
                Submitted::Unsupported(ud) => self.complete(ud, -libc::EINVAL, 0),
                Submitted::Cancel(ud) => self.cancel_now(ud),
                Submitted::CancelAll => self.cancel_all_now(),
            }
        }
        self.submitted = submitted;
        for (fd, dir) in std::mem::take(&mut self.rerun) {
            self.run_waiters(fd, dir);
        }
        self.blocking.collect(&mut self.completions);
        let timeout_ms = match how {
            Wait::IfSubmitting => return Ok(()),
            Wait::Poll => 0,
            // What was just run completed at once (a send that fit): those completions
            // are what the blocking wait waits for, so return them without an
            // `epoll_wait` of timeout 0 that would mostly find nothing — one syscall per
            // request/response saved — but not twice in a row.
            Wait::Block if !self.completions.is_empty() && !self.skipped_wait => {
                self.skipped_wait = true;
                return Ok(());
            }
            Wait::Block if !self.completions.is_empty() || !self.rerun.is_empty() => 0,
            Wait::Block => wait_ms(until),
        };
        self.skipped_wait = false;
        stats.enters += 1;
        let n = nb::epoll_wait(self.epfd.as_raw_fd(), &mut self.events, timeout_ms)?;
        for i in 0..n {
            let ev = self.events[i];
            let fd = ev.u64 as RawFd;
            if fd == self.wake_fd {
                // Reset the counter; the next write brings a new edge.
                let mut sink = 0u64;
                // SAFETY: 8 writable bytes on the stack, for the call only.
                let _ = unsafe { nb::read(fd, (&raw mut sink).cast(), 8, u64::MAX) };
                continue;
            }
            let bits = ev.events as i32;
            let err = bits & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
            if let Some(state) = self.fds.get_mut(fd as usize) {
                if bits & (libc::EPOLLIN | libc::EPOLLRDHUP) != 0 || err {
                    state.readable = true;
                }
                if bits & libc::EPOLLRDHUP != 0 || err {
                    state.read_closed = true;
                }
                if bits & libc::EPOLLOUT != 0 || err {
                    state.writable = true;
                }
            }
            self.run_waiters(fd, Dir::Read);
            self.run_waiters(fd, Dir::Write);
        }
        self.blocking.collect(&mut self.completions);
        Ok(())
    }

    pub(super) fn reap(&mut self, out: &mut Vec<(u64, Completion)>) {
        out.extend(self.completions.drain(..));
    }

    fn complete(&mut self, user_data: u64, result: i32, flags: u32) {
        self.completions
            .push_back((user_data, Completion { result, flags }));
    }

    fn fd_state(&mut self, fd: RawFd) -> &mut FdState {
        let i = fd as usize;
        if self.fds.len() <= i {
            self.fds.resize_with(i + 1, FdState::default);
        }
        &mut self.fds[i]
    }

    /// Registers `fd` with epoll on first use (non-blocking, edge-triggered).
    fn ensure_registered(&mut self, fd: RawFd) {
        let epfd = self.epfd.as_raw_fd();
        let state = self.fd_state(fd);
        if state.registered {
            return;
        }
        state.registered = true;
        state.readable = true;
        state.writable = true;
        if nb::epoll_add(epfd, fd).is_err() {
            // Regular files (EPERM) and the like: always "ready", I/O runs blocking.
            state.always_ready = true;
        } else {
            let _ = nb::set_nonblocking(fd);
        }
    }

    /// Begins an op: one that needs no readiness runs at once; an I/O op runs now if its
    /// fd is ready and nothing is queued before it, else waits.
    fn start(&mut self, ud: u64, mut attempt: Attempt) {
        let dir = match attempt.interest {
            Interest::Read => Dir::Read,
            Interest::Write => Dir::Write,
            Interest::Blocking => {
                if !self.blocking.start(ud, attempt) {
                    self.complete(ud, -libc::EAGAIN, 0);
                }
                return;
            }
            Interest::Now | Interest::Close => {
                if attempt.interest == Interest::Close {
                    nb::epoll_del(self.epfd.as_raw_fd(), attempt.fd);
                    self.forget_fd(attempt.fd);
                }
                // SAFETY: the op is in flight (pushed and not completed): its memory is
                // alive — the pusher's contract, the same one the kernel relies on.
                let r = match unsafe { attempt.run() } {
                    Outcome::Done(r) | Outcome::Drained(r) | Outcome::More(r) => r,
                    Outcome::NotReady => -libc::EAGAIN,
                };
                self.complete(ud, r, 0);
                return;
            }
        };
        let fd = attempt.fd;
        self.ensure_registered(fd);
        self.pending.insert(ud, Pending { attempt, dir });
        let state = self.fd_state(fd);
        let queue = match dir {
            Dir::Read => &mut state.readers,
            Dir::Write => &mut state.writers,
        };
        queue.push_back(ud);
        if queue.len() == 1 {
            self.run_waiters(fd, dir);
        }
    }

    /// Runs the ops waiting on `fd` in direction `dir`, in order, while it is ready.
    fn run_waiters(&mut self, fd: RawFd, dir: Dir) {
        loop {
            let Some(state) = self.fds.get_mut(fd as usize) else {
                return;
            };
            let (ready, queue) = match dir {
                Dir::Read => (state.readable || state.always_ready, &state.readers),
                Dir::Write => (state.writable || state.always_ready, &state.writers),
            };
            if !ready {
                return;
            }
            let Some(&ud) = queue.front() else {
                return;
            };
            let mut produced = 0;
            let outcome = loop {
                match self.attempt(ud) {
                    Outcome::More(r) if produced < MULTISHOT_BATCH => {
                        produced += 1;
                        self.complete(ud, r, F_MORE);
                    }
                    Outcome::More(r) => {
                        // Let other fds run; this op stays first in line and goes on at
                        // the next enter (no new edge would come for what is queued).
                        self.complete(ud, r, F_MORE);
                        self.rerun.push((fd, dir));
                        return;
                    }
                    other => break other,
                }
            };
            let result = match outcome {
                Outcome::NotReady => {
                    let state = self.fd_state(fd);
                    match dir {
                        Dir::Read => state.readable = false,
                        Dir::Write => state.writable = false,
                    }
                    return;
                }
                Outcome::Drained(r) => {
                    // A short stream read drained the socket; the next data brings an
                    // edge. Not so after the peer's FIN: it may have come with this data,
                    // and the end of stream brings no further edge (tokio keeps its
                    // "read closed" readiness for the same reason).
                    let state = self.fd_state(fd);
                    if !state.read_closed {
                        match dir {
                            Dir::Read => state.readable = false,
                            Dir::Write => state.writable = false,
                        }
                    }
                    r
                }
                Outcome::Done(r) => r,
                Outcome::More(_) => unreachable!("handled in the inner loop"),
            };
            self.pending.remove(&ud);
            let state = self.fd_state(fd);
            match dir {
                Dir::Read => state.readers.pop_front(),
                Dir::Write => state.writers.pop_front(),
            };
            self.complete(ud, result, 0);
        }
    }

    /// One non-blocking try at a pending op.
    fn attempt(&mut self, ud: u64) -> Outcome {
        let Some(p) = self.pending.get_mut(&ud) else {
            return Outcome::Done(-libc::ECANCELED);
        };
        // SAFETY: the op is pending (pushed, not completed): every pointer its attempt
        // carries stays valid until its completion — the pusher's contract, the same one
        // the kernel relies on.
        unsafe { p.attempt.run() }
    }

    /// Cancels one op: `ECANCELED` for it if it was still waiting (else nothing: it
    /// completed, and its completion stands).
    fn cancel_now(&mut self, ud: u64) {
        if let Some(p) = self.pending.remove(&ud) {
            let state = self.fd_state(p.attempt.fd);
            let queue = match p.dir {
                Dir::Read => &mut state.readers,
                Dir::Write => &mut state.writers,
            };
            queue.retain(|x| *x != ud);
            self.complete(ud, -libc::ECANCELED, 0);
        }
    }

    fn cancel_all_now(&mut self) {
        let victims: Vec<u64> = self.pending.keys().copied().collect();
        for ud in victims {
            self.cancel_now(ud);
        }
    }

    /// An fd is being closed: drop its registration so a reused number starts clean.
    pub(super) fn forget_fd(&mut self, fd: RawFd) {
        if let Some(state) = self.fds.get_mut(fd as usize) {
            *state = FdState::default();
        }
    }
}

/// Milliseconds `epoll_wait` may block: until `until` (rounded up, so a timer never
/// fires early), or forever.
fn wait_ms(until: Option<Instant>) -> i32 {
    match until {
        None => -1,
        Some(at) => {
            let d = at.saturating_duration_since(Instant::now());
            let ms = d.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}
