//! The pipe configurations of the transport core: a read end ([`ReadPipeIo`]) and a
//! write end ([`WritePipeIo`]) of a **blocking** pipe, driven by `READ`/`WRITE` ops at
//! the current position, and their [`Sink`] ([`PipeSink`], a [`PipeProtocol`]).
//!
//! io_uring answers `EAGAIN` for a read on an `O_NONBLOCK` pipe instead of waiting; on a
//! blocking one it parks the op on the pipe's wait queue (no worker thread). The epoll
//! engine waits for readiness and then reads, the same way for both.
//!
//! The write end keeps a one-shot `POLLERR` poll (the "watch", tag [`TAG_OTHER`]) in the
//! ring, so the reader going away ends the transport even when nothing is being written.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use bytes::Bytes;

use super::core::{Io, Recv, Sink, TAG_OTHER, TAG_RECV, TAG_SEND};
use super::port::Port;
use crate::buf::{IoBuf, Slice};
use crate::driver::{Completion, OpHandler};
use crate::event_loop::Flush;
use crate::fd::SharedFd;
use crate::op::{self, CURRENT_POSITION, InFlight, OpKind};

/// Bytes asked for per read (the default pipe capacity).
const READ_SIZE: usize = 64 * 1024;

/// Who a pipe transport reports to (the subprocess transport, per pipe).
pub(crate) trait PipeProtocol: 'static {
    /// Bytes arrived on a read pipe.
    fn data_received(&self, data: &[u8]);
    /// The write buffer went above the high-water mark.
    fn pause_writing(&self);
    /// The write buffer drained to the low-water mark.
    fn resume_writing(&self);
    /// The pipe is done (once, last).
    fn connection_lost(&self, exc: Option<io::Error>);
}

/// What both ends share: the loop, the fd and its number.
struct PipeEnd {
    port: Port,
    raw_fd: i32,
    fd: RefCell<Option<SharedFd>>,
}

impl PipeEnd {
    fn new(port: Port, fd: SharedFd) -> PipeEnd {
        PipeEnd {
            port,
            raw_fd: fd.raw(),
            fd: RefCell::new(Some(fd)),
        }
    }

    fn fd(&self) -> Option<SharedFd> {
        self.fd.borrow().clone()
    }

    fn report(&self, doing: &str, err: &io::Error) {
        self.port.report(
            format!(
                "fatal error on pipe transport (fd {}) while {doing}",
                self.raw_fd
            ),
            err,
        );
    }

    fn closed_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("write on a closed pipe transport (fd {})", self.raw_fd),
        )
    }
}

/// Forwards the loop services every configuration needs to its [`PipeEnd`].
macro_rules! pipe_services {
    () => {
        fn schedule_flush(&self, flush: Rc<dyn Flush>) {
            self.end.port.schedule_flush(flush);
        }

        fn call_soon(&self, f: Box<dyn FnOnce()>) {
            self.end.port.call_soon(f);
        }

        fn report(&self, doing: &str, err: &io::Error) {
            self.end.report(doing, err);
        }

        fn closed_error(&self) -> io::Error {
            self.end.closed_error()
        }
    };
}

// ----- the read end -----

/// The read end of a pipe: one read in flight into an owned buffer, re-armed (into a
/// second buffer) before the bytes are delivered.
pub(crate) struct ReadPipeIo {
    end: PipeEnd,
    read: RefCell<Option<InFlight<op::Read<Vec<u8>>>>>,
    spare: RefCell<Option<Vec<u8>>>,
}

impl ReadPipeIo {
    pub(crate) fn new(port: Port, fd: SharedFd) -> ReadPipeIo {
        ReadPipeIo {
            end: PipeEnd::new(port, fd),
            read: RefCell::new(None),
            spare: RefCell::new(None),
        }
    }

    pub(crate) fn raw_fd(&self) -> i32 {
        self.end.raw_fd
    }
}

impl Io for ReadPipeIo {
    const REARM_FIRST: bool = true;

