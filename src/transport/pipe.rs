//! Pipe transports: the read end and the write end of a pipe, each a small state machine
//! driven by the completions of io_uring `READ`/`WRITE` ops on a **blocking** pipe fd
//! (io_uring answers `EAGAIN` for a read on an `O_NONBLOCK` pipe instead of waiting; on a
//! blocking one it parks the op on the pipe's wait queue — no worker thread).
//!
//! [`ReadPipeTransport`]: one read in flight into an owned buffer. When it completes the
//! next read is armed first (with a second buffer), then the bytes are delivered.
//! `pause_reading` only stops re-arming; a read already in flight is held and delivered on
//! `resume_reading`. End of file or `close` ends it with `connection_lost`.
//!
//! [`WritePipeTransport`]: `write` appends to a backlog flushed once per loop iteration
//! (one `WRITE` in flight; short writes continue; the backlog follows as the next single
//! write); flow control by high/low water marks as for streams. A pipe has no half-close:
//! `write_eof` and `close` both flush, then close the fd. A poll for `POLLERR` on the write
//! end stays in the ring, so the reader going away (the child exited or closed its stdin)
//! ends the transport even when nothing is being written, as asyncio does.
//!
//! # `SIGPIPE`
//!
//! A write to a pipe whose reader is gone fails with `EPIPE` **and** makes the kernel send
//! `SIGPIPE` to the writing thread — through io_uring too. Rust programs ignore `SIGPIPE`
//! (the standard runtime sets it to `SIG_IGN` before `main`), so only the `EPIPE` remains,
//! and it ends the transport with `connection_lost(Some(err))`. A process where `SIGPIPE`
//! still has its default action (a C host, `-Zon-broken-pipe=kill`, or code that restored
//! it) would be killed; so when a write pipe transport is created in such a process,
//! ringloop **blocks** `SIGPIPE` in the loop's thread (for the thread's lifetime; threads
//! it spawns later inherit the mask, children get a clean mask from `std::process`) and
//! discards the pending instance after each `EPIPE`. A program that installed its own
//! `SIGPIPE` handler keeps it and sees the signal.
//!
//! `connection_lost` is called once, last, through `call_soon`; the fd closes when the last
//! op that names it has completed.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::flow::WaterMarks;
use crate::buf::{IoBuf, Slice};
use crate::driver::{Completion, OpHandler};
use crate::event_loop::{EventLoop, ExceptionContext, Flush};
use crate::fd::SharedFd;
use crate::op::{self, CURRENT_POSITION, InFlight};

/// Bytes asked for per read (the default pipe capacity).
const READ_SIZE: usize = 64 * 1024;

const TAG_IO: u32 = 0;
const TAG_WATCH: u32 = 1;

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

type ProtocolSlot = RefCell<Option<Rc<dyn PipeProtocol>>>;

