//! The transport core: one state machine of which the stream, pipe (and later TLS)
//! transports are configurations.
//!
//! - [`read`]: one receive in flight (multishot from a buffer ring, or single-shot into
//!   an owned buffer); `pause_reading` stops re-arming and cancels a multishot receive,
//!   and what still completes is held and delivered in order on `resume_reading`;
//!   `ENOBUFS` and a multishot end re-arm; end of file goes to `eof_received`.
//! - [`write`]: a backlog, one send in flight, a short send continued from where it
//!   stopped, the writes of one iteration coalesced into one send at the loop's pre-submit
//!   flush, quiet sends, and the water marks with their `pause_writing`/`resume_writing`
//!   notices.
//! - the lifecycle (here): `close` stops reading, flushes, then `connection_lost(None)`;
//!   `abort` drops the backlog and ends at once; a fatal error is reported to the loop's
//!   exception handler unless it is a peer reset; `connection_lost` comes exactly once,
//!   last, through `call_soon`; the fd is let go after it, and closes when the last op
//!   that names it has completed (each op holds its own reference).
//!
//! The core knows neither sockets nor the loop: it asks its [`Io`] (ops, loop services)
//! and tells its [`Sink`] (the protocol). The transports' `Io`s go through
//! [`Port`](super::port::Port); the unit tests beside this module use a scripted `Io`
//! whose completions the test delivers by hand.
//!
//! # Backpressure
//!
//! A multishot receive takes whatever the socket holds, as fast as the kernel can post
//! it, until its cancel lands; a protocol that pauses would hold all of that. So a
//! stream under backpressure — reading paused, or its write buffer above the high mark —
//! is *throttled*: its multishot receive is cancelled and it reads with single-shot
//! receives of one buffer each until a receive comes back short (the socket is drained)
//! with reading on and the write side below its mark. The unpaused hot path keeps its
//! multishot receive.

mod read;
mod write;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use bytes::Bytes;

use super::is_peer_reset;
use super::live::Live;
use crate::buf::Slice;
use crate::driver::{Completion, OpHandler};
use crate::event_loop::Flush;
use crate::fd::SharedFd;

use read::ReadSide;
pub(crate) use read::Recv;
use write::WriteSide;

/// The tag of the core's receive op.
pub(crate) const TAG_RECV: u32 = 0;
/// The tag of the core's send op.
pub(crate) const TAG_SEND: u32 = 1;
/// The first tag a configuration may use for ops of its own (a pipe's `POLLERR` watch).
pub(crate) const TAG_OTHER: u32 = 2;

