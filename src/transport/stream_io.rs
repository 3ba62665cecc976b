//! The stream configuration of the transport core: its [`Io`] (a socket's receive and
//! send ops through the [`Port`]) and its [`Sink`] (a [`ProtocolRef`]).

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use bytes::Bytes;
use io_uring::cqueue;

use super::core::{Io, Recv, Sink, TAG_RECV, TAG_SEND};
use super::port::Port;
use super::{ExtraInfo, ProtocolRef};
use crate::buf::{IoBuf, Slice};
use crate::driver::{Completion, OpHandler};
use crate::event_loop::Flush;
use crate::fd::SharedFd;
use crate::op::{self, InFlight, OpKind};
use crate::sys::socket;

/// What kind of socket a stream transport runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    Tcp,
    Unix,
}

/// The receive in flight.
enum RecvOp {
    Idle,
    Multishot(InFlight<op::RecvMulti>),
    Single(InFlight<op::Recv<Vec<u8>>>),
}

struct Ops {
    fd: Option<SharedFd>,
    recv: RecvOp,
    /// The multishot receive in flight has a byte limit.
    limited: bool,
    spare: Option<Vec<u8>>,
    send: Option<InFlight<op::Send<Slice<Bytes>>>>,
}

/// A stream socket's ops and names.
pub(crate) struct StreamIo {
    pub(crate) port: Port,
    pub(crate) kind: StreamKind,
    pub(crate) raw_fd: i32,
    /// `peername` and `sockname`, read once at creation (as asyncio does): the fd number
    /// may name another file once the connection is over.
    pub(crate) peer: Option<ExtraInfo>,
    pub(crate) local: Option<ExtraInfo>,
    /// Our key in the loop's registry of open transports.
    pub(crate) live_key: Cell<Option<usize>>,
    ops: RefCell<Ops>,
}

impl StreamIo {
    pub(crate) fn new(port: Port, fd: SharedFd, kind: StreamKind) -> StreamIo {
        let raw_fd = fd.raw();
        let info = |addr: io::Result<socket::RawAddr>| {
            let addr = addr.ok()?;
            match kind {
                StreamKind::Tcp => addr.to_socket_addr().map(ExtraInfo::Addr),
                StreamKind::Unix => addr.to_unix_path().map(ExtraInfo::UnixPath),
            }
        };
        StreamIo {
            peer: info(socket::peer_addr(raw_fd)),
            local: info(socket::local_addr(raw_fd)),
            port,
            kind,
            raw_fd,
            live_key: Cell::new(None),
            ops: RefCell::new(Ops {
                fd: Some(fd),
                recv: RecvOp::Idle,
                limited: false,
                spare: None,
                send: None,
            }),
        }
    }

    /// Names the connection in messages: the peer's address (or, for an unnamed Unix
    /// peer, our own path) and the fd.
    pub(crate) fn describe(&self) -> String {
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

    fn cancel_recv_op(&self, ops: &Ops) {
        match &ops.recv {
            RecvOp::Multishot(m) => m.cancel(),
            RecvOp::Single(r) => r.cancel(),
            RecvOp::Idle => {}
        }
    }
}

impl Io for StreamIo {
    fn arm_recv(&self, handler: Rc<dyn OpHandler>, multishot: bool) -> io::Result<Option<bool>> {
        let mut ops = self.ops.borrow_mut();
        let Some(fd) = ops.fd.clone() else {
            return Ok(None);
        };
        let driver = self.port.driver();
        if multishot && let Some(ring) = self.port.stream_ring() {
            let limit = self.port.stream_limit();
            let recv = op::RecvMulti::new(fd, ring).limit(limit.unwrap_or(0));
            let recv = driver.submit(recv, handler, TAG_RECV).map_err(|(e, _)| e)?;
            ops.recv = RecvOp::Multishot(recv);
            ops.limited = limit.is_some();
            return Ok(Some(true));
        }
        let buf = ops
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(self.port.recv_buffer_size()));
        let recv = driver
            .submit(op::Recv::new(fd, buf), handler, TAG_RECV)
            .map_err(|(e, _)| e)?;
        ops.recv = RecvOp::Single(recv);
        Ok(Some(false))
    }