fn report(event_loop: &EventLoop, fd: RawFd, doing: &str, err: &io::Error) {
    event_loop.call_exception_handler(ExceptionContext {
        message: format!("fatal error on pipe transport (fd {fd}) while {doing}"),
        error: Some(io::Error::new(err.kind(), err.to_string()).into()),
    });
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

enum Held {
    Data(Vec<u8>),
    Eof,
    Error(io::Error),
}

struct ReadState {
    fd: Option<SharedFd>,
    reading: bool,
    read: Option<InFlight<op::Read<Vec<u8>>>>,
    spare: Option<Vec<u8>>,
    held: VecDeque<Held>,
    eof: bool,
    closing: bool,
    lost_scheduled: bool,
}

pub(crate) struct ReadInner {
    event_loop: EventLoop,
    raw_fd: RawFd,
    protocol: ProtocolSlot,
    st: RefCell<ReadState>,
}

/// The read end of a pipe (a child's stdout or stderr). Cheap to clone.
///
/// Get one from [`SubprocessTransport::get_pipe_transport`](crate::SubprocessTransport::get_pipe_transport).
#[derive(Clone)]
pub struct ReadPipeTransport {
    inner: Rc<ReadInner>,
}

impl ReadPipeTransport {
    /// Wraps the read end of a blocking pipe; reading starts at once.
    pub(crate) fn start(
        event_loop: &EventLoop,
        fd: SharedFd,
        protocol: Rc<dyn PipeProtocol>,
    ) -> Self {
        let inner = Rc::new(ReadInner {
            event_loop: event_loop.clone(),
            raw_fd: fd.raw(),
            protocol: RefCell::new(Some(protocol)),
            st: RefCell::new(ReadState {
                fd: Some(fd),
                reading: true,
                read: None,
                spare: None,
                held: VecDeque::new(),
                eof: false,
                closing: false,
                lost_scheduled: false,
            }),
        });
        ReadInner::arm(&inner);
        ReadPipeTransport { inner }
    }

    /// Stops delivering data until [`ReadPipeTransport::resume_reading`]; a read already
    /// in flight is held, never lost. Idempotent.
    pub fn pause_reading(&self) {
        let mut st = self.inner.st.borrow_mut();
        if !st.closing {
            st.reading = false;
        }
    }

    /// Delivers what was held, in order, then reads on. Idempotent.
    pub fn resume_reading(&self) {
        {
            let mut st = self.inner.st.borrow_mut();
            if st.reading || st.closing {
                return;
            }
            st.reading = true;
            if st.held.is_empty() {
                drop(st);
                ReadInner::arm(&self.inner);
                return;
            }
        }
        let inner = self.inner.clone();
        self.inner
            .event_loop
            .call_soon(move || ReadInner::deliver_held(&inner));
    }

    /// Whether data is being delivered (not paused, not closing).
    pub fn is_reading(&self) -> bool {
        let st = self.inner.st.borrow();
        st.reading && !st.closing
    }

    /// Stops reading and closes the pipe; `connection_lost(None)` follows. Idempotent.
    pub fn close(&self) {
        ReadInner::schedule_lost(&self.inner, None);
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().closing
    }

    /// The pipe's fd number (valid until `connection_lost`).
    pub fn fileno(&self) -> RawFd {
        self.inner.raw_fd
    }

    /// Breaks the transport → protocol link without callbacks (loop teardown).
    pub(crate) fn detach(&self) {
        self.inner.protocol.borrow_mut().take();
        ReadInner::schedule_lost(&self.inner, None);
    }
}

impl fmt::Debug for ReadPipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("ReadPipeTransport")
            .field("fd", &self.inner.raw_fd)
            .field("reading", &st.reading)
            .field("closing", &st.closing)
            .finish()
    }
}

impl ReadInner {
    fn protocol(&self) -> Option<Rc<dyn PipeProtocol>> {
        self.protocol.borrow().clone()
    }