/// What the core asks of the world: its ops and the loop's services. One per
/// configuration (stream socket, read pipe, write pipe; a script in tests).
pub(crate) trait Io: 'static {
    /// Re-arm before delivering a single-shot receive (a second buffer is then in
    /// flight while the protocol runs) rather than after.
    const REARM_FIRST: bool = false;
    /// What the core is doing when a send fails ("sending", "writing").
    const SENDING: &'static str = "sending";

    /// Arms a receive (multishot if `multishot` and the configuration can); returns
    /// whether it is multishot, or `None` when the fd is gone. Its completions come with
    /// [`TAG_RECV`].
    fn arm_recv(&self, handler: Rc<dyn OpHandler>, multishot: bool) -> io::Result<Option<bool>>;
    /// Turns a receive's completion into a [`Recv`] for `f`; buffers go back after `f`.
    fn complete_recv<R>(&self, c: Completion, f: impl FnOnce(Recv<'_>) -> R) -> R;
    /// Asks the kernel to cancel the receive in flight.
    fn cancel_recv(&self);
    /// Submits a send of `buf` (quiet if `quiet` and the configuration can); false when
    /// the fd is gone. Its completion comes with [`TAG_SEND`].
    fn send(&self, handler: Rc<dyn OpHandler>, buf: Slice<Bytes>, quiet: bool) -> io::Result<bool>;
    /// The send's completion: its result and its buffer (to continue a short send).
    fn complete_send(&self, c: Completion) -> Option<(io::Result<usize>, Slice<Bytes>)>;
    /// Cancels every op in flight (the transport is ending).
    fn cancel_all(&self);
    /// A completion of an op of the configuration's own (`tag >= TAG_OTHER`); true when
    /// it says the peer went away. `over`: the transport is ending anyway.
    fn complete_other(
        &self,
        _handler: Rc<dyn OpHandler>,
        _tag: u32,
        _c: Completion,
        _over: bool,
    ) -> bool {
        false
    }
    /// Shuts the write side down (a stream's `SHUT_WR`) once the buffer drained after
    /// `write_eof`.
    fn shutdown_write(&self) {}
    /// `abort` was called (TCP: make the close send a reset).
    fn on_abort(&self) {}
    /// Lets go of the transport's own reference to its fd (and spare buffers).
    fn take_fd(&self) -> Option<SharedFd>;
    /// Leaves the loop's registry of live transports.
    fn unregister_live(&self) {}

    /// Queues `flush` for just before the loop's next submit.
    fn schedule_flush(&self, flush: Rc<dyn Flush>);
    /// The loop's `call_soon`.
    fn call_soon(&self, f: Box<dyn FnOnce()>);
    /// Reports a fatal error while `doing` to the loop's exception handler.
    fn report(&self, doing: &str, err: &io::Error);
    /// The error of a write on a closing transport.
    fn closed_error(&self) -> io::Error;
    /// The error of a write after `write_eof`.
    fn eof_error(&self) -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "write after write_eof")
    }
}

/// What the core tells: the protocol, in asyncio's names.
pub(crate) trait Sink: 'static {
    /// What [`Sink::detach`] hands back, to be dropped outside the core's borrows.
    type Detached;
    /// Bytes arrived; an error is fatal to the transport.
    fn data_received(&self, data: &[u8]) -> io::Result<()>;
    /// The peer closed its side; true keeps the transport open (write half).
    fn eof_received(&self) -> bool;
    /// `pause_writing`; false if the protocol is busy (the core retries via `call_soon`).
    fn try_pause_writing(&self) -> bool;
    /// `resume_writing`; false if the protocol is busy.
    fn try_resume_writing(&self) -> bool;
    /// Lets go of the protocol and calls its `connection_lost` (if it was made).
    fn connection_lost(&self, err: Option<io::Error>);
    /// After `connection_lost` and the fd's release (a server counts its connections).
    fn after_lost(&self) {}
    /// Lets go of the protocol without calling it.
    fn detach(&self) -> Self::Detached;
}

/// Where the transport is in its life.
#[derive(Default)]
struct Life {
    /// `close` or `abort` was called, or the connection is ending.
    closing: bool,
    /// `connection_lost` is queued (or done): nothing else is delivered.
    lost_scheduled: bool,
    /// `connection_lost` ran: the protocol is gone.
    lost: bool,
}

struct State {
    read: ReadSide,
    write: WriteSide,
    life: Life,
}

/// One transport: its state, its [`Io`] and its [`Sink`].
pub(crate) struct Core<I: Io, S: Sink> {
    pub(crate) io: I,
    pub(crate) sink: S,
    st: RefCell<State>,
}

impl<I: Io, S: Sink> Core<I, S> {
    /// A transport that reads (if `reading`) and may use multishot receives (if
    /// `multishot`). Nothing happens until [`Core::arm_read`] or a write.
    pub(crate) fn new(io: I, sink: S, reading: bool, multishot: bool) -> Rc<Self> {
        Rc::new(Core {
            io,
            sink,
            st: RefCell::new(State {
                read: ReadSide::new(reading, multishot),
                write: WriteSide::default(),
                life: Life::default(),
            }),
        })
    }

    fn handler(self: &Rc<Self>) -> Rc<dyn OpHandler> {
        self.clone()
    }

    /// Whether `close` or `abort` was called (or the connection was lost).
    pub(crate) fn is_closing(&self) -> bool {
        self.st.borrow().life.closing
    }

    // ----- ending -----

