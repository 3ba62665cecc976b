//! The stream transport (TCP and Unix stream sockets): a state machine driven by the
//! completions of its receive and send ops.
//!
//! Reading: one receive in flight. With the loop's buffer ring it is a multishot `recv`
//! (one SQE for many completions, no buffer held while idle); otherwise a single-shot
//! `recv` into an owned buffer, re-armed after each delivery. `ENOBUFS` (the ring ran dry)
//! and a multishot op ending without `F_MORE` both re-arm; neither is end-of-stream.
//! `pause_reading` cancels a multishot op (completions that still arrive are held) and
//! simply does not re-arm a single-shot one.
//!
//! Writing: `write` appends to a backlog and asks the loop for a flush before its next
//! submit, so everything written in one iteration leaves in one `send`. One send is in
//! flight at a time; a short send continues from where it stopped; the backlog follows
//! as the next single send. The write-buffer size (unsent part of the send in flight plus
//! the backlog) drives `pause_writing`/`resume_writing`.
//!
//! Ending: `close` stops reading, flushes, then ends with `connection_lost(None)`; `abort`
//! drops the backlog, cancels both ops, and (TCP) makes the close send a reset. Either
//! way `connection_lost` is called once, last, through `call_soon`, and the fd closes when
//! the last op holding it has completed.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use io_uring::cqueue;

use super::live::{Live, LiveTransports};
use super::{ExtraInfo, ProtocolRef, WaterMarks, is_peer_reset};
use crate::buf::IoBuf;
use crate::buf::Slice;
use crate::driver::{Completion, OpHandler};
use crate::buf::rings::RecvRings;
use crate::event_loop::{EventLoop, ExceptionContext, Flush};
use crate::fd::SharedFd;
use crate::op::{self, InFlight, OpKind};
use crate::sys::socket;

const TAG_RECV: u32 = 0;
const TAG_SEND: u32 = 1;

/// What kind of socket a stream transport runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    Tcp,
    Unix,
}

/// What arrived while reading was paused, delivered in order on resume.
enum Held {
    Data(Vec<u8>),
    Eof,
    Error(io::Error),
}

/// The receive in flight.
enum ReadOp {
    Idle,
    /// Multishot recv from the buffer ring; the op's fd clone keeps the number from reuse.
    Multishot(InFlight<op::RecvMulti>),
    /// Single-shot recv into the op's own buffer.
    Single(InFlight<op::Recv<Vec<u8>>>),
}

impl ReadOp {
    /// Cancels the receive in flight; false if there is none.
    fn cancel(&self) -> bool {
        match self {
            ReadOp::Multishot(recv) => recv.cancel(),
            ReadOp::Single(recv) => recv.cancel(),
            ReadOp::Idle => return false,
        }
        true
    }
}

struct State {
    fd: Option<SharedFd>,
    // Reading.
    reading: bool,
    read: ReadOp,
    cancel_requested: bool,
    multishot: bool,
    spare_buf: Option<Vec<u8>>,
    held: VecDeque<Held>,
    eof: bool,
    // Writing.
    backlog: BytesMut,
    send: Option<InFlight<op::Send<Slice<Bytes>>>>,
    /// Bytes of the send in flight not yet acknowledged.
    in_flight: usize,
    flush_scheduled: bool,
    marks: WaterMarks,
    // Lifecycle.
    closing: bool,
    eof_requested: bool,
    eof_sent: bool,
    lost_scheduled: bool,
}

impl State {
    fn write_buffer_size(&self) -> usize {
        self.backlog.len() + self.in_flight
    }

    /// Whether a completion must be held rather than delivered: reading is paused, or
    /// earlier completions are still held (resume delivers them through `call_soon`, and
    /// a multishot receive whose cancel had not landed yet may complete before that).
    fn must_hold(&self) -> bool {
        !self.reading || !self.held.is_empty()
    }
}