    fn arm(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if !st.reading || st.closing || st.eof || st.read.is_some() {
            return;
        }
        let Some(fd) = st.fd.clone() else {
            return;
        };
        let buf = st
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(READ_SIZE));
        let read = op::Read::new(fd, buf, CURRENT_POSITION);
        match self.event_loop.driver().submit(read, self.clone(), TAG_IO) {
            Ok(read) => st.read = Some(read),
            Err((e, _)) => {
                drop(st);
                report(&self.event_loop, self.raw_fd, "arming a read", &e);
                Self::schedule_lost(self, Some(e));
            }
        }
    }

    fn on_read(self: &Rc<Self>, c: Completion) {
        let Some(read) = self.st.borrow_mut().read.take() else {
            return;
        };
        let (result, mut buf) = read.complete(c);
        let mut st = self.st.borrow_mut();
        if st.lost_scheduled {
            drop(st);
            self.release_fd();
            return;
        }
        let item = match result {
            Ok(0) => {
                st.eof = true;
                Held::Eof
            }
            Ok(_) => Held::Data(Vec::new()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                st.spare = Some(buf);
                drop(st);
                Self::arm(self);
                return;
            }
            Err(e) => {
                st.eof = true;
                Held::Error(e)
            }
        };
        if !st.reading {
            st.held.push_back(match item {
                Held::Data(_) => Held::Data(buf),
                other => other,
            });
            return;
        }
        drop(st);
        match item {
            Held::Data(_) => {
                // Re-arm first (into the spare buffer), then deliver.
                Self::arm(self);
                if let Some(p) = self.protocol() {
                    p.data_received(&buf);
                }
                buf.clear();
                let mut st = self.st.borrow_mut();
                if st.spare.is_none() {
                    st.spare = Some(buf);
                }
            }
            Held::Eof => Self::schedule_lost(self, None),
            Held::Error(e) => {
                report(&self.event_loop, self.raw_fd, "reading", &e);
                Self::schedule_lost(self, Some(e));
            }
        }
    }

    fn deliver_held(self: &Rc<Self>) {
        loop {
            let item = {
                let mut st = self.st.borrow_mut();
                if !st.reading || st.lost_scheduled {
                    return;
                }
                match st.held.pop_front() {
                    Some(item) => item,
                    None => break,
                }
            };
            match item {
                Held::Data(data) => {
                    if let Some(p) = self.protocol() {
                        p.data_received(&data);
                    }
                }
                Held::Eof => {
                    Self::schedule_lost(self, None);
                    return;
                }
                Held::Error(e) => {
                    report(&self.event_loop, self.raw_fd, "reading", &e);
                    Self::schedule_lost(self, Some(e));
                    return;
                }
            }
        }
        Self::arm(self);
    }

    fn schedule_lost(self: &Rc<Self>, err: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            if st.lost_scheduled {
                return;
            }
            st.lost_scheduled = true;
            st.closing = true;
            st.reading = false;
            st.held.clear();
            if let Some(read) = &st.read {
                read.cancel();
            }
        }
        let this = self.clone();
        self.event_loop.call_soon(move || {
            let protocol = this.protocol.borrow_mut().take();
            if let Some(p) = protocol {
                p.connection_lost(err);
            }
            this.release_fd();
        });
    }

    /// Drops our reference to the fd once the transport is over; a read still in flight
    /// holds its own, so the fd closes after its CQE.
    fn release_fd(&self) {
        let mut st = self.st.borrow_mut();
        if st.lost_scheduled && self.protocol.borrow().is_none() {
            let fd = st.fd.take();
            st.spare = None;
            drop(st);
            drop(fd);
        }
    }
}