    /// Closes: stops reading, flushes what is buffered, then `connection_lost(None)`.
    /// Again does nothing.
    pub(crate) fn close(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.life.closing {
                return;
            }
            st.life.closing = true;
            st.read.reading = false;
            if st.read.armed() {
                self.io.cancel_recv();
            }
        }
        self.after_flush();
    }

    /// Ends now: drops the backlog and what is held; `connection_lost(err)`.
    pub(crate) fn force_close(self: &Rc<Self>, err: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            if st.life.lost_scheduled {
                return;
            }
            st.life.closing = true;
            st.read.reading = false;
            st.write.backlog.clear();
            st.read.held.clear();
            if err.is_none() {
                self.io.on_abort();
            }
        }
        self.schedule_lost(err);
    }

    /// A fatal error while `doing`: reported unless it is a peer reset, then the
    /// transport ends with `connection_lost(Some(err))`.
    pub(crate) fn fatal_error(self: &Rc<Self>, err: io::Error, doing: &str) {
        if !is_peer_reset(&err) {
            self.io.report(doing, &err);
        }
        self.force_close(Some(err));
    }

    /// Queues `connection_lost(err)` (once) and cancels every op in flight.
    pub(crate) fn schedule_lost(self: &Rc<Self>, err: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            if st.life.lost_scheduled {
                return;
            }
            st.life.lost_scheduled = true;
            st.life.closing = true;
            st.read.reading = false;
            st.read.held.clear();
            self.io.cancel_all();
        }
        let this = self.clone();
        self.io
            .call_soon(Box::new(move || this.call_connection_lost(err)));
    }

    fn call_connection_lost(self: &Rc<Self>, err: Option<io::Error>) {
        self.io.unregister_live();
        self.sink.connection_lost(err);
        {
            let mut st = self.st.borrow_mut();
            st.life.lost = true;
            st.read.held.clear();
        }
        self.maybe_release_fd();
        self.sink.after_lost();
    }

    /// Drops our reference to the fd once `connection_lost` ran; the ops in flight hold
    /// theirs, so the fd closes after the last CQE that names it.
    fn maybe_release_fd(&self) {
        if self.st.borrow().life.lost {
            drop(self.io.take_fd());
        }
    }

    /// Breaks the transport → protocol link without callbacks and ends the transport
    /// (a subprocess's teardown).
    pub(crate) fn detach(self: &Rc<Self>) {
        drop(self.sink.detach());
        self.schedule_lost(None);
    }

    fn on_other(self: &Rc<Self>, tag: u32, c: Completion) {
        let over = self.st.borrow().life.lost_scheduled;
        let gone = self.io.complete_other(self.handler(), tag, c, over);
        if over {
            self.maybe_release_fd();
        } else if gone {
            // The peer is gone. Unsent bytes make it a broken pipe; else a plain end.
            let unsent = self.write_buffer_size() > 0;
            self.schedule_lost(unsent.then(|| io::Error::from_raw_os_error(libc::EPIPE)));
        }
    }
}

impl<I: Io, S: Sink> OpHandler for Core<I, S> {
    fn on_completion(self: Rc<Self>, tag: u32, completion: Completion) {
        match tag {
            TAG_RECV => self.on_recv(completion),
            TAG_SEND => self.on_send(completion),
            _ => self.on_other(tag, completion),
        }
    }
}

impl<I: Io, S: Sink> Flush for Core<I, S> {
    fn flush(self: Rc<Self>) {
        self.st.borrow_mut().write.flush_scheduled = false;
        self.start_send();
    }
}

impl<I: Io, S: Sink> Live for Core<I, S> {
    fn release(&self) {
        self.io.unregister_live();
        let detached = self.sink.detach();
        let fd = {
            let mut st = self.st.borrow_mut();
            st.life.closing = true;
            st.life.lost_scheduled = true;
            st.life.lost = true;
            st.read.reading = false;
            st.write.backlog.clear();
            st.read.held.clear();
            self.io.take_fd()
        };
        // Dropped outside the borrows: the protocol may hold the last transport clone.
        drop(fd);
        drop(detached);
    }
}