pub(crate) struct StreamInner {
    event_loop: EventLoop,
    kind: StreamKind,
    protocol: RefCell<ProtocolRef>,
    st: RefCell<State>,
    raw_fd: i32,
    /// `peername` and `sockname`, read once at creation (as asyncio does): the fd number
    /// may name another file once the connection is over.
    peer: Option<ExtraInfo>,
    local: Option<ExtraInfo>,
    on_lost: RefCell<Option<Box<dyn FnOnce()>>>,
    /// Set once connection_made was delivered.
    made: Cell<bool>,
    /// Our key in the loop's registry of open transports (see [`Live`]).
    live_key: Cell<Option<usize>>,
    /// The loop's receive buffer rings, looked up once (read on every receive).
    rings: Rc<RecvRings>,
}

/// A stream connection (TCP or Unix) and the protocol it feeds. Cheap to clone.
///
/// Made by [`EventLoop::create_server`] / [`EventLoop::create_connection`] and their Unix
/// twins; handed to [`Protocol::connection_made`](crate::Protocol::connection_made).
#[derive(Clone)]
pub struct StreamTransport {
    pub(crate) inner: Rc<StreamInner>,
}

impl StreamTransport {
    /// Wraps a connected socket. Nothing happens until [`StreamTransport::start`].
    pub(crate) fn new(
        event_loop: &EventLoop,
        fd: SharedFd,
        kind: StreamKind,
        protocol: ProtocolRef,
    ) -> Self {
        let net = event_loop.net_config();
        let raw_fd = fd.raw();
        let info = |addr: io::Result<socket::RawAddr>| {
            let addr = addr.ok()?;
            match kind {
                StreamKind::Tcp => addr.to_socket_addr().map(ExtraInfo::Addr),
                StreamKind::Unix => addr.to_unix_path().map(ExtraInfo::UnixPath),
            }
        };
        let peer = info(socket::peer_addr(raw_fd));
        let local = info(socket::local_addr(raw_fd));
        let inner = Rc::new(StreamInner {
            event_loop: event_loop.clone(),
            kind,
            protocol: RefCell::new(protocol),
            st: RefCell::new(State {
                fd: Some(fd),
                reading: true,
                read: ReadOp::Idle,
                cancel_requested: false,
                multishot: net.multishot_recv,
                spare_buf: None,
                held: VecDeque::new(),
                eof: false,
                backlog: BytesMut::new(),
                send: None,
                in_flight: 0,
                flush_scheduled: false,
                marks: WaterMarks::default(),
                closing: false,
                eof_requested: false,
                eof_sent: false,
                lost_scheduled: false,
            }),
            raw_fd,
            peer,
            local,
            on_lost: RefCell::new(None),
            made: Cell::new(false),
            live_key: Cell::new(None),
            rings: RecvRings::of(event_loop),
        });
        let weak: std::rc::Weak<dyn Live> = Rc::downgrade(&inner) as std::rc::Weak<StreamInner>;
        inner
            .live_key
            .set(Some(LiveTransports::register(event_loop, weak)));
        StreamTransport { inner }
    }

    /// Called once after `connection_lost` (servers count their connections with it).
    pub(crate) fn set_on_lost(&self, f: Box<dyn FnOnce()>) {
        *self.inner.on_lost.borrow_mut() = Some(f);
    }

    /// Calls `connection_made` now, then starts reading (unless the protocol paused it).
    pub(crate) fn start(&self) {
        self.inner.made.set(true);
        let protocol = self.inner.protocol.borrow().clone();
        protocol.connection_made(self);
        StreamInner::arm_read(&self.inner);
    }

    /// Schedules [`StreamTransport::start`] through `call_soon` (server side, as asyncio).
    pub(crate) fn start_soon(&self) {
        let t = self.clone();
        self.inner.event_loop.call_soon(move || t.start());
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
        self.inner.write_eof()
    }

    /// Stream sockets can always half-close.
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes the transport: stops reading, flushes what is buffered, then
    /// `connection_lost(None)`. Calling it again does nothing.
    pub fn close(&self) {
        StreamInner::close(&self.inner);
    }

