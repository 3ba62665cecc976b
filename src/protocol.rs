//! The protocol traits: what a transport calls when things happen on its connection.
//!
//! As in asyncio, a stream protocol sees `connection_made` first, then any number of
//! `data_received`, at most one `eof_received`, and `connection_lost` exactly once, last.
//! Callbacks take `&mut self`; the transport never holds a borrow of its own state while
//! calling them, so a protocol may call back into its transport (`write`, `close`,
//! `pause_reading`, ...) from any callback.

use std::io;
use std::net::SocketAddr;

use crate::transport::{DatagramTransport, StreamTransport};

/// Callbacks for a stream connection (TCP, Unix stream).
pub trait Protocol: 'static {
    /// The connection is up; keep `transport` (a cheap clone) to write and close.
    fn connection_made(&mut self, transport: &StreamTransport) {
        let _ = transport;
    }
    /// Bytes arrived, in order.
    fn data_received(&mut self, data: &[u8]) {
        let _ = data;
    }
    /// The peer shut down its write side. Return true to keep our write side open
    /// (half-close); false closes the transport.
    fn eof_received(&mut self) -> bool {
        false
    }
    /// The connection ended: `None` after a clean close, else the error. Called exactly
    /// once, last.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
    /// The transport's write buffer went above its high-water mark.
    fn pause_writing(&mut self) {}
    /// The transport's write buffer drained to its low-water mark.
    fn resume_writing(&mut self) {}
}

/// A stream protocol whose received bytes are copied straight into its own buffer.
pub trait BufferedProtocol: 'static {
    /// As [`Protocol::connection_made`].
    fn connection_made(&mut self, transport: &StreamTransport) {
        let _ = transport;
    }
    /// A buffer to receive into; `size_hint` is how many bytes are waiting. An empty
    /// buffer is an error (the connection is aborted).
    fn get_buffer(&mut self, size_hint: usize) -> &mut [u8];
    /// `nbytes` bytes were written at the start of the last buffer returned.
    fn buffer_updated(&mut self, nbytes: usize);
    /// As [`Protocol::eof_received`].
    fn eof_received(&mut self) -> bool {
        false
    }
    /// As [`Protocol::connection_lost`].
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
    /// As [`Protocol::pause_writing`].
    fn pause_writing(&mut self) {}
    /// As [`Protocol::resume_writing`].
    fn resume_writing(&mut self) {}
}

/// Callbacks for a datagram endpoint (UDP, Unix datagram).
pub trait DatagramProtocol: 'static {
    /// The endpoint is ready.
    fn connection_made(&mut self, transport: &DatagramTransport) {
        let _ = transport;
    }
    /// A datagram arrived from `addr` (`None` for an unnamed Unix peer).
    fn datagram_received(&mut self, data: &[u8], addr: Option<SocketAddr>) {
        let _ = (data, addr);
    }
    /// A send or receive failed (e.g. ICMP port unreachable); the endpoint stays open.
    fn error_received(&mut self, exc: io::Error) {
        let _ = exc;
    }
    /// The endpoint closed.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
    /// The write buffer went above its high-water mark.
    fn pause_writing(&mut self) {}
    /// The write buffer drained to its low-water mark.
    fn resume_writing(&mut self) {}
}
