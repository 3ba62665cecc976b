//! Transports: the asyncio objects that own a connection's fd and call its protocol.
//!
//! - [`StreamTransport`] (TCP, Unix stream): one receive in flight (multishot from the
//!   loop's provided-buffer ring, or single-shot into an owned buffer), one send in flight
//!   plus a backlog that leaves as the next single send; writes of one iteration are
//!   coalesced into one send just before the loop submits. On io_uring sends that nothing
//!   waits on are quiet ops (no CQE when the socket takes them whole).
//! - [`DatagramTransport`] (UDP, Unix datagram): a multishot `recvmsg` from the loop's
//!   datagram buffer ring on io_uring (else one `recvmsg` in flight); each datagram is
//!   its own send, in flight at once, except that at most one waits in the kernel for
//!   room and those behind it are held in order.
//! - [`ReadPipeTransport`] / [`WritePipeTransport`] (a child's stdout/stderr and stdin):
//!   one `read` in flight into an owned buffer; writes coalesced as for streams, with a
//!   `POLLERR` watch for a reader that goes away.
//!
//! All follow asyncio's proactor rules (see `docs/transports.md`): no byte is lost to
//! pausing — what completes while paused is held and delivered on resume (a stream's
//! multishot receive is cancelled on pause, and whatever it still brings is held);
//! `connection_lost` comes exactly once, last; the fd is closed only after the last op
//! that names it has completed. Write flow control is [`flow::WaterMarks`] everywhere.

mod datagram;
mod flow;
pub(crate) mod live;
mod pipe;
mod protocol_ref;
mod stream;

pub use datagram::DatagramTransport;
pub(crate) use flow::WaterMarks;
pub(crate) use pipe::PipeProtocol;
pub use pipe::{ReadPipeTransport, WritePipeTransport};
pub(crate) use protocol_ref::ProtocolRef;
pub(crate) use stream::StreamKind;
pub use stream::StreamTransport;

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
