//! The transports' one door to the loop and the driver.
//!
//! Everything a transport configuration asks of the world below it goes through a
//! [`Port`]: the driver (its safe submission API, [`crate::op::InFlight`]), the loop's
//! provided-buffer rings, the pre-submit flush queue, the registry of live transports,
//! `call_soon` and the exception handler. The core itself ([`super::core`]) never sees a
//! `Port`: it talks to its `Io`, which holds one.

use std::io;
use std::rc::{Rc, Weak};

use super::live::{Live, LiveTransports};
use crate::buf::ring::BufRing;
use crate::buf::rings::RecvRings;
use crate::driver::Driver;
use crate::event_loop::{EventLoop, ExceptionContext, Flush, NetConfig};

/// A transport's handle on its loop and the loop's driver. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Port {
    event_loop: EventLoop,
    driver: Rc<Driver>,
    /// The loop's receive buffer rings, looked up once (read on every receive).
    rings: Rc<RecvRings>,
    net: NetConfig,
}

impl Port {
    pub(crate) fn new(event_loop: &EventLoop) -> Port {
        Port {
            event_loop: event_loop.clone(),
            driver: event_loop.driver().clone(),
            rings: RecvRings::of(event_loop),
            net: event_loop.net_config(),
        }
    }

    /// The loop (for `get_loop`).
    pub(crate) fn event_loop(&self) -> &EventLoop {
        &self.event_loop
    }

    /// The loop's driver, to submit ops to.
    pub(crate) fn driver(&self) -> &Rc<Driver> {
        &self.driver
    }

    pub(crate) fn call_soon(&self, f: impl FnOnce() + 'static) {
        self.event_loop.call_soon(f);
    }

    /// Hands `err` to the loop's exception handler with `message`.
    pub(crate) fn report(&self, message: String, err: &io::Error) {
        self.event_loop.call_exception_handler(ExceptionContext {
            message,
            error: Some(io::Error::new(err.kind(), err.to_string()).into()),
        });
    }

    /// Queues `flush` for just before the loop's next submit.
    pub(crate) fn schedule_flush(&self, flush: Rc<dyn Flush>) {
        self.event_loop.schedule_flush(flush);
    }

    /// Registers an open transport (released, without callbacks, if the loop closes).
    pub(crate) fn register_live(&self, live: Weak<dyn Live>) -> usize {
        LiveTransports::register(&self.event_loop, live)
    }

    pub(crate) fn unregister_live(&self, key: usize) {
        LiveTransports::unregister(&self.event_loop, key);
    }

    /// Whether stream receives may be multishot ops from a buffer ring.
    pub(crate) fn multishot_recv(&self) -> bool {
        self.net.multishot_recv
    }

    /// The size of a single-shot stream receive buffer.
    pub(crate) fn recv_buffer_size(&self) -> usize {
        self.net.recv_buffer_size
    }

    /// The byte limit for a multishot stream receive, if the kernel takes one.
    pub(crate) fn stream_limit(&self) -> Option<u32> {
        self.rings.stream_limit()
    }

    /// The kernel refused a limited multishot receive (before Linux 6.17).
    pub(crate) fn refuse_stream_limit(&self) {
        self.rings.refuse_stream_limit();
    }

    /// The datagram buffer ring of `buf_size`-byte buffers (registered on first use), if
    /// there is one.
    pub(crate) fn datagram_ring(&self, buf_size: usize) -> Option<Rc<BufRing>> {
        self.rings.datagram(buf_size)
    }

    /// The stream buffer ring (registered on first use), if there is one.
    pub(crate) fn stream_ring(&self) -> Option<Rc<BufRing>> {
        self.rings.stream()
    }
}