impl OpHandler for ReadInner {
    fn on_completion(self: Rc<Self>, _tag: u32, completion: Completion) {
        Self::on_read(&self, completion);
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

struct WriteState {
    fd: Option<SharedFd>,
    backlog: BytesMut,
    write: Option<InFlight<op::Write<Slice<Bytes>>>>,
    /// Bytes of the write in flight not yet taken by the kernel.
    in_flight: usize,
    flush_scheduled: bool,
    /// The `POLLERR` watch on the write end (the reader went away).
    watch: Option<InFlight<op::PollAdd>>,
    marks: WaterMarks,
    closing: bool,
    lost_scheduled: bool,
}

impl WriteState {
    fn write_buffer_size(&self) -> usize {
        self.backlog.len() + self.in_flight
    }
}

pub(crate) struct WriteInner {
    event_loop: EventLoop,
    raw_fd: RawFd,
    protocol: ProtocolSlot,
    st: RefCell<WriteState>,
    /// Whether this thread blocks SIGPIPE because of ringloop (see the module docs).
    discard_sigpipe: Cell<bool>,
}

/// The write end of a pipe (a child's stdin). Cheap to clone.
///
/// Get one from [`SubprocessTransport::get_pipe_transport`](crate::SubprocessTransport::get_pipe_transport).
///
/// # `SIGPIPE`
///
/// A write to a pipe whose reader is gone fails with `EPIPE` and makes the kernel send
/// `SIGPIPE` to the writing thread, io_uring writes included. Rust programs ignore
/// `SIGPIPE` (the standard runtime sets `SIG_IGN` before `main`), so only the `EPIPE`
/// remains: the transport ends with `connection_lost(Some(err))` of kind `BrokenPipe`. Where
/// `SIGPIPE` still has its default action (a C host, `-Zon-broken-pipe=kill`, code that
/// restored it), creating a write pipe transport blocks `SIGPIPE` in the loop's thread for
/// the thread's lifetime (threads it spawns later inherit that; children get an empty
/// mask) and each `EPIPE` discards the pending instance. A `SIGPIPE` handler the program
/// installed itself is left alone and sees the signal.
#[derive(Clone)]
pub struct WritePipeTransport {
    inner: Rc<WriteInner>,
}

impl WritePipeTransport {
    /// Wraps the write end of a blocking pipe.
    pub(crate) fn start(
        event_loop: &EventLoop,
        fd: SharedFd,
        protocol: Rc<dyn PipeProtocol>,
    ) -> Self {
        let inner = Rc::new(WriteInner {
            event_loop: event_loop.clone(),
            raw_fd: fd.raw(),
            protocol: RefCell::new(Some(protocol)),
            st: RefCell::new(WriteState {
                fd: Some(fd),
                backlog: BytesMut::new(),
                write: None,
                in_flight: 0,
                flush_scheduled: false,
                watch: None,
                marks: WaterMarks::default(),
                closing: false,
                lost_scheduled: false,
            }),
            discard_sigpipe: Cell::new(guard_sigpipe()),
        });
        WriteInner::arm_watch(&inner);
        WritePipeTransport { inner }
    }

    /// Queues `data`; never blocks. Everything written during one loop iteration leaves
    /// in one `write`. Errors once the transport is closing.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        WriteInner::write(&self.inner, data)
    }

    /// Writes each buffer in order.
    pub fn writelines<'a>(&self, data: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        for d in data {
            self.write(d)?;
        }
        Ok(())
    }

    /// A pipe has no half-close: flushes, then closes the pipe (the reader sees EOF).
    pub fn write_eof(&self) -> io::Result<()> {
        self.close();
        Ok(())
    }

    /// Pipes can signal EOF (by closing).
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Flushes what is buffered, then closes the pipe and calls `connection_lost(None)`.
    /// Idempotent.
    pub fn close(&self) {
        {
            let mut st = self.inner.st.borrow_mut();
            if st.closing {
                return;
            }
            st.closing = true;
        }
        WriteInner::after_flush(&self.inner);
    }

    /// Drops the buffer and closes at once.
    pub fn abort(&self) {
        WriteInner::schedule_lost(&self.inner, None);
    }

    /// Whether `close`/`abort` was called or the pipe was lost.
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().closing
    }

    /// Bytes written but not yet taken by the kernel.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.st.borrow().write_buffer_size()
    }

    /// `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        let st = self.inner.st.borrow();
        st.marks.limits()
    }

    /// Sets the water marks (a missing low is high/4, a missing high 4 × low); high < low
    /// is an error.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        self.inner.st.borrow_mut().marks.set(high, low)?;
        WriteInner::maybe_pause(&self.inner);
        WriteInner::maybe_resume(&self.inner);
        Ok(())
    }

    /// The pipe's fd number (valid until `connection_lost`).
    pub fn fileno(&self) -> RawFd {
        self.inner.raw_fd
    }

    /// Breaks the transport → protocol link without callbacks (loop teardown).
    pub(crate) fn detach(&self) {
        self.inner.protocol.borrow_mut().take();
        WriteInner::schedule_lost(&self.inner, None);
    }
}

impl fmt::Debug for WritePipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("WritePipeTransport")
            .field("fd", &self.inner.raw_fd)
            .field("closing", &st.closing)
            .field("write_buffer", &st.write_buffer_size())
            .finish()
    }
}

impl WriteInner {
    fn protocol(&self) -> Option<Rc<dyn PipeProtocol>> {
        self.protocol.borrow().clone()
    }

