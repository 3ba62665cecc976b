//! The epoll engine: the same SQEs, executed in user space with non-blocking syscalls
//! when epoll says their fd is ready, and answered with the same CQEs.
//!
//! This is the readiness-polling baseline the benchmarks compare the ring against, and
//! the fallback where io_uring is refused. It is a fair one — what mio/tokio do:
//! - every fd is registered once, edge-triggered, for reading and writing; no
//!   `epoll_ctl` per operation;
//! - a per-fd readiness cache: an op runs at once when its direction is believed ready
//!   (a new fd is), and waits for the next edge after `EAGAIN`; a short stream read
//!   clears the cache too (with edge triggering, new data brings a new edge), which saves
//!   the `EAGAIN` read most loops pay;
//! - ops on one fd and direction run in submission order.
//!
//! Ops are decoded from the SQE bytes (the kernel's ABI layout); only the opcodes the
//! loop, transports and sockets use are emulated ([`EpollEngine::supports`]). Multishot
//! accept is emulated; provided-buffer rings are not (transports then use single-shot
//! receives). The loop's timer (an `IORING_OP_TIMEOUT`) becomes the `epoll_wait` timeout.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::opcode;
use io_uring::squeue::Entry;
use io_uring::types::Timespec;

use super::{Completion, DriverStats, Wait};
use crate::sys::nonblocking as nb;

const F_MORE: u32 = 1 << 1;
const IOSQE_BUFFER_SELECT: u8 = 1 << 5;
const ACCEPT_MULTISHOT: u16 = 1 << 0;
const RECV_MULTISHOT: u16 = 1 << 1;
const TIMEOUT_UPDATE: u32 = 1 << 1;
const CANCEL_ALL: u32 = 1 << 0;
const CANCEL_FD: u32 = 1 << 1;
const CANCEL_ANY: u32 = 1 << 2;
/// A multishot op yields to others after this many completions in a row.
const MULTISHOT_BATCH: usize = 32;

/// An SQE as the kernel's ABI lays it out (64 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct RawSqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    op_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    file_index: u32,
    addr3: u64,
    pad: u64,
}

const _: () = assert!(std::mem::size_of::<RawSqe>() == 64);
const _: () = assert!(std::mem::size_of::<Entry>() == 64);

/// Which readiness an op waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Read,
    Write,
}

/// What one attempt at an op produced.
enum Attempt {
    /// Finished with this result.
    Done(i32),
    /// Produced a completion and wants to run again (multishot).
    More(i32),
    /// Not ready: wait for the fd's next edge in this direction.
    NotReady,
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
    sqe: RawSqe,
    dir: Dir,
    /// A non-blocking connect is in progress: finish with `SO_ERROR` when writable.
    connecting: bool,
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
    fds: Vec<FdState>,
    pending: IdMap<Pending>,
    /// Pushed this iteration, run at the next `enter` (as the kernel does at submit).
    submitted: Vec<RawSqe>,
    completions: VecDeque<(u64, Completion)>,
    timers: Vec<(u64, Instant)>,
    events: Vec<libc::epoll_event>,
    /// Fds whose multishot op yielded while still ready.
    rerun: Vec<(RawFd, Dir)>,
    /// The last blocking enter returned without `epoll_wait`: what it ran had completed
    /// at once (see `enter`). The next one polls, so other fds' readiness is never starved.
    skipped_wait: bool,
}

