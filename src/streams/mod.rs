//! Streams: asyncio's high-level connection API — [`open_connection`] and [`start_server`]
//! (and [`open_unix_connection`], [`start_unix_server`]) give a [`StreamReader`] and a
//! [`StreamWriter`] instead of protocol callbacks.
//!
//! Built entirely on the Protocol layer: each connection is a
//! [`StreamTransport`] made by
//! [`EventLoop::create_connection`]/[`EventLoop::create_server`] (or their Unix twins)
//! with a protocol that buffers what arrives for the reader and tracks the transport's
//! flow control for the writer. So the reads and writes are the transport's io_uring ops
//! on either engine.
//!
//! - The reader's `limit` (default [`DEFAULT_LIMIT`], 64 KiB) bounds its buffer as in
//!   asyncio: above twice the limit the transport's reading is paused, and it resumes when
//!   reads bring the buffer down to the limit. [`StreamReader::readuntil`] and
//!   [`StreamReader::readline`] fail with [`StreamError::LimitOverrun`] on a chunk longer
//!   than the limit.
//! - [`StreamWriter::drain`] waits while the transport's write buffer is above its
//!   high-water mark, and fails once the connection is lost.
//! - `start_server`'s callback gets each connection's pair and returns a future, which is
//!   spawned as a task.
//!
//! # Examples
//!
//! ```
//! use ringloop::streams::{StreamReader, StreamWriter, open_connection, start_server};
//!
//! ringloop::run(async {
//!     // An upper-casing line server.
//!     let server = start_server(
//!         |mut reader: StreamReader, writer: StreamWriter| async move {
//!             while let Ok(line) = reader.readline().await {
//!                 if line.is_empty() {
//!                     break;
//!                 }
//!                 let _ = writer.write_all(&line.to_ascii_uppercase()).await;
//!             }
//!         },
//!         "127.0.0.1:0",
//!     )
//!     .await
//!     .unwrap();
//!
//!     let (mut reader, writer) = open_connection(&server.sockets()[0].to_string())
//!         .await
//!         .unwrap();
//!     writer.write(b"hello\nworld\n").unwrap();
//!     writer.write_eof().unwrap();
//!     assert_eq!(reader.readline().await.unwrap(), b"HELLO\n");
//!     assert_eq!(reader.read_to_end().await.unwrap(), b"WORLD\n");
//!     server.close();
//! })
//! .unwrap();
//! ```

mod protocol;
mod reader;
mod writer;

pub use reader::StreamReader;
pub use writer::StreamWriter;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::rc::Rc;

use crate::event_loop::{EventLoop, get_running_loop};
use crate::net::{Server, ServerOptions, ToSocketAddrs};
use crate::transport::StreamTransport;
use protocol::{OnConnect, Shared, StreamReaderProtocol};
use writer::Owner;

/// asyncio's default stream limit: 64 KiB.
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// Why a [`StreamReader`] read failed.
#[derive(Debug)]
pub enum StreamError {
    /// The stream ended first (asyncio's `IncompleteReadError`). `partial` is everything
    /// that had arrived (it left the buffer); `expected` the count asked for, `None` for
    /// [`StreamReader::readuntil`].
    IncompleteRead {
        /// The bytes read before the end.
        partial: Vec<u8>,
        /// How many bytes were asked for.
        expected: Option<usize>,
    },
    /// No separator within the limit (asyncio's `LimitOverrunError`): `consumed` bytes
    /// were scanned, or the separator was found at offset `consumed`, past the limit.
    LimitOverrun {
        /// How far the separator search got (or where the separator was found).
        consumed: usize,
    },
    /// The connection failed.
    Io(io::Error),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::IncompleteRead {
                partial,
                expected: Some(n),
            } => write!(
                f,
                "incomplete read: {} bytes read of {n} expected",
                partial.len()
            ),
            StreamError::IncompleteRead {
                partial,
                expected: None,
            } => write!(
                f,
                "incomplete read: the stream ended after {} bytes without the separator",
                partial.len()
            ),
            StreamError::LimitOverrun { consumed } => write!(
                f,
                "limit overrun: no separator within the stream limit ({consumed} bytes)"
            ),
            StreamError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        StreamError::Io(e)
    }
}

impl From<StreamError> for io::Error {
    /// `IncompleteRead` is `UnexpectedEof`, `LimitOverrun` is `InvalidData`.
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Io(e) => e,
            StreamError::IncompleteRead { .. } => {
                io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string())
            }
            StreamError::LimitOverrun { .. } => {
                io::Error::new(io::ErrorKind::InvalidData, e.to_string())
            }
        }
    }
}

