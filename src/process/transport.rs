//! [`SubprocessTransport`]: a running child, its pipe transports, and the watch on its
//! pidfd that learns (and reaps) its end.
//!
//! The exit watch is one op in the ring: `IORING_OP_WAITID` on the pidfd where the kernel
//! has it (6.7+), which both waits and reaps; elsewhere a `POLL_ADD` on the pidfd (readable
//! once the child ended) followed by `waitid(P_PIDFD, WNOHANG)`. A kernel that rejects
//! `WAITID` at run time falls back to the poll.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;
use std::task::Waker;

use io_uring::opcode;

use super::SubprocessProtocol;
use crate::driver::{Completion, OpHandler};
use crate::event_loop::{EventLoop, ExceptionContext, Phase, Service};
use crate::fd::SharedFd;
use crate::op::{self, InFlight};
use crate::sys::process::{self as sys, Ended};
use crate::transport::{PipeProtocol, ReadPipeTransport, WritePipeTransport};

const TAG_WAITID: u32 = 0;
const TAG_POLL: u32 = 1;

/// asyncio's return code when the child was reaped by someone else and its status is lost.
const UNKNOWN_RETURNCODE: i32 = 255;

/// The exit watch in flight.
enum ExitOp {
    Idle,
    WaitId(InFlight<op::WaitId>),
    Poll(InFlight<op::PollAdd>),
}

struct State {
    returncode: Option<i32>,
    closed: bool,
    /// Pipes (by fd 0/1/2) whose `pipe_connection_lost` has not been called yet.
    open_pipes: [bool; 3],
    exit_op: ExitOp,
    lost_scheduled: bool,
    exit_waiters: Vec<Waker>,
}

pub(crate) struct SubprocessInner {
    event_loop: EventLoop,
    pid: u32,
    program: String,
    /// Names the child from spawn until it is reaped.
    pidfd: RefCell<Option<SharedFd>>,
    protocol: RefCell<Option<Rc<RefCell<dyn SubprocessProtocol>>>>,
    stdin: RefCell<Option<WritePipeTransport>>,
    stdout: RefCell<Option<ReadPipeTransport>>,
    stderr: RefCell<Option<ReadPipeTransport>>,
    st: RefCell<State>,
    /// Use the poll fallback even where `WAITID` exists (tests).
    force_poll: Cell<bool>,
}

/// A child process started by [`EventLoop::subprocess_exec`] or
/// [`EventLoop::subprocess_shell`], with its pipes. Cheap to clone.
///
/// The child is reaped by the loop as soon as it ends, whether or not anyone waits for it.
/// [`SubprocessTransport::close`] kills a child that still runs; a child still running when
/// its loop closes is killed and reaped then.
#[derive(Clone)]
pub struct SubprocessTransport {
    pub(crate) inner: Rc<SubprocessInner>,
}

/// One of a child's pipe transports ([`SubprocessTransport::get_pipe_transport`]).
#[derive(Clone, Debug)]
pub enum PipeTransport {
    /// The child's stdin (fd 0).
    Write(WritePipeTransport),
    /// The child's stdout (fd 1) or stderr (fd 2).
    Read(ReadPipeTransport),
}

/// The pipes a new child has, parent side.
pub(crate) struct ParentPipes {
    pub(crate) stdin: Option<SharedFd>,
    pub(crate) stdout: Option<SharedFd>,
    pub(crate) stderr: Option<SharedFd>,
}

