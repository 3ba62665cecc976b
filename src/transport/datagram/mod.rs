//! The datagram transport (UDP): one receive in flight; each `sendto` is its own `sendmsg`
//! op. Errors of either go to `error_received` and the endpoint stays open (ICMP
//! port-unreachable on a connected socket shows up this way).
//!
//! Receiving: with the loop's datagram buffer ring (io_uring) it is a multishot `recvmsg`:
//! one SQE, and one CQE per datagram carrying a ring buffer with the source address and
//! the payload, so datagrams queued on the socket are all reaped by one `io_uring_enter`
//! instead of one enter each. It is re-armed when it ends (`ENOBUFS` when the ring ran
//! dry, an error, or the kernel ending it). Without the ring (epoll engine, old kernels)
//! it is a single-shot `recvmsg` into an owned buffer, re-armed after each datagram.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use io_uring::cqueue;
use slab::Slab;

use super::flow::{Told, WaterMarks};
use super::live::Live;
use super::port::Port;
use crate::driver::{Completion, OpHandler};
use crate::event_loop::EventLoop;
use crate::fd::SharedFd;
use crate::op::{self, InFlight};
use crate::protocol::DatagramProtocol;
use crate::sys::socket::{self, RawAddr};

const TAG_RECV: u32 = 0;
/// Send ops are tagged `TAG_SEND_BASE + their slab index`.
const TAG_SEND_BASE: u32 = 1;
/// Large enough for any UDP payload (65,507 bytes over IPv4, 65,527 over IPv6).
const DATAGRAM_BUFFER: usize = 65_536;
/// How many spent sends a transport keeps for reuse.
const SPARE_SENDS: usize = 32;
/// Larger send buffers are freed rather than kept.
const SPARE_SEND_CAPACITY: usize = 4096;
/// One buffer of the loop's datagram ring: room for the largest datagram.
pub(crate) const DATAGRAM_RING_BUFFER: usize = op::recvmsg_multi_buffer(DATAGRAM_BUFFER);

/// The receive in flight.
enum RecvOp {
    /// Single-shot `recvmsg` into the op's own buffer.
    Single(InFlight<op::RecvMsg<Vec<u8>>>),
    /// Multishot `recvmsg` from the datagram ring; the op's fd clone keeps the number
    /// from reuse.
    Multi(InFlight<op::RecvMsgMulti>),
}

impl RecvOp {
    fn cancel(&self) {
        match self {
            RecvOp::Single(recv) => recv.cancel(),
            RecvOp::Multi(recv) => recv.cancel(),
        }
    }
}

struct State {
    fd: Option<SharedFd>,
    recv: Option<RecvOp>,
    /// Whether to try a multishot receive (cleared if the kernel refuses one).
    multishot: bool,
    spare: Option<Vec<u8>>,
    /// The header of the last single-shot receive, for the next one.
    spare_recv_parts: Option<Box<op::MsgParts>>,
    sends: Slab<InFlight<op::SendMsg<Vec<u8>>>>,
    /// The send in `sends` that waits in the kernel for room in the socket, if any. There
    /// is at most one: the kernel wakes waiting sends in no particular order (LIFO, in
    /// fact), so the rest wait here, in `held`, and leave one by one.
    waiting: Option<usize>,
    /// Datagrams behind the waiting send, in order, not pushed yet.
    held: VecDeque<op::SendMsg<Vec<u8>>>,
    /// How many at the front of `held` are `at_once` sends that found no room; they were
    /// written before the rest of `held`.
    held_retries: usize,
    /// Buffers and headers of completed sends, reused by the next ones so a steady echo
    /// allocates nothing per datagram (at most [`SPARE_SENDS`], buffers up to
    /// [`SPARE_SEND_CAPACITY`] bytes).
    spare_sends: Vec<(Vec<u8>, Box<op::MsgParts>)>,
    buffer_size: usize,
    marks: WaterMarks,
    /// What the protocol was last told (`pause_writing` / `resume_writing`).
    told: Told,
    /// The error that ends the endpoint, for `connection_lost`.
    fatal: Option<io::Error>,
    closing: bool,
    /// `abort` was called: queued sends are cancelled, not pushed again.
    aborted: bool,
    lost_scheduled: bool,
}