/// A copy of `e` to hand out again (`io::Error` is not `Clone`): the same OS code, or the
/// same kind and message.
pub(crate) fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// The reader and writer of a connection whose protocol shares `shared`.
fn pair(shared: Rc<Shared>, transport: StreamTransport) -> (StreamReader, StreamWriter) {
    let owner = Rc::new(Owner(transport.clone()));
    let reader = StreamReader::new(shared.read.clone(), Some(owner.clone()));
    (reader, StreamWriter::new(transport, shared, owner))
}

fn check_limit(limit: usize) -> io::Result<()> {
    if limit == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the stream limit must be at least 1 byte",
        ));
    }
    Ok(())
}

fn running_loop() -> io::Result<EventLoop> {
    get_running_loop().map_err(io::Error::from)
}

/// A protocol factory calling `cb` with each new connection's pair and spawning the
/// future it returns.
fn connected_factory<F, Fut>(cb: F, limit: usize) -> impl FnMut() -> StreamReaderProtocol
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cb = Rc::new(RefCell::new(cb));
    move || {
        let cb = cb.clone();
        let on_connect: OnConnect = Box::new(move |reader, writer: StreamWriter| {
            let event_loop = writer.transport().get_loop();
            let fut = (cb.borrow_mut())(reader, writer);
            // Detached: the task runs on its own, as asyncio's client_connected_cb task.
            drop(event_loop.create_task(fut));
        });
        StreamReaderProtocol::new(limit, Some(on_connect))
    }
}

/// asyncio's `open_connection`: connects to `addr` (`"host:port"`, `(host, port)`, a
/// `SocketAddr`: any [`ToSocketAddrs`]) on the running loop.
pub async fn open_connection(addr: impl ToSocketAddrs) -> io::Result<(StreamReader, StreamWriter)> {
    open_connection_with(addr, DEFAULT_LIMIT).await
}

/// [`open_connection`] with the reader's `limit`.
pub async fn open_connection_with(
    addr: impl ToSocketAddrs,
    limit: usize,
) -> io::Result<(StreamReader, StreamWriter)> {
    check_limit(limit)?;
    let (transport, protocol) = running_loop()?
        .create_connection(|| StreamReaderProtocol::new(limit, None), addr)
        .await?;
    let shared = protocol.borrow().shared.clone();
    Ok(pair(shared, transport))
}

/// asyncio's `open_unix_connection`: connects to the Unix socket at `path`.
pub async fn open_unix_connection(
    path: impl AsRef<Path>,
) -> io::Result<(StreamReader, StreamWriter)> {
    open_unix_connection_with(path, DEFAULT_LIMIT).await
}

/// [`open_unix_connection`] with the reader's `limit`.
pub async fn open_unix_connection_with(
    path: impl AsRef<Path>,
    limit: usize,
) -> io::Result<(StreamReader, StreamWriter)> {
    check_limit(limit)?;
    let (transport, protocol) = running_loop()?
        .create_unix_connection(|| StreamReaderProtocol::new(limit, None), path)
        .await?;
    let shared = protocol.borrow().shared.clone();
    Ok(pair(shared, transport))
}

/// asyncio's `start_server`: listens on `addr` and calls `client_connected_cb` with each
/// connection's reader and writer; the future it returns runs as a task.
pub async fn start_server<F, Fut>(
    client_connected_cb: F,
    addr: impl ToSocketAddrs,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    start_server_with(
        client_connected_cb,
        addr,
        DEFAULT_LIMIT,
        ServerOptions::default(),
    )
    .await
}

/// [`start_server`] with the readers' `limit` and the server's options.
pub async fn start_server_with<F, Fut>(
    client_connected_cb: F,
    addr: impl ToSocketAddrs,
    limit: usize,
    options: ServerOptions,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    check_limit(limit)?;
    running_loop()?
        .create_server_with(connected_factory(client_connected_cb, limit), addr, options)
        .await
}

/// asyncio's `start_unix_server`: as [`start_server`] on the Unix socket at `path`
/// (removed again when the server closes).
pub async fn start_unix_server<F, Fut>(
    client_connected_cb: F,
    path: impl AsRef<Path>,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    start_unix_server_with(client_connected_cb, path, DEFAULT_LIMIT).await
}

/// [`start_unix_server`] with the readers' `limit`.
pub async fn start_unix_server_with<F, Fut>(
    client_connected_cb: F,
    path: impl AsRef<Path>,
    limit: usize,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    check_limit(limit)?;
    running_loop()?
        .create_unix_server(connected_factory(client_connected_cb, limit), path)
        .await
}