impl SubprocessTransport {
    /// Wires up a just-spawned child: starts the pipe transports, calls
    /// `connection_made`, then starts the exit watch.
    pub(crate) fn start(
        event_loop: &EventLoop,
        pid: u32,
        program: String,
        pidfd: SharedFd,
        pipes: ParentPipes,
        protocol: Rc<RefCell<dyn SubprocessProtocol>>,
        force_poll: bool,
    ) -> SubprocessTransport {
        let open_pipes = [
            pipes.stdin.is_some(),
            pipes.stdout.is_some(),
            pipes.stderr.is_some(),
        ];
        let inner = Rc::new(SubprocessInner {
            event_loop: event_loop.clone(),
            pid,
            program,
            pidfd: RefCell::new(Some(pidfd)),
            protocol: RefCell::new(Some(protocol.clone())),
            stdin: RefCell::new(None),
            stdout: RefCell::new(None),
            stderr: RefCell::new(None),
            st: RefCell::new(State {
                returncode: None,
                closed: false,
                open_pipes,
                exit_op: ExitOp::Idle,
                lost_scheduled: false,
                exit_waiters: Vec::new(),
            }),
            force_poll: Cell::new(force_poll),
        });
        let transport = SubprocessTransport {
            inner: inner.clone(),
        };
        event_loop.service::<LoopProcesses>().register(&inner);
        let link = |fd: i32| -> Rc<dyn PipeProtocol> {
            Rc::new(PipeLink {
                inner: inner.clone(),
                fd,
            })
        };
        if let Some(fd) = pipes.stdin {
            *inner.stdin.borrow_mut() = Some(WritePipeTransport::start(event_loop, fd, link(0)));
        }
        if let Some(fd) = pipes.stdout {
            *inner.stdout.borrow_mut() = Some(ReadPipeTransport::start(event_loop, fd, link(1)));
        }
        if let Some(fd) = pipes.stderr {
            *inner.stderr.borrow_mut() = Some(ReadPipeTransport::start(event_loop, fd, link(2)));
        }
        // The pipes' first completions reach the loop only after this returns, so
        // connection_made (with every pipe transport in place) comes first.
        protocol.borrow_mut().connection_made(&transport);
        SubprocessInner::watch_exit(&inner);
        transport
    }

    /// The child's process id.
    pub fn get_pid(&self) -> u32 {
        self.inner.pid
    }

    /// `None` while the child runs; then its exit code, or minus the signal that killed
    /// it (`-9` for `SIGKILL`), as asyncio.
    pub fn get_returncode(&self) -> Option<i32> {
        self.inner.st.borrow().returncode
    }

    /// The transport of pipe `fd` (0 stdin, 1 stdout, 2 stderr), if it is piped.
    pub fn get_pipe_transport(&self, fd: i32) -> Option<PipeTransport> {
        match fd {
            0 => self.stdin().map(PipeTransport::Write),
            1 => self.stdout().map(PipeTransport::Read),
            2 => self.stderr().map(PipeTransport::Read),
            _ => None,
        }
    }

    /// The child's stdin pipe, if piped.
    pub fn stdin(&self) -> Option<WritePipeTransport> {
        self.inner.stdin.borrow().clone()
    }

    /// The child's stdout pipe, if piped.
    pub fn stdout(&self) -> Option<ReadPipeTransport> {
        self.inner.stdout.borrow().clone()
    }

    /// The child's stderr pipe, if piped (not when stderr goes to stdout).
    pub fn stderr(&self) -> Option<ReadPipeTransport> {
        self.inner.stderr.borrow().clone()
    }

    /// Sends signal `sig` to the child (through its pidfd, so never to a recycled pid).
    /// An error of kind `NotFound` once the child has ended.
    pub fn send_signal(&self, sig: i32) -> io::Result<()> {
        self.inner.send_signal(sig)
    }

    /// Sends `SIGTERM`.
    pub fn terminate(&self) -> io::Result<()> {
        self.send_signal(libc::SIGTERM)
    }

    /// Sends `SIGKILL`.
    pub fn kill(&self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Closes every pipe and kills the child if it still runs (a finished child is left
    /// alone). `connection_lost` follows once the child was reaped and the pipes closed.
    /// Idempotent.
    pub fn close(&self) {
        SubprocessInner::close(&self.inner);
    }

    /// Whether [`SubprocessTransport::close`] was called.
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().closed
    }

    /// The loop this transport runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.inner.event_loop.clone()
    }