    /// Closes at once: drops the buffer, cancels the ops; for TCP the peer gets a reset.
    pub fn abort(&self) {
        StreamInner::force_close(&self.inner, None);
    }

    /// Whether `close` or `abort` was called (or the connection was lost).
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().closing
    }

    /// Stops calling `data_received` until [`StreamTransport::resume_reading`]; what is
    /// already in flight is held, never lost. Idempotent.
    pub fn pause_reading(&self) {
        StreamInner::pause_reading(&self.inner);
    }

    /// Delivers what was held while paused, in order, then reads on. Idempotent.
    pub fn resume_reading(&self) {
        StreamInner::resume_reading(&self.inner);
    }

    /// Whether the transport is reading (not paused, not closing).
    pub fn is_reading(&self) -> bool {
        let st = self.inner.st.borrow();
        st.reading && !st.closing
    }

    /// Bytes written but not yet acknowledged by the kernel.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.st.borrow().write_buffer_size()
    }

    /// `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        let st = self.inner.st.borrow();
        st.marks.limits()
    }

    /// Sets the water marks (asyncio defaults: a missing low is high/4, a missing high is
    /// 4 × low); high < low is an error.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        self.inner.st.borrow_mut().marks.set(high, low)?;
        StreamInner::maybe_pause(&self.inner);
        StreamInner::maybe_resume(&self.inner);
        Ok(())
    }

    /// asyncio's `get_extra_info`: `"peername"`, `"sockname"` (both read when the
    /// connection was made) or `"socket"` (the fd).
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "peername" => self.inner.peer.clone(),
            "sockname" => self.inner.local.clone(),
            "socket" | "fd" => Some(ExtraInfo::Fd(self.inner.raw_fd)),
            _ => None,
        }
    }

    /// The peer's IP address (TCP).
    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        ip_of(&self.inner.peer)
    }

    /// The local IP address (TCP).
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        ip_of(&self.inner.local)
    }

    /// Replaces the protocol (later callbacks go to `protocol`).
    pub fn set_protocol(&self, protocol: Rc<RefCell<dyn crate::Protocol>>) {
        *self.inner.protocol.borrow_mut() = ProtocolRef::Stream(protocol);
    }

    /// The current protocol, if it is a [`Protocol`](crate::Protocol) and the connection
    /// is not lost.
    pub fn get_protocol(&self) -> Option<Rc<RefCell<dyn crate::Protocol>>> {
        match &*self.inner.protocol.borrow() {
            ProtocolRef::Stream(p) => Some(p.clone()),
            _ => None,
        }
    }

    /// The loop this transport runs on.
    pub fn get_loop(&self) -> EventLoop {
        self.inner.event_loop.clone()
    }
}

impl fmt::Debug for StreamTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("StreamTransport")
            .field("fd", &self.inner.raw_fd)
            .field("closing", &st.closing)
            .field("reading", &st.reading)
            .field("write_buffer", &st.write_buffer_size())
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

impl StreamInner {
    /// Names the connection in messages: the peer's address (or, for an unnamed Unix
    /// peer, our own path) and the fd.
    fn describe(&self) -> String {
        let name = |info: &Option<ExtraInfo>| match info {
            Some(ExtraInfo::Addr(a)) => Some(a.to_string()),
            Some(ExtraInfo::UnixPath(p)) if !p.as_os_str().is_empty() => {
                Some(p.display().to_string())
            }
            _ => None,
        };
        match (name(&self.peer), name(&self.local)) {
            (Some(peer), _) => format!("to {peer} (fd {})", self.raw_fd),
            (None, Some(local)) => format!("on {local} (fd {})", self.raw_fd),
            (None, None) => format!("(fd {})", self.raw_fd),
        }
    }

    fn protocol(&self) -> ProtocolRef {
        self.protocol.borrow().clone()
    }

    // ----- reading -----