impl State {
    /// Drops the datagrams held behind the waiting send (abort, or a closed loop), and
    /// their bytes from the buffer size.
    fn drop_held(&mut self) {
        let dropped: usize = self.held.drain(..).map(|s| s.len()).sum();
        self.held_retries = 0;
        self.buffer_size = self.buffer_size.saturating_sub(dropped);
    }
}

pub(crate) struct DatagramInner {
    port: Port,
    protocol: RefCell<Option<Rc<RefCell<dyn DatagramProtocol>>>>,
    st: RefCell<State>,
    raw_fd: i32,
    peer: Option<SocketAddr>,
    made: Cell<bool>,
    /// Our key in the loop's registry of open transports (see [`Live`]).
    live_key: Cell<Option<usize>>,
}

/// A datagram endpoint and the protocol it feeds. Cheap to clone.
#[derive(Clone)]
pub struct DatagramTransport {
    inner: Rc<DatagramInner>,
}

impl DatagramTransport {
    pub(crate) fn new(
        event_loop: &EventLoop,
        fd: SharedFd,
        peer: Option<SocketAddr>,
        protocol: Rc<RefCell<dyn DatagramProtocol>>,
    ) -> Self {
        let raw_fd = fd.raw();
        let port = Port::new(event_loop);
        let inner = Rc::new(DatagramInner {
            protocol: RefCell::new(Some(protocol)),
            st: RefCell::new(State {
                fd: Some(fd),
                recv: None,
                multishot: port.multishot_recv(),
                spare: None,
                spare_recv_parts: None,
                sends: Slab::new(),
                waiting: None,
                held: VecDeque::new(),
                held_retries: 0,
                spare_sends: Vec::new(),
                buffer_size: 0,
                marks: WaterMarks::default(),
                told: Told::default(),
                fatal: None,
                closing: false,
                aborted: false,
                lost_scheduled: false,
            }),
            port,
            raw_fd,
            peer,
            made: Cell::new(false),
            live_key: Cell::new(None),
        });
        let weak: std::rc::Weak<dyn Live> = Rc::downgrade(&inner) as std::rc::Weak<DatagramInner>;
        let key = inner.port.register_live(weak);
        inner.live_key.set(Some(key));
        DatagramTransport { inner }
    }

    pub(crate) fn start(&self) {
        self.inner.made.set(true);
        let protocol = self.inner.protocol.borrow().clone();
        if let Some(p) = protocol {
            p.borrow_mut().connection_made(self);
        }
        DatagramInner::arm_recv(&self.inner);
    }

    /// Sends one datagram to `addr`, or to the connected peer when `addr` is `None`.
    /// Never blocks. Sends after `close` are ignored (as asyncio); an `addr` that differs
    /// from the connected peer is an error.
    pub fn sendto(&self, data: &[u8], addr: Option<SocketAddr>) -> io::Result<()> {
        DatagramInner::sendto(&self.inner, data, addr)
    }

    /// Closes the endpoint once queued datagrams are sent; `connection_lost(None)` follows.
    pub fn close(&self) {
        DatagramInner::close(&self.inner, false);
    }

    /// Closes at once, dropping queued datagrams.
    pub fn abort(&self) {
        DatagramInner::close(&self.inner, true);
    }

    /// Whether `close` or `abort` was called.
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().closing
    }

    /// Bytes queued for sending.
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.st.borrow().buffer_size
    }

    /// `(low, high)` water marks.
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.inner.st.borrow().marks.limits()
    }

    /// Sets the water marks, as [`StreamTransport::set_write_buffer_limits`](super::StreamTransport::set_write_buffer_limits);
    /// the protocol hears `pause_writing`/`resume_writing` at once if the new marks put
    /// what is queued on the other side of them.
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        {
            let mut st = self.inner.st.borrow_mut();
            st.marks.set(high, low)?;
            let size = st.buffer_size;
            st.marks.pause_due(size);
            st.marks.resume_due(size);
        }
        DatagramInner::sync_flow(&self.inner);
        Ok(())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        socket::local_addr(self.inner.raw_fd)?
            .to_socket_addr()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
    }

    /// The connected peer, if the endpoint was created with a remote address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.peer
    }

    /// The raw fd.
    pub fn fd(&self) -> i32 {
        self.inner.raw_fd
    }
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("fd", &self.inner.raw_fd)
            .field("peer", &self.inner.peer)
            .finish()
    }
}

