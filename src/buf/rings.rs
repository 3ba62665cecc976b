//! The loop's receive buffer rings, a loop service: one provided-buffer ring shared by
//! the loop's streams (multishot `recv`) and one shared by its datagram endpoints
//! (multishot `recvmsg`), each registered with the driver on first use.
//!
//! A kernel that refuses buffer rings (too old, or the epoll engine) is asked once per
//! ring; after that the transports use single-shot receives into owned buffers. The
//! rings are let go in the loop's [`Phase::Buffers`], after every transport released its
//! fd and just before the driver shuts down (ops still in flight keep the ring they were
//! armed on through their `Rc`).
//!
//! Transports look the service up once ([`RecvRings::of`]) and keep it: the rings are
//! read on every receive completion.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use super::ring::BufRing;
use crate::driver::Driver;
use crate::event_loop::{EventLoop, NetConfig, Phase, Service};

/// Buffer group of the stream ring.
const STREAM_RING_BGID: u16 = 0;
/// Buffer group of the datagram ring.
const DATAGRAM_RING_BGID: u16 = 1;
/// Bytes a multishot stream receive takes before it ends and is re-armed (Linux 6.17+).
/// It bounds what a stream takes from its socket in one go, so a protocol that pauses
/// (or a write side past its high mark) holds at most this much that the kernel had
/// already posted, rather than the whole batch of one enter (up to ~1 MiB under a
/// flood); a re-arm (one SQE) every 32 KiB is cheap beside the completions it bounds.
const STREAM_MULTISHOT_LIMIT: u32 = 32 * 1024;
/// Buffers in the datagram ring: a multishot `recvmsg` fills at most this many before the
/// loop recycles them (then it ends with `ENOBUFS` and is re-armed).
const DATAGRAM_RING_ENTRIES: u16 = 32;

/// The loop's two receive rings and the options they are made with.
pub(crate) struct RecvRings {
    driver: Weak<Driver>,
    config: NetConfig,
    stream: LazyRing,
    datagram: LazyRing,
    /// The kernel refused a byte limit on a multishot stream receive (before 6.17).
    limit_refused: Cell<bool>,
}

/// A ring registered on first use, or refused once for good.
#[derive(Default)]
struct LazyRing {
    ring: RefCell<Option<Rc<BufRing>>>,
    /// Registering failed once (old kernel, or the epoll engine): don't retry.
    refused: Cell<bool>,
}

impl LazyRing {
    fn get(
        &self,
        driver: &Weak<Driver>,
        make: impl FnOnce() -> std::io::Result<BufRing>,
    ) -> Option<Rc<BufRing>> {
        if self.refused.get() {
            return None;
        }
        if let Some(r) = self.ring.borrow().as_ref() {
            return Some(r.clone());
        }
        let driver = driver.upgrade()?;
        match make().and_then(|r| driver.register_buf_ring(r)) {
            Ok(r) => {
                *self.ring.borrow_mut() = Some(r.clone());
                Some(r)
            }
            Err(_) => {
                self.refused.set(true);
                None
            }
        }
    }
}

impl RecvRings {
    /// The rings of `event_loop` (the service, created on first use; no ring is
    /// registered until a transport asks for it).
    pub(crate) fn of(event_loop: &EventLoop) -> Rc<RecvRings> {
        event_loop.service_with(|| RecvRings {
            driver: Rc::downgrade(event_loop.driver()),
            config: event_loop.net_config(),
            stream: LazyRing::default(),
            datagram: LazyRing::default(),
            limit_refused: Cell::new(false),
        })
    }

    /// The byte limit for a multishot stream receive, `None` once the kernel refused one.
    pub(crate) fn stream_limit(&self) -> Option<u32> {
        (!self.limit_refused.get()).then_some(STREAM_MULTISHOT_LIMIT)
    }

    /// The kernel refused a limited multishot receive: arm them unlimited from now on.
    pub(crate) fn refuse_stream_limit(&self) {
        self.limit_refused.set(true);
    }

    /// The streams' ring (`recv_buffers` × `recv_buffer_size` of the loop's builder);
    /// `None` where multishot receives are off or the kernel refuses buffer rings.
    pub(crate) fn stream(&self) -> Option<Rc<BufRing>> {
        if !self.config.multishot_recv {
            return None;
        }
        let config = self.config;
        self.stream.get(&self.driver, || {
            BufRing::new(
                STREAM_RING_BGID,
                config.recv_buffers,
                config.recv_buffer_size,
            )
        })
    }

    /// The datagram endpoints' ring, of buffers of `buf_size` bytes (each holds the
    /// multishot `recvmsg` header, a source address and the largest UDP payload; the size
    /// is fixed by the first call); `None` where multishot receives are off or the kernel
    /// refuses buffer rings.
    pub(crate) fn datagram(&self, buf_size: usize) -> Option<Rc<BufRing>> {
        if !self.config.multishot_recv {
            return None;
        }
        self.datagram.get(&self.driver, || {
            BufRing::new(DATAGRAM_RING_BGID, DATAGRAM_RING_ENTRIES, buf_size)
        })
    }

    /// The stream ring if it was registered (never registers one).
    fn stream_if_registered(&self) -> Option<Rc<BufRing>> {
        self.stream.ring.borrow().clone()
    }
}

impl Service for RecvRings {
    fn phase(&self) -> Phase {
        Phase::Buffers
    }

    /// Drops the loop's handles on the rings (the driver unregisters them at shutdown).
    fn close(&self) {
        self.stream.ring.borrow_mut().take();
        self.datagram.ring.borrow_mut().take();
    }
}

impl EventLoop {
    /// Provided receive buffers currently handed out to transports (0 when idle: every
    /// buffer a completion carries goes back to the ring).
    pub fn recv_buffers_in_use(&self) -> usize {
        self.existing_service::<RecvRings>()
            .and_then(|r| r.stream_if_registered())
            .map_or(0, |r| r.outstanding() as usize)
    }
}