    fn complete_recv<R>(&self, c: Completion, f: impl FnOnce(Recv<'_>) -> R) -> R {
        let buffer_id = cqueue::buffer_select(c.flags);
        let (single, multishot, limited) = {
            let mut ops = self.ops.borrow_mut();
            let multishot = matches!(ops.recv, RecvOp::Multishot(_));
            let limited = multishot && ops.limited;
            if c.more() {
                (None, multishot, limited)
            } else {
                match std::mem::replace(&mut ops.recv, RecvOp::Idle) {
                    RecvOp::Single(r) => (Some(r.finish()), false, false),
                    RecvOp::Multishot(r) => {
                        drop(r.finish());
                        (None, true, limited)
                    }
                    RecvOp::Idle => (None, multishot, limited),
                }
            }
        };
        let ring = buffer_id.and_then(|_| self.port.stream_ring());
        if c.result > 0 {
            let n = c.result as usize;
            if let (Some(bid), Some(ring)) = (buffer_id, &ring) {
                let out = f(Recv::Data {
                    bytes: ring.take(bid, n),
                    full: false,
                });
                ring.recycle(bid);
                return out;
            }
            if let Some(recv) = single {
                let (_, buf) = recv.complete(Ok(n as u32));
                let full = buf.bytes_init() == buf.capacity();
                let out = f(Recv::Data { bytes: &buf, full });
                let mut ops = self.ops.borrow_mut();
                if ops.spare.is_none() {
                    ops.spare = Some(buf);
                }
                return out;
            }
            return f(Recv::Data {
                bytes: &[],
                full: false,
            });
        }
        if let Some(recv) = single {
            let (_, buf) = recv.complete(Ok(0));
            self.ops.borrow_mut().spare = Some(buf);
        }
        if let (Some(bid), Some(ring)) = (buffer_id, &ring) {
            // Error CQEs may carry a buffer too; it must go back.
            ring.take(bid, 0);
            ring.recycle(bid);
        }
        if limited && c.result == -libc::EINVAL {
            // A kernel before 6.17 refuses the byte limit, not multishot receives: arm
            // them unlimited (loop-wide) and read on.
            self.port.refuse_stream_limit();
            return f(Recv::Interrupted);
        }
        f(Recv::empty(&c, multishot))
    }

    fn cancel_recv(&self) {
        self.cancel_recv_op(&self.ops.borrow());
    }

    fn send(&self, handler: Rc<dyn OpHandler>, buf: Slice<Bytes>, quiet: bool) -> io::Result<bool> {
        let mut ops = self.ops.borrow_mut();
        let Some(fd) = ops.fd.clone() else {
            return Ok(false);
        };
        // Quiet (`at_once`, no CQE when the socket takes it whole) only when the core
        // says nothing waits on this send; otherwise one that waits in the kernel for room.
        let driver = self.port.driver();
        let quiet = quiet && driver.quiet_ops() && i32::try_from(buf.end() - buf.begin()).is_ok();
        let pushed = if quiet {
            driver.submit_quiet(op::Send::at_once(fd, buf), handler, TAG_SEND)
        } else {
            driver.submit(op::Send::new(fd, buf), handler, TAG_SEND)
        };
        ops.send = Some(pushed.map_err(|(e, _)| e)?);
        Ok(true)
    }

    fn complete_send(&self, c: Completion) -> Option<(io::Result<usize>, Slice<Bytes>)> {
        let send = self.ops.borrow_mut().send.take()?;
        Some(send.complete(c))
    }

    fn cancel_all(&self) {
        let ops = self.ops.borrow();
        self.cancel_recv_op(&ops);
        if let Some(send) = &ops.send {
            send.cancel();
        }
    }

    fn shutdown_write(&self) {
        if let Some(fd) = &self.ops.borrow().fd {
            let _ = socket::shutdown(fd.raw(), libc::SHUT_WR);
        }
    }

    fn on_abort(&self) {
        if self.kind == StreamKind::Tcp {
            // An abort resets the connection when the fd closes.
            let _ = socket::set_linger_zero(self.raw_fd);
        }
    }

    fn take_fd(&self) -> Option<SharedFd> {
        let mut ops = self.ops.borrow_mut();
        ops.spare = None;
        ops.fd.take()
    }

    fn unregister_live(&self) {
        if let Some(key) = self.live_key.take() {
            self.port.unregister_live(key);
        }
    }

    fn schedule_flush(&self, flush: Rc<dyn Flush>) {
        self.port.schedule_flush(flush);
    }

    fn call_soon(&self, f: Box<dyn FnOnce()>) {
        self.port.call_soon(f);
    }

    fn report(&self, doing: &str, err: &io::Error) {
        self.port.report(
            format!(
                "fatal error on the stream transport {} while {doing}",
                self.describe()
            ),
            err,
        );
    }

    fn closed_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotConnected,
            format!("write on a closed transport {}", self.describe()),
        )
    }

    fn eof_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("write after write_eof on the transport {}", self.describe()),
        )
    }
}

impl Drop for StreamIo {
    fn drop(&mut self) {
        self.unregister_live();
    }
}

/// A stream transport's protocol, whether `connection_made` was delivered, and the
/// server's `on_lost` hook.
pub(crate) struct StreamSink {
    pub(crate) protocol: RefCell<ProtocolRef>,
    pub(crate) made: Cell<bool>,
    pub(crate) on_lost: RefCell<Option<Box<dyn FnOnce()>>>,
}

impl StreamSink {
    pub(crate) fn protocol(&self) -> ProtocolRef {
        self.protocol.borrow().clone()
    }
}

impl Sink for StreamSink {
    type Detached = (ProtocolRef, Option<Box<dyn FnOnce()>>);

    fn data_received(&self, data: &[u8]) -> io::Result<()> {
        self.protocol().data_received(data)
    }

    fn eof_received(&self) -> bool {
        self.protocol().eof_received()
    }

    fn try_pause_writing(&self) -> bool {
        self.protocol().try_pause_writing()
    }

    fn try_resume_writing(&self) -> bool {
        self.protocol().try_resume_writing()
    }

    fn connection_lost(&self, err: Option<io::Error>) {
        let protocol = std::mem::replace(&mut *self.protocol.borrow_mut(), ProtocolRef::Gone);
        if self.made.get() {
            protocol.connection_lost(err);
        }
    }

    fn after_lost(&self) {
        if let Some(f) = self.on_lost.borrow_mut().take() {
            f();
        }
    }

    fn detach(&self) -> Self::Detached {
        let protocol = std::mem::replace(&mut *self.protocol.borrow_mut(), ProtocolRef::Gone);
        (protocol, self.on_lost.borrow_mut().take())
    }
}
