//! Adapters for crates written for tokio, `futures` and hyper (each behind its cargo
//! feature: `tokio`, `futures-io`, `hyper`).
//!
//! [`CompatStream`] wraps a [`TcpStream`](crate::net::TcpStream) or
//! [`UnixStream`](crate::net::UnixStream) and implements the poll-based I/O traits over
//! completion ops: one receive in flight per stream, owned by the stream (never by a
//! poll call), bytes copied out on `poll_read`; writes buffered up to a high-water mark
//! with one send in flight. See `docs/compat.md` for why this is a wrapper type and where
//! the bytes are copied.
//!
//! With `hyper`: [`LoopExecutor`] and [`LoopTimer`] run hyper's connections, HTTP/2
//! streams and timeouts on the loop.

#[cfg(feature = "futures-io")]
mod futures_io;
#[cfg(feature = "hyper")]
mod hyper;
mod stream;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "hyper")]
pub use self::hyper::{LoopExecutor, LoopSleep, LoopTimer};
pub use stream::{CompatSocket, CompatStream, DEFAULT_READ_BUFFER, DEFAULT_WRITE_HIGH_WATER};
