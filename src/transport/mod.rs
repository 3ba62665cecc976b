//! Transports: the asyncio objects that own a connection's fd and call its protocol.
//!
//! - [`StreamTransport`] (TCP, Unix stream): one receive in flight (multishot from the
//!   loop's provided-buffer ring, or single-shot into an owned buffer), one send in flight
//!   plus a backlog that leaves as the next single send; writes of one iteration are
//!   coalesced into one send just before the loop submits.
//! - [`DatagramTransport`] (UDP, Unix datagram): one `recvmsg` in flight; sends queue.
//! - [`ReadPipeTransport`] / [`WritePipeTransport`] (a child's stdout/stderr and stdin):
//!   one `read` in flight into an owned buffer; writes coalesced as for streams, with a
//!   `POLLERR` watch for a reader that goes away.
//!
//! All follow asyncio's proactor rules (see `docs/transports.md`): pausing reading never
//! cancels a receive that may already hold bytes — what completes while paused is held and
//! delivered on resume; `connection_lost` comes exactly once, last; the fd is closed only
//! after the last op that names it has completed.

mod datagram;
mod pipe;
mod protocol_ref;
mod stream;

pub(crate) use datagram::DATAGRAM_RING_BUFFER;
pub use datagram::DatagramTransport;
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

/// Validates and fills in write-buffer limits as asyncio does: a missing low is high/4,
/// a missing high is 4 × low; high ≥ low is required.
pub(crate) fn resolve_limits(
    high: Option<usize>,
    low: Option<usize>,
) -> std::io::Result<(usize, usize)> {
    let (high, low) = match (high, low) {
        (None, None) => (DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER),
        (Some(h), None) => (h, h / 4),
        (None, Some(l)) => (4 * l, l),
        (Some(h), Some(l)) => (h, l),
    };
    if high < low {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("high-water mark ({high}) must be >= low-water mark ({low})"),
        ));
    }
    Ok((high, low))
}

/// Errors that mean "the peer went away" — reported as `connection_lost(Some(err))`
/// without a fatal-error report.
pub(crate) fn is_peer_reset(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED | libc::ESHUTDOWN)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_asyncio() {
        assert_eq!(resolve_limits(None, None).unwrap(), (65536, 16384));
        assert_eq!(resolve_limits(Some(100), None).unwrap(), (100, 25));
        assert_eq!(resolve_limits(None, Some(10)).unwrap(), (40, 10));
        assert!(resolve_limits(Some(1), Some(2)).is_err());
    }
}
