//! The stream transport (TCP and Unix stream sockets): the transport core (see
//! [`super::core`]) in its stream configuration ([`super::stream_io`]).
//!
//! Reading: one receive in flight — with the loop's buffer ring a multishot `recv`
//! (one SQE for many completions, no buffer held while idle), otherwise, and while the
//! stream is under backpressure, a single-shot `recv` into an owned buffer, re-armed
//! after each delivery. Writing: everything written in one iteration leaves in one
//! `send`, quiet on io_uring when nothing waits on it; one send in flight; the write
//! buffer drives `pause_writing`/`resume_writing`. Ending: `close` flushes, `abort`
//! resets (TCP); `connection_lost` once, last; the fd closes after the last op naming it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::Rc;

use super::core::Core;
use super::live::Live;
use super::port::Port;
use super::stream_io::{StreamIo, StreamKind, StreamSink};
use super::{ExtraInfo, ProtocolRef};
use crate::event_loop::EventLoop;
use crate::fd::SharedFd;

/// The core in its stream configuration.
pub(crate) type StreamCore = Core<StreamIo, StreamSink>;

/// A stream connection (TCP or Unix) and the protocol it feeds. Cheap to clone.
///
/// Made by [`EventLoop::create_server`] / [`EventLoop::create_connection`] and their Unix
/// twins; handed to [`Protocol::connection_made`](crate::Protocol::connection_made).
#[derive(Clone)]
pub struct StreamTransport {
    pub(crate) inner: Rc<StreamCore>,
}

impl StreamTransport {
    /// Wraps a connected socket. Nothing happens until [`StreamTransport::start`].
    pub(crate) fn new(
        event_loop: &EventLoop,
        fd: SharedFd,
        kind: StreamKind,
        protocol: ProtocolRef,
    ) -> Self {
        let port = Port::new(event_loop);
        let multishot = port.multishot_recv();
        let sink = StreamSink {
            protocol: RefCell::new(protocol),
            made: Cell::new(false),
            on_lost: RefCell::new(None),
        };
        let inner = Core::new(StreamIo::new(port, fd, kind), sink, true, multishot);
        let weak: std::rc::Weak<dyn Live> = Rc::downgrade(&inner) as std::rc::Weak<StreamCore>;
        let key = inner.io.port.register_live(weak);
        inner.io.live_key.set(Some(key));
        StreamTransport { inner }
    }

    /// Called once after `connection_lost` (servers count their connections with it).
    pub(crate) fn set_on_lost(&self, f: Box<dyn FnOnce()>) {
        *self.inner.sink.on_lost.borrow_mut() = Some(f);
    }

    /// Calls `connection_made` now, then starts reading (unless the protocol paused it).
    pub(crate) fn start(&self) {
        self.inner.sink.made.set(true);
        let protocol = self.inner.sink.protocol();
        protocol.connection_made(self);
        self.inner.arm_read();
    }

    /// Schedules [`StreamTransport::start`] through `call_soon` (server side, as asyncio).
    pub(crate) fn start_soon(&self) {
        let t = self.clone();
        self.inner.io.port.call_soon(move || t.start());
    }

    /// Queues `data` for sending; never blocks. Everything written during one loop
    /// iteration leaves in one send. A write that queues behind earlier unsent bytes
    /// calls `pause_writing` once the buffer passes the high mark. Errors after
    /// `close`/`abort` or `write_eof`.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        self.inner.write([data])
    }

    /// Writes each buffer in order (one send, like one `write` of their concatenation).
    pub fn writelines<'a>(&self, data: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        self.inner.write(data)
    }

    /// Closes the write side once the buffer is flushed (half-close).
    pub fn write_eof(&self) -> io::Result<()> {
        self.inner.write_eof();
        Ok(())
    }

    /// Stream sockets can always half-close.
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes the transport: stops reading, flushes what is buffered, then
    /// `connection_lost(None)`. Calling it again does nothing.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Closes at once: drops the buffer, cancels the ops; for TCP the peer gets a reset.
    pub fn abort(&self) {
        self.inner.force_close(None);
    }

    /// Whether `close` or `abort` was called (or the connection was lost).
    pub fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    /// Stops calling `data_received` until [`StreamTransport::resume_reading`]; what is
    /// already in flight is held, never lost. Idempotent.
    pub fn pause_reading(&self) {
        self.inner.pause_reading();
    }

    /// Delivers what was held while paused, in order, then reads on. Idempotent.
    pub fn resume_reading(&self) {
        self.inner.resume_reading();
    }

    /// Whether the transport is reading (not paused, not closing).
    pub fn is_reading(&self) -> bool {
        self.inner.is_reading()
    }

    /// Bytes written but not yet acknowledged by the kernel.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.write_buffer_size()
    }

    /// `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.inner.write_buffer_limits()
    }

    /// Sets the water marks (asyncio defaults: a missing low is high/4, a missing high is
    /// 4 × low); high < low is an error.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        self.inner.set_write_buffer_limits(high, low)
    }

    /// asyncio's `get_extra_info`: `"peername"`, `"sockname"` (both read when the
    /// connection was made) or `"socket"` (the fd).
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "peername" => self.inner.io.peer.clone(),
            "sockname" => self.inner.io.local.clone(),
            "socket" | "fd" => Some(ExtraInfo::Fd(self.inner.io.raw_fd)),
            _ => None,
        }
    }

    /// The peer's IP address (TCP).
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        ip_of(&self.inner.io.peer)
    }

    /// The local IP address (TCP).
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        ip_of(&self.inner.io.local)
    }

    /// Replaces the protocol (later callbacks go to `protocol`).
    pub fn set_protocol(&self, protocol: Rc<RefCell<dyn crate::Protocol>>) {
        *self.inner.sink.protocol.borrow_mut() = ProtocolRef::Stream(protocol);
    }

    /// The current protocol, if it is a [`Protocol`](crate::Protocol) and the connection
    /// is not lost.
    pub fn get_protocol(&self) -> Option<Rc<RefCell<dyn crate::Protocol>>> {
        match &*self.inner.sink.protocol.borrow() {
            ProtocolRef::Stream(p) => Some(p.clone()),
            _ => None,
        }
    }

    /// The loop this transport runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.inner.io.port.event_loop().clone()
    }
}

impl fmt::Debug for StreamTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamTransport")
            .field("fd", &self.inner.io.raw_fd)
            .field("closing", &self.inner.is_closing())
            .field("reading", &self.inner.is_reading())
            .field("write_buffer", &self.inner.write_buffer_size())
            .finish()
    }
}

fn ip_of(info: &Option<ExtraInfo>) -> io::Result<std::net::SocketAddr> {
    match info {
        Some(ExtraInfo::Addr(a)) => Ok(*a),
        Some(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an IP socket",
        )),
        None => Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "the address was unknown when the connection was made",
        )),
    }
}