    fn arm_read(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if !st.reading || st.closing || st.eof || st.lost_scheduled {
            return;
        }
        if !matches!(st.read, ReadOp::Idle) {
            return;
        }
        let Some(fd) = st.fd.clone() else {
            return;
        };
        let driver = self.event_loop.driver().clone();
        let handler: Rc<dyn OpHandler> = self.clone();
        if st.multishot
            && let Some(ring) = self.rings.stream()
        {
            match driver.submit(op::RecvMulti::new(fd, ring), handler, TAG_RECV) {
                Ok(recv) => st.read = ReadOp::Multishot(recv),
                Err((e, _)) => {
                    drop(st);
                    Self::fatal_error(self, e, "arming a receive");
                }
            }
            return;
        }
        let size = self.event_loop.net_config().recv_buffer_size;
        let buf = st
            .spare_buf
            .take()
            .unwrap_or_else(|| Vec::with_capacity(size));
        match driver.submit(op::Recv::new(fd, buf), handler, TAG_RECV) {
            Ok(recv) => st.read = ReadOp::Single(recv),
            Err((e, _)) => {
                drop(st);
                Self::fatal_error(self, e, "arming a receive");
            }
        }
    }

    fn on_recv(self: &Rc<Self>, c: Completion) {
        let ring = self.rings.stream();
        let buffer_id = cqueue::buffer_select(c.flags);
        let mut st = self.st.borrow_mut();
        let last = !c.more();
        let mut single = None;
        if last {
            match std::mem::replace(&mut st.read, ReadOp::Idle) {
                ReadOp::Single(recv) => single = Some(recv.finish()),
                ReadOp::Multishot(recv) => drop(recv.finish()),
                ReadOp::Idle => {}
            }
        }
        if last {
            st.cancel_requested = false;
        }

        // The bytes of this completion (from the ring or the owned buffer).
        let mut owned = None;
        let data: &[u8] = if c.result > 0 {
            match (buffer_id, &ring, single) {
                (Some(bid), Some(ring), _) => ring.take(bid, c.result as usize),
                (_, _, Some(recv)) => {
                    let (_, buf) = recv.complete(Ok(c.result as u32));
                    owned = Some(buf);
                    owned.as_deref().unwrap_or(&[])
                }
                _ => &[],
            }
        } else {
            if let Some(recv) = single {
                let (_, buf) = recv.complete(Ok(0));
                st.spare_buf = Some(buf);
            }
            &[]
        };
        let recycle = |ring: &Option<Rc<crate::buf::ring::BufRing>>| {
            if let (Some(bid), Some(ring)) = (buffer_id, ring) {
                if c.result <= 0 {
                    // Error CQEs may carry a buffer too; it must go back.
                    ring.take(bid, 0);
                }
                ring.recycle(bid);
            }
        };

        if c.result > 0 {
            if st.lost_scheduled || st.closing {
                drop(st);
            } else if st.must_hold() {
                st.held.push_back(Held::Data(data.to_vec()));
                drop(st);
            } else {
                drop(st);
                let protocol = self.protocol();
                if let Err(e) = protocol.data_received(data) {
                    recycle(&ring);
                    Self::fatal_error(self, e, "delivering data");
                    return;
                }
            }
            recycle(&ring);
            if let Some(buf) = owned {
                let mut st = self.st.borrow_mut();
                if st.spare_buf.is_none() {
                    st.spare_buf = Some(buf);
                }
            }
            if last {
                Self::arm_read(self);
            }
            self.maybe_release_fd();
            return;
        }
        recycle(&ring);
        match c.result {
            0 => {
                st.eof = true;
                if st.lost_scheduled || st.closing {
                    drop(st);
                } else if st.must_hold() {
                    st.held.push_back(Held::Eof);
                    drop(st);
                } else {
                    drop(st);
                    Self::handle_eof(self);
                }
            }
            e if e == -libc::ENOBUFS => {
                // The buffer ring ran dry: backpressure, not end of stream. Buffers are
                // recycled as each completion is delivered, so re-arming now finds some.
                drop(st);
                if last {
                    Self::arm_read(self);
                }
            }
            e if e == -libc::ECANCELED => {
                // We cancelled (pause, close or abort); resume re-arms if needed.
                drop(st);
                Self::arm_read(self);
            }
            e if e == -libc::EINVAL && st.multishot => {
                // Multishot recv unsupported here: fall back to single-shot for good.
                st.multishot = false;
                drop(st);
                Self::arm_read(self);
            }
            e => {
                let err = io::Error::from_raw_os_error(-e);
                if st.lost_scheduled || st.closing {
                    drop(st);
                } else if st.must_hold() {
                    st.held.push_back(Held::Error(err));
                    drop(st);
                } else {
                    drop(st);
                    Self::fatal_error(self, err, "receiving");
                }
            }
        }
        self.maybe_release_fd();
    }