    fn write(self: &Rc<Self>, data: &[u8]) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        if st.closing {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("write on a closed pipe transport (fd {})", self.raw_fd),
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        // The first write into an idle transport may leave at once: it never pauses.
        let queued_behind = st.write.is_some() || st.flush_scheduled;
        st.backlog.extend_from_slice(data);
        if st.write.is_none() && !st.flush_scheduled {
            st.flush_scheduled = true;
            drop(st);
            self.event_loop.schedule_flush(self.clone());
        } else {
            drop(st);
        }
        if queued_behind {
            Self::maybe_pause(self);
        }
        Ok(())
    }

    fn start_write(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if st.write.is_some() || st.backlog.is_empty() || st.lost_scheduled {
            return;
        }
        let Some(fd) = st.fd.clone() else {
            st.backlog.clear();
            return;
        };
        let data = st.backlog.split().freeze();
        st.in_flight = data.len();
        self.push_write(&mut st, fd, data.slice(..));
    }

    fn push_write(self: &Rc<Self>, st: &mut WriteState, fd: SharedFd, buf: Slice<Bytes>) {
        let write = op::Write::new(fd, buf, CURRENT_POSITION);
        match self.event_loop.driver().submit(write, self.clone(), TAG_IO) {
            Ok(write) => st.write = Some(write),
            Err((e, _)) => {
                st.in_flight = 0;
                let this = self.clone();
                self.event_loop.call_soon(move || {
                    report(&this.event_loop, this.raw_fd, "writing", &e);
                    Self::schedule_lost(&this, Some(e));
                });
            }
        }
    }

    fn on_write(self: &Rc<Self>, c: Completion) {
        let mut st = self.st.borrow_mut();
        let Some(write) = st.write.take() else {
            return;
        };
        let (result, slice) = write.complete(c);
        match result {
            Ok(n) => {
                let (begin, end) = (slice.begin() + n, slice.end());
                st.in_flight = end - begin;
                if begin < end && !st.lost_scheduled {
                    if n == 0 {
                        drop(st);
                        let e = io::Error::from(io::ErrorKind::WriteZero);
                        report(&self.event_loop, self.raw_fd, "writing", &e);
                        Self::schedule_lost(self, Some(e));
                        return;
                    }
                    // Short write: continue from where it stopped, before anything newer.
                    if let Some(fd) = st.fd.clone() {
                        let rest = slice.into_inner().slice(begin..end);
                        self.push_write(&mut st, fd, rest);
                    }
                    drop(st);
                    Self::maybe_pause(self);
                    return;
                }
                st.in_flight = 0;
                if !st.backlog.is_empty() && !st.lost_scheduled && !st.flush_scheduled {
                    st.flush_scheduled = true;
                    drop(st);
                    self.event_loop.schedule_flush(self.clone());
                } else {
                    drop(st);
                }
                Self::maybe_resume(self);
                Self::after_flush(self);
            }
            Err(e) => {
                st.in_flight = 0;
                let already_lost = st.lost_scheduled;
                drop(st);
                if e.raw_os_error() == Some(libc::EPIPE) {
                    self.discard_sigpipe();
                }
                if !already_lost {
                    if !super::is_peer_reset(&e) {
                        report(&self.event_loop, self.raw_fd, "writing", &e);
                    }
                    Self::schedule_lost(self, Some(e));
                }
            }
        }
        self.release_fd();
    }

    /// Keeps a one-shot `POLLERR` poll on the write end: it completes when the reader is
    /// gone.
    fn arm_watch(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if st.watch.is_some() || st.lost_scheduled {
            return;
        }
        let Some(fd) = st.fd.clone() else {
            return;
        };
        let poll = op::PollAdd::new(fd, libc::POLLERR as u32);
        if let Ok(watch) = self
            .event_loop
            .driver()
            .submit(poll, self.clone(), TAG_WATCH)
        {
            st.watch = Some(watch);
        }
        // Without the watch, a vanished reader still shows as EPIPE on the next write.
    }

