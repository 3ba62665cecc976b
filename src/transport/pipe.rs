//! Pipe transports: the read end and the write end of a pipe, each the transport core
//! (see [`super::core`]) in a pipe configuration ([`super::pipe_io`]): `READ`/`WRITE` ops
//! on a **blocking** pipe fd.
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

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use super::core::Core;
use super::pipe_io::{PipeSink, ReadPipeIo, WritePipeIo};
use super::port::Port;
use crate::event_loop::EventLoop;
use crate::fd::SharedFd;

pub(crate) use super::pipe_io::PipeProtocol;

type ReadCore = Core<ReadPipeIo, PipeSink>;
type WriteCore = Core<WritePipeIo, PipeSink>;

/// The read end of a pipe (a child's stdout or stderr). Cheap to clone.
///
/// Get one from [`SubprocessTransport::get_pipe_transport`](crate::SubprocessTransport::get_pipe_transport).
#[derive(Clone)]
pub struct ReadPipeTransport {
    inner: Rc<ReadCore>,
}

impl ReadPipeTransport {
    /// Wraps the read end of a blocking pipe; reading starts at once.
    pub(crate) fn start(
        event_loop: &EventLoop,
        fd: SharedFd,
        protocol: Rc<dyn PipeProtocol>,
    ) -> Self {
        let io = ReadPipeIo::new(Port::new(event_loop), fd);
        let inner = Core::new(io, PipeSink::new(protocol), true, false);
        inner.arm_read();
        ReadPipeTransport { inner }
    }

    /// Stops delivering data until [`ReadPipeTransport::resume_reading`]; a read already
    /// in flight is held, never lost. Idempotent.
    pub fn pause_reading(&self) {
        self.inner.pause_reading();
    }

    /// Delivers what was held, in order, then reads on. Idempotent.
    pub fn resume_reading(&self) {
        self.inner.resume_reading();
    }

    /// Whether data is being delivered (not paused, not closing).
    pub fn is_reading(&self) -> bool {
        self.inner.is_reading()
    }

    /// Stops reading and closes the pipe; `connection_lost(None)` follows. Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether the transport is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    /// The pipe's fd number (valid until `connection_lost`).
    pub fn fileno(&self) -> RawFd {
        self.inner.io.raw_fd()
    }

    /// Breaks the transport → protocol link without callbacks (loop teardown).
    pub(crate) fn detach(&self) {
        self.inner.detach();
    }
}

impl fmt::Debug for ReadPipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadPipeTransport")
            .field("fd", &self.fileno())
            .field("reading", &self.is_reading())
            .field("closing", &self.is_closing())
            .finish()
    }
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
    inner: Rc<WriteCore>,
}

impl WritePipeTransport {
    /// Wraps the write end of a blocking pipe.
    pub(crate) fn start(
        event_loop: &EventLoop,
        fd: SharedFd,
        protocol: Rc<dyn PipeProtocol>,
    ) -> Self {
        let io = WritePipeIo::new(Port::new(event_loop), fd, guard_sigpipe());
        let inner = Core::new(io, PipeSink::new(protocol), false, false);
        inner.io.arm_watch(inner.clone());
        WritePipeTransport { inner }
    }

    /// Queues `data`; never blocks. Everything written during one loop iteration leaves
    /// in one `write`. Errors once the transport is closing.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        self.inner.write([data])
    }

    /// Writes each buffer in order, as one write.
    pub fn writelines<'a>(&self, data: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        self.inner.write(data)
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
        self.inner.close();
    }

    /// Drops the buffer and closes at once.
    pub fn abort(&self) {
        self.inner.force_close(None);
    }

    /// Whether `close`/`abort` was called or the pipe was lost.
    pub fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    /// Bytes written but not yet taken by the kernel.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.write_buffer_size()
    }

    /// `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.inner.write_buffer_limits()
    }

    /// Sets the water marks (a missing low is high/4, a missing high 4 × low); high < low
    /// is an error.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        self.inner.set_write_buffer_limits(high, low)
    }

    /// The pipe's fd number (valid until `connection_lost`).
    pub fn fileno(&self) -> RawFd {
        self.inner.io.raw_fd()
    }

    /// Breaks the transport → protocol link without callbacks (loop teardown).
    pub(crate) fn detach(&self) {
        self.inner.detach();
    }
}

impl fmt::Debug for WritePipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WritePipeTransport")
            .field("fd", &self.fileno())
            .field("closing", &self.is_closing())
            .field("write_buffer", &self.get_write_buffer_size())
            .finish()
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