    fn handle_eof(self: &Rc<Self>) {
        let keep_open = self.protocol().eof_received();
        if !keep_open {
            Self::close(self);
        }
    }

    fn pause_reading(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if !st.reading || st.closing {
            return;
        }
        st.reading = false;
        if let ReadOp::Multishot(recv) = &st.read {
            // Stop the stream of completions; what still arrives is held.
            recv.cancel();
            st.cancel_requested = true;
        }
    }

    fn resume_reading(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.reading || st.closing {
                return;
            }
            st.reading = true;
            if st.held.is_empty() {
                drop(st);
                Self::arm_read(self);
                return;
            }
        }
        let this = self.clone();
        self.event_loop.call_soon(move || Self::deliver_held(&this));
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
                    if let Err(e) = self.protocol().data_received(&data) {
                        Self::fatal_error(self, e, "delivering data");
                        return;
                    }
                }
                Held::Eof => Self::handle_eof(self),
                Held::Error(e) => {
                    Self::fatal_error(self, e, "receiving");
                    return;
                }
            }
        }
        Self::arm_read(self);
    }

    // ----- writing -----

    /// Appends `parts` to the backlog as one write.
    ///
    /// As in asyncio's proactor transport, the first write on an idle transport starts a
    /// send (here: at the loop's next flush) and is not judged for flow control — a send
    /// that completes at once must not pause; it is judged when it completes short. A
    /// write that queues behind earlier bytes (a send in flight, or a backlog waiting for
    /// the flush) is judged at once, so a protocol writing in a loop sees
    /// `pause_writing` as soon as the buffer passes the high mark.
    fn write<'a>(self: &Rc<Self>, parts: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        if st.closing || st.lost_scheduled {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("write on a closed transport {}", self.describe()),
            ));
        }
        if st.eof_requested {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("write after write_eof on the transport {}", self.describe()),
            ));
        }
        let queued_behind = st.send.is_some() || !st.backlog.is_empty();
        for data in parts {
            st.backlog.extend_from_slice(data);
        }
        if st.backlog.is_empty() {
            return Ok(());
        }
        let schedule = st.send.is_none() && !st.flush_scheduled;
        if schedule {
            st.flush_scheduled = true;
        }
        drop(st);
        if schedule {
            self.event_loop.schedule_flush(self.clone());
        }
        if queued_behind {
            Self::maybe_pause(self);
        }
        Ok(())
    }

    /// Sends the backlog as one send, if no send is in flight.
    fn start_send(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if st.send.is_some() || st.backlog.is_empty() {
            return;
        }
        let Some(fd) = st.fd.clone() else {
            st.backlog.clear();
            return;
        };
        let data = st.backlog.split().freeze();
        st.in_flight = data.len();
        // Quiet when nothing waits on this send (no close, write_eof or paused protocol
        // to act on its completion): the enter that submits it may then sleep through it.
        let quiet = self.event_loop.driver().quiet_ops()
            && !st.closing
            && !st.eof_requested
            && !st.marks.paused()
            && i32::try_from(data.len()).is_ok();
        self.push_send(&mut st, fd, data.slice(..), quiet);
    }

    /// Pushes a send of `buf`: a quiet one ([`op::Send::at_once`], no CQE when it takes
    /// everything) or one that waits in the kernel for room.
    fn push_send(self: &Rc<Self>, st: &mut State, fd: SharedFd, buf: Slice<Bytes>, quiet: bool) {
        let send = if quiet {
            op::Send::at_once(fd, buf)
        } else {
            op::Send::new(fd, buf)
        };
        let driver = &self.event_loop.driver();
        // A quiet one is `at_once` and nothing waits on it (see `start_send`).
        let pushed = if quiet {
            driver.submit_quiet(send, self.clone(), TAG_SEND)
        } else {
            driver.submit(send, self.clone(), TAG_SEND)
        };
        match pushed {
            Ok(send) => st.send = Some(send),
            Err((e, _)) => {
                let this = self.clone();
                self.event_loop
                    .call_soon(move || Self::fatal_error(&this, e, "sending"));
            }
        }
    }

    fn on_send(self: &Rc<Self>, c: Completion) {
        let mut st = self.st.borrow_mut();
        let Some(send) = st.send.take() else {
            return;
        };
        let (result, slice) = send.complete(c);
        let result = match result {
            // An `at_once` send found no room: send it all again, waiting for room.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(0),
            r => r,
        };
        match result {
            Ok(n) => {
                let (begin, end) = (slice.begin() + n, slice.end());
                st.in_flight = end - begin;
                if begin < end && !st.lost_scheduled {
                    // Short send: continue from where it stopped, before anything newer.
                    if let Some(fd) = st.fd.clone() {
                        let rest = slice.into_inner().slice(begin..end);
                        self.push_send(&mut st, fd, rest, false);
                    }
                    drop(st);
                    Self::maybe_pause(self);
                    return;
                }
                st.in_flight = 0;
                let more = !st.backlog.is_empty() && !st.lost_scheduled;
                if more && !st.flush_scheduled {
                    st.flush_scheduled = true;
                    drop(st);
                    self.event_loop.schedule_flush(self.clone());
                } else {
                    drop(st);
                }
                Self::maybe_resume(self);
                Self::after_flush(self);
            }
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {
                st.in_flight = 0;
                drop(st);
            }
            Err(e) => {
                st.in_flight = 0;
                drop(st);
                Self::fatal_error(self, e, "sending");
            }
        }
        self.maybe_release_fd();
    }

    /// After the buffer drained: a pending write_eof or close takes effect.
    fn after_flush(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if st.send.is_some() || !st.backlog.is_empty() {
            return;
        }
        if st.eof_requested && !st.eof_sent {
            st.eof_sent = true;
            if let Some(fd) = &st.fd {
                let _ = socket::shutdown(fd.raw(), libc::SHUT_WR);
            }
        }
        if st.closing && !st.lost_scheduled {
            drop(st);
            Self::schedule_lost(self, None);
        }
    }

    fn maybe_pause(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        let size = st.write_buffer_size();
        if !st.marks.pause_due(size) {
            return;
        }
        drop(st);
        if !self.protocol().try_pause_writing() {
            let this = self.clone();
            self.event_loop.call_soon(move || {
                this.protocol().try_pause_writing();
            });
        }
    }

    fn maybe_resume(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        let size = st.write_buffer_size();
        if !st.marks.resume_due(size) {
            return;
        }
        drop(st);
        if !self.protocol().try_resume_writing() {
            let this = self.clone();
            self.event_loop.call_soon(move || {
                this.protocol().try_resume_writing();
            });
        }
    }

    fn write_eof(self: &Rc<Self>) -> io::Result<()> {
        {
            let mut st = self.st.borrow_mut();
            if st.closing || st.eof_requested {
                return Ok(());
            }
            st.eof_requested = true;
        }
        Self::after_flush(self);
        Ok(())
    }

    // ----- ending -----

    fn close(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.closing {
                return;
            }
            st.closing = true;
            st.reading = false;
            if st.read.cancel() {
                st.cancel_requested = true;
            }
        }
        Self::after_flush(self);
    }

    /// Ends the connection now (abort, or a fatal error).
    fn force_close(self: &Rc<Self>, err: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            if st.lost_scheduled {
                return;
            }
            st.closing = true;
            st.reading = false;
            st.backlog.clear();
            st.held.clear();
            if err.is_none() && self.kind == StreamKind::Tcp {
                // An abort resets the connection when the fd closes.
                let _ = socket::set_linger_zero(self.raw_fd);
            }
        }
        Self::schedule_lost(self, err);
    }

    fn fatal_error(self: &Rc<Self>, err: io::Error, doing: &str) {
        if !is_peer_reset(&err) {
            self.event_loop.call_exception_handler(ExceptionContext {
                message: format!(
                    "fatal error on the stream transport {} while {doing}",
                    self.describe()
                ),
                error: Some(io::Error::new(err.kind(), err.to_string()).into()),
            });
        }
        Self::force_close(self, Some(err));
    }

    fn schedule_lost(self: &Rc<Self>, err: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            if st.lost_scheduled {
                return;
            }
            st.lost_scheduled = true;
            st.closing = true;
            if st.read.cancel() {
                st.cancel_requested = true;
            }
            if let Some(send) = &st.send {
                send.cancel();
            }
        }
        let this = self.clone();
        self.event_loop
            .call_soon(move || this.call_connection_lost(err));
    }

    fn call_connection_lost(self: &Rc<Self>, err: Option<io::Error>) {
        if let Some(key) = self.live_key.take() {
            LiveTransports::unregister(&self.event_loop, key);
        }
        let protocol = std::mem::replace(&mut *self.protocol.borrow_mut(), ProtocolRef::Gone);
        if self.made.get() {
            protocol.connection_lost(err);
        }
        drop(protocol);
        {
            let mut st = self.st.borrow_mut();
            st.held.clear();
            st.spare_buf = None;
        }
        self.maybe_release_fd();
        if let Some(f) = self.on_lost.borrow_mut().take() {
            f();
        }
    }

    /// Drops our reference to the fd once the connection is over; the ops in flight hold
    /// theirs, so the fd closes after the last CQE that names it.
    fn maybe_release_fd(&self) {
        let mut st = self.st.borrow_mut();
        if st.lost_scheduled && matches!(*self.protocol.borrow(), ProtocolRef::Gone) {
            let fd = st.fd.take();
            drop(st);
            drop(fd);
        }
    }
}

impl Live for StreamInner {
    fn release(&self) {
        self.live_key.set(None);
        let protocol = std::mem::replace(&mut *self.protocol.borrow_mut(), ProtocolRef::Gone);
        let on_lost = self.on_lost.borrow_mut().take();
        let fd = {
            let mut st = self.st.borrow_mut();
            st.closing = true;
            st.lost_scheduled = true;
            st.reading = false;
            st.backlog.clear();
            st.held.clear();
            st.spare_buf = None;
            st.fd.take()
        };
        // Dropped outside the borrows: the protocol may hold the last transport clone.
        drop(fd);
        drop(on_lost);
        drop(protocol);
    }
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        if let Some(key) = self.live_key.take() {
            LiveTransports::unregister(&self.event_loop, key);
        }
    }
}

impl OpHandler for StreamInner {
    fn on_completion(self: Rc<Self>, tag: u32, completion: Completion) {
        match tag {
            TAG_RECV => Self::on_recv(&self, completion),
            TAG_SEND => Self::on_send(&self, completion),
            _ => {}
        }
    }
}

impl Flush for StreamInner {
    fn flush(self: Rc<Self>) {
        self.st.borrow_mut().flush_scheduled = false;
        Self::start_send(&self);
    }
}
