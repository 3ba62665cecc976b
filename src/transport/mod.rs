//! Transports: the asyncio objects that own a connection's fd and call its protocol.
//!
//! - [`StreamTransport`] (TCP, Unix stream) is the stream configuration of the transport
//!   core (`core/`, built to serve pipes and TLS too): a read side (one receive in flight,
//!   held completions while paused, a throttle to single-shot receives under
//!   backpressure), a write side (backlog, one send in flight, one iteration's writes
//!   coalesced into one send, quiet sends, water marks) and a lifecycle
//!   (`connection_lost` exactly once, last; the fd released after the last op naming it).
//!   A configuration says how it does I/O (`stream_io`) and whom it tells.
//! - [`ReadPipeTransport`] / [`WritePipeTransport`] (a child's stdout/stderr and stdin):
//!   their own machine still (`pipe.rs`), one `read` in flight, writes as for streams.
//! - [`DatagramTransport`] (UDP, Unix datagram): a multishot `recvmsg` from the loop's
//!   datagram ring on io_uring (else one `recvmsg` in flight); each datagram its own
//!   send, at most one waiting in the kernel for room and those behind it held in order.
//!
//! Every call into the loop or the driver goes through `port::Port`. See
//! `docs/transports.md`.

mod core;
mod datagram;
mod flow;
pub(crate) mod live;
mod pipe;
mod pipe_io;
mod port;
mod protocol_ref;
mod stream;
mod stream_io;

pub use datagram::DatagramTransport;
pub(crate) use pipe::PipeProtocol;
pub use pipe::{ReadPipeTransport, WritePipeTransport};
pub(crate) use protocol_ref::ProtocolRef;
pub use stream::StreamTransport;
pub(crate) use stream_io::StreamKind;

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;

/// Default write-buffer high-water mark (64 KiB).
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// Default write-buffer low-water mark (16 KiB).
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

/// A value of [`StreamTransport::get_extra_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraInfo {
    /// An IP socket address.
    Addr(SocketAddr),
    /// A Unix socket path (empty for unnamed sockets).
    UnixPath(PathBuf),
    /// The raw fd.
    Fd(RawFd),
}

/// Errors that mean "the peer went away" — reported as `connection_lost(Some(err))`
/// without a fatal-error report.
pub(crate) fn is_peer_reset(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED | libc::ESHUTDOWN)
    )
}