impl EpollEngine {
    pub(super) fn new() -> io::Result<Self> {
        Ok(EpollEngine {
            epfd: nb::epoll_create()?,
            fds: Vec::new(),
            pending: IdMap::default(),
            submitted: Vec::new(),
            completions: VecDeque::new(),
            timers: Vec::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 256],
            rerun: Vec::new(),
            skipped_wait: false,
        })
    }

    pub(super) fn epoll_fd(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    /// The opcodes this engine emulates.
    pub(super) fn supports(code: u8) -> bool {
        [
            opcode::Nop::CODE,
            opcode::Read::CODE,
            opcode::Write::CODE,
            opcode::Readv::CODE,
            opcode::Writev::CODE,
            opcode::Close::CODE,
            opcode::Timeout::CODE,
            opcode::TimeoutRemove::CODE,
            opcode::AsyncCancel::CODE,
            opcode::Accept::CODE,
            opcode::Connect::CODE,
            opcode::Send::CODE,
            opcode::Recv::CODE,
            opcode::SendMsg::CODE,
            opcode::RecvMsg::CODE,
            opcode::PollAdd::CODE,
        ]
        .contains(&code)
    }

    /// Queues an SQE for the next `enter`. Never full.
    ///
    /// # Safety
    ///
    /// The SQE's memory must outlive its last completion.
    pub(super) unsafe fn push(&mut self, sqe: &Entry) -> bool {
        // SAFETY: Entry is #[repr(C)] around the kernel's io_uring_sqe, 64 bytes, which
        // RawSqe mirrors field for field (both sizes are asserted above).
        let raw: RawSqe = unsafe { std::mem::transmute_copy(sqe) };
        self.submitted.push(raw);
        true
    }

    /// Runs what was pushed, then waits for readiness (per `how`) and runs what became
    /// ready; completions are queued for [`EpollEngine::reap`].
    pub(super) fn enter(
        &mut self,
        how: Wait,
        bound: Option<Duration>,
        stats: &mut DriverStats,
    ) -> io::Result<()> {
        let submitted = std::mem::take(&mut self.submitted);
        let had_submissions = !submitted.is_empty();
        for sqe in &submitted {
            self.start(*sqe);
        }
        self.submitted = submitted;
        self.submitted.clear();
        for (fd, dir) in std::mem::take(&mut self.rerun) {
            self.run_waiters(fd, dir);
        }
        self.expire_timers();
        let timeout_ms = match how {
            Wait::IfSubmitting if !had_submissions => return Ok(()),
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
            Wait::Block => self.wait_ms(bound),
        };
        self.skipped_wait = false;
        stats.enters += 1;
        let n = nb::epoll_wait(self.epfd.as_raw_fd(), &mut self.events, timeout_ms)?;
        for i in 0..n {
            let ev = self.events[i];
            let fd = ev.u64 as RawFd;
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
        self.expire_timers();
        Ok(())
    }

    /// Milliseconds `epoll_wait` may block: until the nearest timer (rounded up, so it
    /// never fires early), or the teardown bound, or forever.
    fn wait_ms(&self, bound: Option<Duration>) -> i32 {
        let now = Instant::now();
        let nearest = self.timers.iter().map(|(_, at)| *at).min();
        let until = match (nearest.map(|at| at.saturating_duration_since(now)), bound) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match until {
            None => -1,
            Some(d) => {
                let ms = d.as_nanos().div_ceil(1_000_000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        }
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

    /// Begins an op: control ops finish at once; I/O ops run now if their fd is ready and
    /// nothing is queued before them, else wait.
    fn start(&mut self, sqe: RawSqe) {
        let ud = sqe.user_data;
        match sqe.opcode {
            c if c == opcode::Nop::CODE => self.complete(ud, 0, 0),
            c if c == opcode::Timeout::CODE => {
                // SAFETY: the loop keeps the timespec alive until the op is submitted,
                // which is now.
                let ts = unsafe { &*(sqe.addr as *const Timespec) };
                let at = Instant::now() + timespec_duration(ts);
                self.timers.push((ud, at));
            }
            c if c == opcode::TimeoutRemove::CODE => self.timeout_remove(sqe),
            c if c == opcode::AsyncCancel::CODE => self.cancel(sqe),
            c if c == opcode::Close::CODE => {
                nb::epoll_del(self.epfd.as_raw_fd(), sqe.fd);
                self.forget_fd(sqe.fd);
                let r = nb::close(sqe.fd);
                self.complete(ud, r, 0);
            }
            c => {
                let dir = match c {
                    _ if c == opcode::Write::CODE
                        || c == opcode::Writev::CODE
                        || c == opcode::Send::CODE
                        || c == opcode::SendMsg::CODE
                        || c == opcode::Connect::CODE =>
                    {
                        Dir::Write
                    }
                    _ if Self::supports(c) => Dir::Read,
                    _ => {
                        self.complete(ud, -libc::EINVAL, 0);
                        return;
                    }
                };
                if sqe.flags & IOSQE_BUFFER_SELECT != 0 {
                    // No provided-buffer rings here (the loop never asks for them).
                    self.complete(ud, -libc::EINVAL, 0);
                    return;
                }
                self.ensure_registered(sqe.fd);
                self.pending.insert(
                    ud,
                    Pending {
                        sqe,
                        dir,
                        connecting: false,
                    },
                );
                let state = self.fd_state(sqe.fd);
                let queue = match dir {
                    Dir::Read => &mut state.readers,
                    Dir::Write => &mut state.writers,
                };
                queue.push_back(ud);
                if queue.len() == 1 {
                    self.run_waiters(sqe.fd, dir);
                }
            }
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
                let attempt = self.attempt(ud);
                match attempt {
                    Attempt::More(r) if produced < MULTISHOT_BATCH => {
                        produced += 1;
                        self.complete(ud, r, F_MORE);
                    }
                    Attempt::More(r) => {
                        // Let other fds run; this op stays first in line and goes on at
                        // the next enter (no new edge would come for what is queued).
                        self.complete(ud, r, F_MORE);
                        self.rerun.push((fd, dir));
                        break None;
                    }
                    other => break Some(other),
                }
            };
            match outcome {
                None => return,
                Some(Attempt::NotReady) => {
                    let state = self.fd_state(fd);
                    match dir {
                        Dir::Read => state.readable = false,
                        Dir::Write => state.writable = false,
                    }
                    return;
                }
                Some(Attempt::Done(r)) => {
                    self.pending.remove(&ud);
                    let state = self.fd_state(fd);
                    match dir {
                        Dir::Read => state.readers.pop_front(),
                        Dir::Write => state.writers.pop_front(),
                    };
                    self.complete(ud, r, 0);
                }
                Some(Attempt::More(_)) => unreachable!("handled in the inner loop"),
            }
        }
    }

    /// One non-blocking try at a pending op.
    fn attempt(&mut self, ud: u64) -> Attempt {
        let Some(p) = self.pending.get_mut(&ud) else {
            return Attempt::Done(-libc::ECANCELED);
        };
        let s = p.sqe;
        let fd = s.fd;
        let code = s.opcode;
        // SAFETY: every pointer in the SQE stays valid until the op's completion — the
        // pusher's contract, the same one the kernel relies on.
        let r = unsafe {
            if code == opcode::Recv::CODE {
                let r = nb::recv(fd, s.addr as *mut u8, s.len as usize, s.op_flags as i32);
                if r > 0 && (r as u32) < s.len {
                    // A short stream read drained the socket; the next data brings an
                    // edge. Not so after the peer's FIN: it may have come with this data,
                    // and the end of stream brings no further edge (tokio keeps its
                    // "read closed" readiness for the same reason).
                    let state = self.fd_state(fd);
                    if !state.read_closed {
                        state.readable = false;
                    }
                    return Attempt::Done(r);
                }
                r
            } else if code == opcode::Send::CODE {
                nb::send(fd, s.addr as *const u8, s.len as usize, s.op_flags as i32)
            } else if code == opcode::Read::CODE {
                nb::read(fd, s.addr as *mut u8, s.len as usize, s.off)
            } else if code == opcode::Write::CODE {
                nb::write(fd, s.addr as *const u8, s.len as usize, s.off)
            } else if code == opcode::Readv::CODE {
                nb::readv(fd, s.addr as *const libc::iovec, s.len as i32, s.off)
            } else if code == opcode::Writev::CODE {
                nb::writev(fd, s.addr as *const libc::iovec, s.len as i32, s.off)
            } else if code == opcode::RecvMsg::CODE {
                nb::recvmsg(fd, s.addr as *mut libc::msghdr, s.op_flags as i32)
            } else if code == opcode::SendMsg::CODE {
                nb::sendmsg(fd, s.addr as *const libc::msghdr, s.op_flags as i32)
            } else if code == opcode::Accept::CODE {
                let flags = s.op_flags as i32 | libc::SOCK_CLOEXEC;
                let r = nb::accept4(
                    fd,
                    s.addr as *mut libc::sockaddr,
                    s.off as *mut libc::socklen_t,
                    flags,
                );
                if r >= 0 && s.ioprio & ACCEPT_MULTISHOT != 0 {
                    return Attempt::More(r);
                }
                r
            } else if code == opcode::Connect::CODE {
                if p.connecting {
                    nb::so_error(fd)
                } else {
                    let r = nb::connect(fd, s.addr as *const libc::sockaddr, s.off as u32);
                    if r == -libc::EINPROGRESS {
                        p.connecting = true;
                        return Attempt::NotReady;
                    }
                    r
                }
            } else if code == opcode::PollAdd::CODE {
                // Ask poll(2) itself which of the requested events the fd has now; none
                // means wait for the next edge (any edge wakes a poll of either kind).
                let mask = (s.op_flags & 0xFFFF) as i16;
                match nb::poll_now(fd, mask) {
                    0 => return Attempt::NotReady,
                    r => r,
                }
            } else {
                -libc::EINVAL
            }
        };
        if r == -libc::EAGAIN {
            return Attempt::NotReady;
        }
        if code == opcode::Recv::CODE && s.ioprio & RECV_MULTISHOT != 0 {
            // Not reachable: multishot receives need a buffer ring, refused above.
            return Attempt::Done(-libc::EINVAL);
        }
        Attempt::Done(r)
    }

    fn timeout_remove(&mut self, sqe: RawSqe) {
        let target = sqe.addr;
        let found = self.timers.iter().position(|(ud, _)| *ud == target);
        if sqe.op_flags & TIMEOUT_UPDATE != 0 {
            match found {
                Some(i) => {
                    // SAFETY: the loop keeps the timespec alive until submission (now).
                    let ts = unsafe { &*(sqe.off as *const Timespec) };
                    self.timers[i].1 = Instant::now() + timespec_duration(ts);
                    self.complete(sqe.user_data, 0, 0);
                }
                None => self.complete(sqe.user_data, -libc::ENOENT, 0),
            }
        } else {
            match found {
                Some(i) => {
                    let (ud, _) = self.timers.swap_remove(i);
                    self.complete(ud, -libc::ECANCELED, 0);
                    self.complete(sqe.user_data, 0, 0);
                }
                None => self.complete(sqe.user_data, -libc::ENOENT, 0),
            }
        }
    }

    fn cancel(&mut self, sqe: RawSqe) {
        let flags = sqe.op_flags;
        let mut victims: Vec<u64> = if flags & CANCEL_ANY != 0 {
            self.pending
                .keys()
                .copied()
                .chain(self.timers.iter().map(|(ud, _)| *ud))
                .collect()
        } else if flags & CANCEL_FD != 0 {
            self.pending
                .iter()
                .filter(|(_, p)| p.sqe.fd == sqe.fd)
                .map(|(ud, _)| *ud)
                .collect()
        } else {
            vec![sqe.addr]
        };
        if flags & (CANCEL_ALL | CANCEL_ANY | CANCEL_FD) == 0 {
            victims.truncate(1);
        }
        let mut cancelled = 0;
        for ud in victims {
            if let Some(p) = self.pending.remove(&ud) {
                let state = self.fd_state(p.sqe.fd);
                let queue = match p.dir {
                    Dir::Read => &mut state.readers,
                    Dir::Write => &mut state.writers,
                };
                queue.retain(|x| *x != ud);
                self.complete(ud, -libc::ECANCELED, 0);
                cancelled += 1;
            } else if let Some(i) = self.timers.iter().position(|(t, _)| *t == ud) {
                self.timers.swap_remove(i);
                self.complete(ud, -libc::ECANCELED, 0);
                cancelled += 1;
            }
        }
        let result = if cancelled == 0 {
            -libc::ENOENT
        } else if flags & (CANCEL_ALL | CANCEL_ANY) != 0 {
            cancelled
        } else {
            0
        };
        self.complete(sqe.user_data, result, 0);
    }

    fn expire_timers(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.timers.len() {
            if self.timers[i].1 <= now {
                let (ud, _) = self.timers.swap_remove(i);
                self.complete(ud, -libc::ETIME, 0);
            } else {
                i += 1;
            }
        }
    }

    /// An fd is being closed: drop its registration so a reused number starts clean.
    pub(super) fn forget_fd(&mut self, fd: RawFd) {
        if let Some(state) = self.fds.get_mut(fd as usize) {
            *state = FdState::default();
        }
    }
}

fn timespec_duration(ts: &Timespec) -> Duration {
    // SAFETY: Timespec is #[repr(C)] { tv_sec: i64, tv_nsec: i64 } (the kernel's
    // __kernel_timespec); read it as such.
    let raw: [i64; 2] = unsafe { std::mem::transmute_copy(ts) };
    Duration::new(raw[0].max(0) as u64, raw[1].clamp(0, 999_999_999) as u32)
}