    fn arm_recv(&self, handler: Rc<dyn OpHandler>, _multishot: bool) -> io::Result<Option<bool>> {
        let Some(fd) = self.end.fd() else {
            return Ok(None);
        };
        let buf = self
            .spare
            .borrow_mut()
            .take()
            .unwrap_or_else(|| Vec::with_capacity(READ_SIZE));
        let read = op::Read::new(fd, buf, CURRENT_POSITION);
        let read = self
            .end
            .port
            .driver()
            .submit(read, handler, TAG_RECV)
            .map_err(|(e, _)| e)?;
        *self.read.borrow_mut() = Some(read);
        Ok(Some(false))
    }

    fn complete_recv<R>(&self, c: Completion, f: impl FnOnce(Recv<'_>) -> R) -> R {
        let Some(read) = self.read.borrow_mut().take() else {
            return f(Recv::empty(&c, false));
        };
        let read = read.finish();
        if c.result <= 0 {
            let (_, buf) = read.complete(Ok(0));
            *self.spare.borrow_mut() = Some(buf);
            return f(Recv::empty(&c, false));
        }
        let (_, mut buf) = read.complete(Ok(c.result as u32));
        let full = buf.bytes_init() == buf.capacity();
        let out = f(Recv::Data { bytes: &buf, full });
        buf.clear();
        let mut spare = self.spare.borrow_mut();
        if spare.is_none() {
            *spare = Some(buf);
        }
        out
    }

    fn cancel_recv(&self) {
        if let Some(read) = &*self.read.borrow() {
            read.cancel();
        }
    }

    fn send(&self, _: Rc<dyn OpHandler>, _: Slice<Bytes>, _: bool) -> io::Result<bool> {
        // Never called: a read pipe has no write API, so its core has nothing to send.
        Ok(false)
    }

    fn complete_send(&self, _: Completion) -> Option<(io::Result<usize>, Slice<Bytes>)> {
        None
    }

    fn cancel_all(&self) {
        self.cancel_recv();
    }

    fn take_fd(&self) -> Option<SharedFd> {
        self.spare.borrow_mut().take();
        self.end.fd.borrow_mut().take()
    }

    pipe_services!();
}

// ----- the write end -----

/// The write end of a pipe: one `WRITE` in flight, and the `POLLERR` watch.
pub(crate) struct WritePipeIo {
    end: PipeEnd,
    write: RefCell<Option<InFlight<op::Write<Slice<Bytes>>>>>,
    watch: RefCell<Option<InFlight<op::PollAdd>>>,
    /// Whether this thread blocks `SIGPIPE` because of ringloop (see `pipe.rs`): each
    /// `EPIPE` then discards the pending instance.
    discard_sigpipe: bool,
}

impl WritePipeIo {
    pub(crate) fn new(port: Port, fd: SharedFd, discard_sigpipe: bool) -> WritePipeIo {
        WritePipeIo {
            end: PipeEnd::new(port, fd),
            write: RefCell::new(None),
            watch: RefCell::new(None),
            discard_sigpipe,
        }
    }

    pub(crate) fn raw_fd(&self) -> i32 {
        self.end.raw_fd
    }

    /// Arms the one-shot `POLLERR` poll on the write end; its completion (tag
    /// [`TAG_OTHER`]) says the reader is gone. Without it a vanished reader still shows
    /// as `EPIPE` on the next write, so a refused submit is not an error.
    pub(crate) fn arm_watch(&self, handler: Rc<dyn OpHandler>) {
        let mut watch = self.watch.borrow_mut();
        if watch.is_some() {
            return;
        }
        let Some(fd) = self.end.fd() else {
            return;
        };
        let poll = op::PollAdd::new(fd, libc::POLLERR as u32);
        if let Ok(w) = self.end.port.driver().submit(poll, handler, TAG_OTHER) {
            *watch = Some(w);
        }
    }
}

impl Io for WritePipeIo {
    const SENDING: &'static str = "writing";