    /// Registers `waker` to be woken when the child's return code is known; returns it
    /// at once if it already is.
    pub(crate) fn poll_returncode(&self, waker: &Waker) -> Option<i32> {
        let mut st = self.inner.st.borrow_mut();
        if st.returncode.is_none() && !st.exit_waiters.iter().any(|w| w.will_wake(waker)) {
            st.exit_waiters.push(waker.clone());
        }
        st.returncode
    }
}

impl fmt::Debug for SubprocessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("SubprocessTransport")
            .field("pid", &self.inner.pid)
            .field("program", &self.inner.program)
            .field("returncode", &st.returncode)
            .field("closed", &st.closed)
            .finish()
    }
}

/// What a pipe transport reports, forwarded to the subprocess protocol with its fd.
struct PipeLink {
    inner: Rc<SubprocessInner>,
    fd: i32,
}

impl PipeProtocol for PipeLink {
    fn data_received(&self, data: &[u8]) {
        if let Some(p) = self.inner.protocol() {
            p.borrow_mut().pipe_data_received(self.fd, data);
        }
    }

    fn pause_writing(&self) {
        self.inner
            .call_protocol(|p: &mut dyn SubprocessProtocol| p.pause_writing());
    }

    fn resume_writing(&self) {
        self.inner
            .call_protocol(|p: &mut dyn SubprocessProtocol| p.resume_writing());
    }

    fn connection_lost(&self, exc: Option<io::Error>) {
        if let Some(p) = self.inner.protocol() {
            p.borrow_mut().pipe_connection_lost(self.fd, exc);
        }
        if let Ok(i) = usize::try_from(self.fd) {
            self.inner.st.borrow_mut().open_pipes[i] = false;
        }
        SubprocessInner::try_finish(&self.inner);
    }
}

impl SubprocessInner {
    fn protocol(&self) -> Option<Rc<RefCell<dyn SubprocessProtocol>>> {
        self.protocol.borrow().clone()
    }

    /// Calls the protocol now, or through `call_soon` if it is busy in another callback
    /// (a `write` from inside a callback may pause writing).
    fn call_protocol(self: &Rc<Self>, f: impl FnOnce(&mut dyn SubprocessProtocol) + 'static) {
        let Some(p) = self.protocol() else {
            return;
        };
        let busy = match p.try_borrow_mut() {
            Ok(mut guard) => {
                f(&mut *guard);
                return;
            }
            Err(_) => true,
        };
        if busy {
            {
                self.event_loop.call_soon(move || {
                    if let Ok(mut guard) = p.try_borrow_mut() {
                        f(&mut *guard);
                    }
                });
            }
        }
    }