impl DatagramInner {
    fn protocol(&self) -> Option<Rc<RefCell<dyn DatagramProtocol>>> {
        self.protocol.borrow().clone()
    }

    fn arm_recv(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if st.closing || st.recv.is_some() {
            return;
        }
        let Some(fd) = st.fd.clone() else {
            return;
        };
        if st.multishot
            && let Some(ring) = self.port.datagram_ring(DATAGRAM_RING_BUFFER)
        {
            let recv = op::RecvMsgMulti::new(fd, ring);
            match self.port.driver().submit(recv, self.clone(), TAG_RECV) {
                Ok(recv) => st.recv = Some(RecvOp::Multi(recv)),
                Err((e, _)) => self.fatal_soon(e, "arming a receive"),
            }
            return;
        }
        let buf = st
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(DATAGRAM_BUFFER));
        let recv = op::RecvMsg::reusing(fd, buf, st.spare_recv_parts.take());
        match self.port.driver().submit(recv, self.clone(), TAG_RECV) {
            Ok(recv) => st.recv = Some(RecvOp::Single(recv)),
            Err((e, _)) => self.fatal_soon(e, "arming a receive"),
        }
    }

    /// A receive could not be armed: the endpoint would go deaf. Reports `err` and
    /// aborts (through `call_soon`: the caller holds the state); `connection_lost(err)`.
    fn fatal_soon(self: &Rc<Self>, err: io::Error, doing: &'static str) {
        let this = self.clone();
        self.port.call_soon(move || {
            this.port.report(
                format!(
                    "fatal error on the datagram transport (fd {}) while {doing}",
                    this.raw_fd
                ),
                &err,
            );
            this.st.borrow_mut().fatal.get_or_insert(err);
            Self::close(&this, true);
        });
    }

    fn on_recv(self: &Rc<Self>, c: Completion) {
        if matches!(self.st.borrow().recv, Some(RecvOp::Multi(_))) {
            return Self::on_recv_multi(self, c);
        }
        let Some(RecvOp::Single(recv)) = self.st.borrow_mut().recv.take() else {
            return;
        };
        let (result, buf, parts) = recv.finish().complete_keeping_parts(c.into_result());
        self.st.borrow_mut().spare_recv_parts = Some(parts);
        let closing = self.st.borrow().closing;
        match result {
            Ok(received) if !closing => {
                if let Some(p) = self.protocol() {
                    let addr = received.addr.to_socket_addr();
                    p.borrow_mut().datagram_received(&buf[..received.len], addr);
                }
            }
            Err(e) if !closing && e.raw_os_error() != Some(libc::ECANCELED) => {
                if let Some(p) = self.protocol() {
                    p.borrow_mut().error_received(e);
                }
            }
            _ => {}
        }
        self.st.borrow_mut().spare = Some(buf);
        Self::arm_recv(self);
        self.maybe_finish();
    }

    /// One CQE of the multishot receive: a datagram in a ring buffer, or its end.
    fn on_recv_multi(self: &Rc<Self>, c: Completion) {
        let last = !c.more();
        if last && let Some(RecvOp::Multi(recv)) = self.st.borrow_mut().recv.take() {
            drop(recv.finish());
        }
        let ring = self.port.datagram_ring(DATAGRAM_RING_BUFFER);
        let buffer = cqueue::buffer_select(c.flags).zip(ring);
        let closing = self.st.borrow().closing;
        if c.result >= 0 {
            if let Some((bid, ring)) = &buffer {
                let data = ring.take(*bid, c.result as usize);
                // Parsing fails only on a buffer shorter than the header the kernel
                // writes first; there is no datagram to deliver then.
                if !closing
                    && let Some((payload, addr)) = op::parse_datagram(data)
                    && let Some(p) = self.protocol()
                {
                    p.borrow_mut().datagram_received(payload, addr);
                }
                ring.recycle(*bid);
            }
        } else {
            if let Some((bid, ring)) = &buffer {
                // Error CQEs may carry a buffer too; it must go back.
                ring.take(*bid, 0);
                ring.recycle(*bid);
            }
            match -c.result {
                // The ring ran dry (re-armed below: buffers are recycled as each datagram
                // is delivered), or we cancelled it (close).
                libc::ENOBUFS | libc::ECANCELED => {}
                // Multishot recvmsg unsupported here: single-shot for good.
                libc::EINVAL => self.st.borrow_mut().multishot = false,
                e if !closing => {
                    if let Some(p) = self.protocol() {
                        p.borrow_mut()
                            .error_received(io::Error::from_raw_os_error(e));
                    }
                }
                _ => {}
            }
        }
        if last {
            Self::arm_recv(self);
        }
        self.maybe_finish();
    }

    fn sendto(self: &Rc<Self>, data: &[u8], addr: Option<SocketAddr>) -> io::Result<()> {
        if let (Some(peer), Some(addr)) = (self.peer, addr)
            && peer != addr
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sendto {addr} on an endpoint connected to {peer}"),
            ));
        }
        if self.peer.is_none() && addr.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "sendto without an address on an unconnected endpoint",
            ));
        }
        let mut st = self.st.borrow_mut();
        if st.closing {
            return Ok(());
        }
        let Some(fd) = st.fd.clone() else {
            return Ok(());
        };
        let target = if self.peer.is_some() {
            None
        } else {
            addr.map(RawAddr::from)
        };
        let (mut buf, parts) = match st.spare_sends.pop() {
            Some((buf, parts)) => (buf, Some(parts)),
            None => (Vec::new(), None),
        };
        buf.clear();
        buf.extend_from_slice(data);
        let driver = self.port.driver();
        let mut send = op::SendMsg::reusing(fd, buf, target, parts);
        if driver.quiet_ops() {
            // On io_uring a send never waits in the kernel unless it is the one that
            // found no room (see `waiting`).
            send = send.at_once();
        }
        st.buffer_size += data.len();
        if st.waiting.is_some() || !st.held.is_empty() {
            st.held.push_back(send);
        } else {
            // Quiet (no CQE when it is sent) unless the protocol is paused: then its
            // completion is what resumes it.
            let quiet = driver.quiet_ops() && !st.marks.paused();
            if let Err(e) = self.push_send(&mut st, send, quiet) {
                st.buffer_size -= data.len();
                return Err(e);
            }
        }
        let size = st.buffer_size;
        if st.marks.pause_due(size) {
            // Paused now: its resume waits on the sends' completions.
            driver.await_quiet();
            drop(st);
            Self::sync_flow(self);
        }
        Ok(())
    }

    /// Pushes a send (quiet, or one whose CQE always comes) and keeps it in `sends`;
    /// returns its index there.
    fn push_send(
        self: &Rc<Self>,
        st: &mut State,
        send: op::SendMsg<Vec<u8>>,
        quiet: bool,
    ) -> io::Result<usize> {
        let driver = self.port.driver();
        let entry = st.sends.vacant_entry();
        let tag = TAG_SEND_BASE + entry.key() as u32;
        // A quiet one is `at_once`; whatever comes to wait on it calls `await_quiet`.
        let pushed = if quiet {
            driver.submit_quiet(send, self.clone(), tag)
        } else {
            driver.submit(send, self.clone(), tag)
        };
        let send = pushed.map_err(|(e, _)| e)?;
        let index = entry.key();
        entry.insert(send);
        Ok(index)
    }

    /// Pushes `send` as the one send that waits in the kernel for room. On failure (the
    /// loop is closed) the datagram is dropped with what is held.
    fn push_waiting(self: &Rc<Self>, st: &mut State, mut send: op::SendMsg<Vec<u8>>) {
        send.wait_for_room();
        let len = send.len();
        match self.push_send(st, send, false) {
            Ok(index) => st.waiting = Some(index),
            Err(_) => {
                st.buffer_size = st.buffer_size.saturating_sub(len);
                st.drop_held();
            }
        }
    }

    fn on_send(self: &Rc<Self>, index: usize, c: Completion) {
        let Some(send) = self.st.borrow_mut().sends.try_remove(index) else {
            return;
        };
        let send = send.finish();
        {
            let mut st = self.st.borrow_mut();
            if st.waiting == Some(index) {
                st.waiting = None;
            }
            if c.result == -libc::EAGAIN && send.is_at_once() && !st.aborted {
                // No room: it waits for room — the one send that does — or, when another
                // already waits, goes first among the held ones.
                if st.waiting.is_none() {
                    self.push_waiting(&mut st, send);
                } else {
                    let at = st.held_retries;
                    st.held.insert(at, send);
                    st.held_retries += 1;
                }
                return;
            }
            if st.waiting.is_none()
                && let Some(next) = st.held.pop_front()
            {
                st.held_retries = st.held_retries.saturating_sub(1);
                self.push_waiting(&mut st, next);
            }
        }
        let (result, buf, parts) = send.complete_keeping_parts(c.into_result());
        {
            let mut st = self.st.borrow_mut();
            st.buffer_size = st.buffer_size.saturating_sub(buf.len());
            if st.spare_sends.len() < SPARE_SENDS && buf.capacity() <= SPARE_SEND_CAPACITY {
                st.spare_sends.push((buf, parts));
            }
            let size = st.buffer_size;
            st.marks.resume_due(size);
        }
        if let Err(e) = result
            && e.raw_os_error() != Some(libc::ECANCELED)
            && let Some(p) = self.protocol()
        {
            p.borrow_mut().error_received(e);
        }
        Self::sync_flow(self);
        self.maybe_finish();
    }

    /// Tells the protocol `pause_writing` or `resume_writing` when its last word differs
    /// from the state. A protocol busy in a callback (replying from `datagram_received`
    /// is the usual case) hears it through `call_soon` instead, in order.
    fn sync_flow(self: &Rc<Self>) {
        let want = {
            let mut guard = self.st.borrow_mut();
            let st = &mut *guard;
            match st.told.owed(&st.marks) {
                Some(want) => want,
                None => return,
            }
        };
        let Some(p) = self.protocol() else {
            return;
        };
        let Ok(mut protocol) = p.try_borrow_mut() else {
            let schedule = {
                let mut st = self.st.borrow_mut();
                st.told.tell(want);
                st.told.busy(want)
            };
            if schedule {
                let this = self.clone();
                self.port.call_soon(move || {
                    this.st.borrow_mut().told.retried();
                    Self::sync_flow(&this);
                });
            }
            return;
        };
        self.st.borrow_mut().told.tell(want);
        if want {
            protocol.pause_writing();
        } else {
            protocol.resume_writing();
        }
    }

    fn close(self: &Rc<Self>, abort: bool) {
        {
            let mut st = self.st.borrow_mut();
            if st.closing && !abort {
                return;
            }
            st.closing = true;
            st.aborted |= abort;
            let driver = self.port.driver();
            if let Some(recv) = &st.recv {
                recv.cancel();
            }
            if !st.sends.is_empty() {
                // The close finishes when they have: settle quiet ones before sleeping.
                driver.await_quiet();
            }
            if abort {
                for (_, send) in st.sends.iter() {
                    send.cancel();
                }
                st.drop_held();
            }
        }
        self.maybe_finish();
    }

    /// Once closing and no send is left, schedule `connection_lost` (once).
    fn maybe_finish(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if !st.closing || st.lost_scheduled || !st.sends.is_empty() || !st.held.is_empty() {
            return;
        }
        st.lost_scheduled = true;
        drop(st);
        let this = self.clone();
        self.port.call_soon(move || {
            if let Some(key) = this.live_key.take() {
                this.port.unregister_live(key);
            }
            let protocol = this.protocol.borrow_mut().take();
            if let Some(p) = protocol
                && this.made.get()
            {
                let err = this.st.borrow_mut().fatal.take();
                p.borrow_mut().connection_lost(err);
            }
            let fd = this.st.borrow_mut().fd.take();
            drop(fd);
        });
    }
}

impl Live for DatagramInner {
    fn release(&self) {
        self.live_key.set(None);
        let protocol = self.protocol.borrow_mut().take();
        let fd = {
            let mut st = self.st.borrow_mut();
            st.closing = true;
            st.lost_scheduled = true;
            st.fd.take()
        };
        // Dropped outside the borrows: the protocol may hold the last transport clone.
        drop(fd);
        drop(protocol);
    }
}

impl Drop for DatagramInner {
    fn drop(&mut self) {
        if let Some(key) = self.live_key.take() {
            self.port.unregister_live(key);
        }
    }
}

impl OpHandler for DatagramInner {
    fn on_completion(self: Rc<Self>, tag: u32, completion: Completion) {
        if tag == TAG_RECV {
            Self::on_recv(&self, completion);
        } else {
            Self::on_send(&self, (tag - TAG_SEND_BASE) as usize, completion);
        }
    }
}

#[cfg(test)]
mod tests;