    fn arm_recv(&self, _: Rc<dyn OpHandler>, _: bool) -> io::Result<Option<bool>> {
        // The write end's core is made not reading and never resumes.
        Ok(None)
    }

    fn complete_recv<R>(&self, c: Completion, f: impl FnOnce(Recv<'_>) -> R) -> R {
        f(Recv::empty(&c, false))
    }

    fn cancel_recv(&self) {}

    fn send(
        &self,
        handler: Rc<dyn OpHandler>,
        buf: Slice<Bytes>,
        _quiet: bool,
    ) -> io::Result<bool> {
        let Some(fd) = self.end.fd() else {
            return Ok(false);
        };
        let write = op::Write::new(fd, buf, CURRENT_POSITION);
        let write = self
            .end
            .port
            .driver()
            .submit(write, handler, TAG_SEND)
            .map_err(|(e, _)| e)?;
        *self.write.borrow_mut() = Some(write);
        Ok(true)
    }

    fn complete_send(&self, c: Completion) -> Option<(io::Result<usize>, Slice<Bytes>)> {
        let write = self.write.borrow_mut().take()?;
        let (result, buf) = write.complete(c);
        if self.discard_sigpipe
            && let Err(e) = &result
            && e.raw_os_error() == Some(libc::EPIPE)
        {
            let _ = crate::sys::signal::discard_pending(libc::SIGPIPE);
        }
        Some((result, buf))
    }

    fn cancel_all(&self) {
        if let Some(write) = &*self.write.borrow() {
            write.cancel();
        }
        if let Some(watch) = &*self.watch.borrow() {
            watch.cancel();
        }
    }

    fn complete_other(
        &self,
        handler: Rc<dyn OpHandler>,
        _tag: u32,
        c: Completion,
        over: bool,
    ) -> bool {
        if let Some(watch) = self.watch.borrow_mut().take() {
            drop(watch.finish());
        }
        if over {
            return false;
        }
        match c.into_result() {
            Ok(_) => true,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                self.arm_watch(handler);
                false
            }
            // The watch is an optimisation; errors on the fd show on the next write.
            Err(_) => false,
        }
    }

    fn take_fd(&self) -> Option<SharedFd> {
        self.end.fd.borrow_mut().take()
    }

    pipe_services!();
}

// ----- the sink -----

/// A pipe transport's protocol, until `connection_lost` (or the loop's teardown).
pub(crate) struct PipeSink {
    protocol: RefCell<Option<Rc<dyn PipeProtocol>>>,
}

impl PipeSink {
    pub(crate) fn new(protocol: Rc<dyn PipeProtocol>) -> PipeSink {
        PipeSink {
            protocol: RefCell::new(Some(protocol)),
        }
    }

    fn protocol(&self) -> Option<Rc<dyn PipeProtocol>> {
        self.protocol.borrow().clone()
    }
}

impl Sink for PipeSink {
    type Detached = Option<Rc<dyn PipeProtocol>>;

    fn data_received(&self, data: &[u8]) -> io::Result<()> {
        if let Some(p) = self.protocol() {
            p.data_received(data);
        }
        Ok(())
    }

    fn eof_received(&self) -> bool {
        // A pipe has no half-close: its end of file ends the transport.
        false
    }

    // A pipe's protocol (the subprocess transport's link) is never busy: its notices are
    // delivered at once. A write from inside one does not recurse (the core records what
    // it told before telling).
    fn try_pause_writing(&self) -> bool {
        if let Some(p) = self.protocol() {
            p.pause_writing();
        }
        true
    }

    fn try_resume_writing(&self) -> bool {
        if let Some(p) = self.protocol() {
            p.resume_writing();
        }
        true
    }

    fn connection_lost(&self, err: Option<io::Error>) {
        if let Some(p) = self.protocol.borrow_mut().take() {
            p.connection_lost(err);
        }
    }

    fn detach(&self) -> Self::Detached {
        self.protocol.borrow_mut().take()
    }
}