    fn send_signal(&self, sig: i32) -> io::Result<()> {
        let gone = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "send signal {sig} to {} (pid {}): the process has already exited",
                    self.program, self.pid
                ),
            )
        };
        if self.st.borrow().returncode.is_some() {
            return Err(gone());
        }
        let pidfd = self.pidfd.borrow().clone().ok_or_else(gone)?;
        sys::pidfd_send_signal(pidfd.raw(), sig).map_err(|e| match e.raw_os_error() {
            Some(libc::ESRCH) => gone(),
            _ => io::Error::new(
                e.kind(),
                format!(
                    "send signal {sig} to {} (pid {}): {e}",
                    self.program, self.pid
                ),
            ),
        })
    }

    fn close(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
        }
        let stdin = self.stdin.borrow().clone();
        if let Some(p) = stdin {
            p.close();
        }
        for pipe in [&self.stdout, &self.stderr] {
            let p = pipe.borrow().clone();
            if let Some(p) = p {
                p.close();
            }
        }
        if self.st.borrow().returncode.is_none() {
            // Killing a child that ended but is not reaped yet does nothing; its real
            // status still arrives through the exit watch.
            let _ = self.send_signal(libc::SIGKILL);
        }
    }

    // ----- the exit watch -----

    fn watch_exit(self: &Rc<Self>) {
        let use_waitid =
            !self.force_poll.get() && self.event_loop.driver().supports(opcode::WaitId::CODE);
        if use_waitid {
            self.arm_waitid();
        } else {
            self.arm_poll();
        }
    }

    fn arm_waitid(self: &Rc<Self>) {
        let Some(pidfd) = self.pidfd.borrow().clone() else {
            return;
        };
        let driver = &self.event_loop.driver();
        match driver.submit(op::WaitId::new(pidfd), self.clone(), TAG_WAITID) {
            Ok(wait) => self.st.borrow_mut().exit_op = ExitOp::WaitId(wait),
            Err((e, _)) => self.watch_failed(e),
        }
    }

    fn arm_poll(self: &Rc<Self>) {
        let Some(pidfd) = self.pidfd.borrow().clone() else {
            return;
        };
        let poll = op::PollAdd::new(pidfd, libc::POLLIN as u32);
        match self
            .event_loop
            .driver()
            .submit(poll, self.clone(), TAG_POLL)
        {
            Ok(poll) => self.st.borrow_mut().exit_op = ExitOp::Poll(poll),
            Err((e, _)) => self.watch_failed(e),
        }
    }

    fn on_waitid(self: &Rc<Self>, c: Completion) {
        let op = std::mem::replace(&mut self.st.borrow_mut().exit_op, ExitOp::Idle);
        let ExitOp::WaitId(wait) = op else {
            return;
        };
        match wait.complete(c) {
            Ok(Some(ended)) => self.exited(ended),
            // Reported done without a child: look again the portable way.
            Ok(None) => self.check_now(),
            Err(e) => match e.raw_os_error() {
                Some(libc::ECANCELED) => {}
                Some(libc::ECHILD) => self.reaped_elsewhere(),
                Some(libc::EINTR) | Some(libc::EAGAIN) => self.arm_waitid(),
                // The kernel has the opcode but refuses this use of it: poll instead.
                _ => {
                    self.force_poll.set(true);
                    self.check_now();
                }
            },
        }
    }

    fn on_poll(self: &Rc<Self>, c: Completion) {
        let op = std::mem::replace(&mut self.st.borrow_mut().exit_op, ExitOp::Idle);
        let ExitOp::Poll(poll) = op else {
            return;
        };
        match poll.complete(c) {
            Ok(_) => self.check_now(),
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => self.arm_poll(),
            Err(e) => self.watch_failed(e),
        }
    }

    /// Reaps the child if it ended, else goes back to polling.
    fn check_now(self: &Rc<Self>) {
        let Some(pidfd) = self.pidfd.borrow().clone() else {
            return;
        };
        match sys::waitid_pidfd_nohang(pidfd.raw()) {
            Ok(Some(ended)) => self.exited(ended),
            Ok(None) => self.arm_poll(),
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => self.reaped_elsewhere(),
            Err(e) => self.watch_failed(e),
        }
    }

    fn watch_failed(self: &Rc<Self>, e: io::Error) {
        if self.event_loop.is_closed() {
            return;
        }
        self.event_loop.call_exception_handler(ExceptionContext {
            message: format!(
                "cannot watch {} (pid {}) for its exit; it is killed",
                self.program, self.pid
            ),
            error: Some(io::Error::new(e.kind(), e.to_string()).into()),
        });
        let ended = self.kill_and_reap();
        self.exited(ended.unwrap_or(Ended::Exited(UNKNOWN_RETURNCODE)));
    }

    fn reaped_elsewhere(self: &Rc<Self>) {
        self.event_loop.call_exception_handler(ExceptionContext {
            message: format!(
                "{} (pid {}) was reaped by someone else (SIGCHLD ignored, or a waitpid(-1) \
                 elsewhere); its return code is unknown and reported as {UNKNOWN_RETURNCODE}",
                self.program, self.pid
            ),
            error: None,
        });
        self.exited(Ended::Exited(UNKNOWN_RETURNCODE));
    }

    fn exited(self: &Rc<Self>, ended: Ended) {
        let returncode = match ended {
            Ended::Exited(code) => code,
            Ended::Signaled(sig) => -sig,
        };
        let waiters = {
            let mut st = self.st.borrow_mut();
            if st.returncode.is_some() {
                return;
            }
            st.returncode = Some(returncode);
            std::mem::take(&mut st.exit_waiters)
        };
        // Reaped: the pidfd has nothing left to name.
        drop(self.pidfd.borrow_mut().take());
        for w in waiters {
            w.wake();
        }
        let this = self.clone();
        self.event_loop.call_soon(move || {
            if let Some(p) = this.protocol() {
                p.borrow_mut().process_exited();
            }
            Self::try_finish(&this);
        });
    }

    /// `connection_lost` once the child was reaped and every pipe is closed.
    fn try_finish(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.lost_scheduled || st.returncode.is_none() || st.open_pipes.iter().any(|o| *o) {
                return;
            }
            st.lost_scheduled = true;
        }
        let this = self.clone();
        self.event_loop.call_soon(move || {
            let protocol = this.protocol.borrow_mut().take();
            if let Some(p) = protocol {
                p.borrow_mut().connection_lost(None);
            }
        });
    }

    /// SIGKILL, then a bounded blocking reap (a killed child ends within milliseconds).
    fn kill_and_reap(&self) -> Option<Ended> {
        let pidfd = self.pidfd.borrow_mut().take()?;
        let _ = sys::pidfd_send_signal(pidfd.raw(), libc::SIGKILL);
        for _ in 0..1000 {
            match sys::waitid_pidfd_nohang(pidfd.raw()) {
                Ok(Some(ended)) => return Some(ended),
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(1)),
                Err(_) => return None,
            }
        }
        None
    }

    /// Loop teardown: kill and reap a child that still runs, break the reference cycles
    /// between this object, its pipes and its protocol. No callbacks.
    pub(crate) fn shutdown(&self) {
        if self.st.borrow().returncode.is_none()
            && let Some(ended) = self.kill_and_reap()
        {
            self.st.borrow_mut().returncode = Some(match ended {
                Ended::Exited(code) => code,
                Ended::Signaled(sig) => -sig,
            });
        }
        let waiters = std::mem::take(&mut self.st.borrow_mut().exit_waiters);
        for w in waiters {
            w.wake();
        }
        self.protocol.borrow_mut().take();
        if let Some(p) = self.stdin.borrow_mut().take() {
            p.detach();
        }
        for pipe in [&self.stdout, &self.stderr] {
            if let Some(p) = pipe.borrow_mut().take() {
                p.detach();
            }
        }
    }
}