    fn on_watch(self: &Rc<Self>, c: Completion) {
        let mut st = self.st.borrow_mut();
        if let Some(watch) = st.watch.take() {
            drop(watch.finish());
        }
        if st.lost_scheduled {
            drop(st);
            self.release_fd();
            return;
        }
        match c.into_result() {
            Ok(_) => {
                // The reader is gone. Unsent bytes make it a broken pipe; else a plain end.
                let err =
                    (st.write_buffer_size() > 0).then(|| io::Error::from_raw_os_error(libc::EPIPE));
                drop(st);
                Self::schedule_lost(self, err);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                drop(st);
                Self::arm_watch(self);
            }
            // The watch is an optimisation; errors on the fd show on the next write.
            Err(_) => {}
        }
    }

    fn maybe_pause(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        let size = st.write_buffer_size();
        if st.lost_scheduled || !st.marks.pause_due(size) {
            return;
        }
        drop(st);
        if let Some(p) = self.protocol() {
            p.pause_writing();
        }
    }

    fn maybe_resume(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        let size = st.write_buffer_size();
        if st.lost_scheduled || !st.marks.resume_due(size) {
            return;
        }
        drop(st);
        if let Some(p) = self.protocol() {
            p.resume_writing();
        }
    }

    /// After the buffer drained: a pending close takes effect.
    fn after_flush(self: &Rc<Self>) {
        let st = self.st.borrow();
        if st.write.is_some() || !st.backlog.is_empty() || !st.closing {
            return;
        }
        drop(st);
        Self::schedule_lost(self, None);
    }

    fn schedule_lost(self: &Rc<Self>, err: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            if st.lost_scheduled {
                return;
            }
            st.lost_scheduled = true;
            st.closing = true;
            st.backlog.clear();
            if let Some(write) = &st.write {
                write.cancel();
            }
            if let Some(watch) = &st.watch {
                watch.cancel();
            }
        }
        let this = self.clone();
        self.event_loop.call_soon(move || {
            let protocol = this.protocol.borrow_mut().take();
            if let Some(p) = protocol {
                p.connection_lost(err);
            }
            this.release_fd();
        });
    }

    fn release_fd(&self) {
        let mut st = self.st.borrow_mut();
        if st.lost_scheduled && self.protocol.borrow().is_none() {
            let fd = st.fd.take();
            drop(st);
            drop(fd);
        }
    }

    fn discard_sigpipe(&self) {
        if self.discard_sigpipe.get() {
            let _ = crate::sys::signal::discard_pending(libc::SIGPIPE);
        }
    }
}

impl OpHandler for WriteInner {
    fn on_completion(self: Rc<Self>, tag: u32, completion: Completion) {
        match tag {
            TAG_IO => Self::on_write(&self, completion),
            TAG_WATCH => Self::on_watch(&self, completion),
            _ => {}
        }
    }
}

impl Flush for WriteInner {
    fn flush(self: Rc<Self>) {
        self.st.borrow_mut().flush_scheduled = false;
        Self::start_write(&self);
    }
}

thread_local! {
    /// Whether ringloop blocked SIGPIPE in this thread (see the module docs).
    static SIGPIPE_BLOCKED: Cell<bool> = const { Cell::new(false) };
}

/// Where `SIGPIPE` would kill the process, blocks it in this thread (once). Returns
/// whether pending instances should be discarded after an `EPIPE`.
fn guard_sigpipe() -> bool {
    SIGPIPE_BLOCKED
        .try_with(|blocked| {
            if blocked.get() {
                return true;
            }
            if !crate::sys::process::sigpipe_is_default() {
                return false;
            }
            match crate::sys::signal::block_signal(libc::SIGPIPE) {
                // Blocked already by someone else: leave their pending signals alone.
                Ok(true) | Err(_) => false,
                Ok(false) => {
                    blocked.set(true);
                    true
                }
            }
        })
        .unwrap_or(false)
}