impl Drop for SubprocessInner {
    fn drop(&mut self) {
        // Only reachable with the child unreaped when its loop went away without close:
        // never leave a zombie behind.
        if self.st.borrow().returncode.is_none() {
            let _ = self.kill_and_reap();
        }
    }
}

impl OpHandler for SubprocessInner {
    fn on_completion(self: Rc<Self>, tag: u32, completion: Completion) {
        match tag {
            TAG_WAITID => self.on_waitid(completion),
            TAG_POLL => self.on_poll(completion),
            _ => {}
        }
    }
}

/// The children of one loop (a loop service), so that closing the loop kills and reaps
/// them.
#[derive(Default)]
pub(crate) struct LoopProcesses {
    live: RefCell<Vec<std::rc::Weak<SubprocessInner>>>,
}

impl LoopProcesses {
    fn register(&self, inner: &Rc<SubprocessInner>) {
        let mut live = self.live.borrow_mut();
        live.retain(|w| w.strong_count() > 0);
        live.push(Rc::downgrade(inner));
    }
}

impl Service for LoopProcesses {
    fn phase(&self) -> Phase {
        Phase::Processes
    }

    /// Kills and reaps the children still running.
    fn close(&self) {
        let live = std::mem::take(&mut *self.live.borrow_mut());
        for inner in live.iter().filter_map(|w| w.upgrade()) {
            inner.shutdown();
        }
    }
}
