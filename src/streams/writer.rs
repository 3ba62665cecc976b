//! [`StreamWriter`]: asyncio's writing side of a stream connection — a thin layer over the
//! [`StreamTransport`] that adds `drain` (wait out the transport's backpressure) and
//! `wait_closed`.

use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::Poll;

use super::copy_error;
use super::protocol::{FlowState, Shared, register};
use crate::task::yield_now;
use crate::transport::{ExtraInfo, StreamTransport};

/// Closes the connection when the reader and the last writer are gone.
pub(crate) struct Owner(pub(crate) StreamTransport);

impl Drop for Owner {
    fn drop(&mut self) {
        if !self.0.is_closing() {
            self.0.close();
        }
    }
}

/// The writing side of a stream connection, as asyncio's `StreamWriter`. Cheap to clone;
/// the connection closes (flushing first) when the last clone and the
/// [`StreamReader`](super::StreamReader) are dropped.
///
/// Writes never block: they queue on the transport. Call [`drain`](Self::drain) after
/// writing to wait while the transport's buffer is above its high-water mark.
#[derive(Clone)]
pub struct StreamWriter {
    transport: StreamTransport,
    shared: Rc<Shared>,
    _owner: Rc<Owner>,
}

impl StreamWriter {
    pub(crate) fn new(transport: StreamTransport, shared: Rc<Shared>, owner: Rc<Owner>) -> Self {
        StreamWriter {
            transport,
            shared,
            _owner: owner,
        }
    }

    /// Queues `data` (see [`StreamTransport::write`]); an error once the writer is closed
    /// or after [`write_eof`](Self::write_eof).
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        self.transport.write(data)
    }

    /// Queues each buffer in order, as one write of their concatenation.
    pub fn writelines<'a>(&self, data: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        self.transport.writelines(data)
    }

    /// Waits until the transport's write buffer is back at its low-water mark, if it went
    /// above its high-water mark (between `pause_writing` and `resume_writing`); returns
    /// at once otherwise.
    ///
    /// Errors once the connection is lost: with the error that ended it, or a
    /// `ConnectionReset` "connection lost" error after a clean end — also when the loss
    /// happens while waiting.
    pub async fn drain(&self) -> io::Result<()> {
        if let Some(e) = self.shared.read.borrow().exception() {
            return Err(e);
        }
        if self.transport.is_closing() {
            // Let a connection_lost already scheduled run first, so a write-then-drain
            // loop on a closed connection sees the error.
            yield_now().await;
        }
        poll_fn(|cx| {
            let mut flow = self.shared.flow.borrow_mut();
            if flow.lost {
                return Poll::Ready(Err(self.lost_error(&flow)));
            }
            if !flow.paused {
                return Poll::Ready(Ok(()));
            }
            register(&mut flow.drain_wakers, cx.waker());
            Poll::Pending
        })
        .await
    }

    fn lost_error(&self, flow: &FlowState) -> io::Error {
        match &flow.error {
            Some(e) => copy_error(e),
            None => io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("drain: connection lost {}", self.describe()),
            ),
        }
    }

    /// Names the connection for messages.
    fn describe(&self) -> String {
        match self.transport.get_extra_info("peername") {
            Some(ExtraInfo::Addr(a)) => format!("to {a}"),
            Some(ExtraInfo::UnixPath(p)) if !p.as_os_str().is_empty() => {
                format!("to {}", p.display())
            }
            _ => match self.transport.get_extra_info("sockname") {
                Some(ExtraInfo::UnixPath(p)) if !p.as_os_str().is_empty() => {
                    format!("on {}", p.display())
                }
                Some(ExtraInfo::Addr(a)) => format!("on {a}"),
                _ => String::from("(unnamed socket)"),
            },
        }
    }

    /// [`write`](Self::write) then [`drain`](Self::drain).
    pub async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        self.write(data)?;
        self.drain().await
    }

    /// Shuts down the write side once the buffer is flushed (half-close); reading goes on.
    pub fn write_eof(&self) -> io::Result<()> {
        self.transport.write_eof()
    }

    /// Whether [`write_eof`](Self::write_eof) is supported (always, on stream sockets).
    pub fn can_write_eof(&self) -> bool {
        self.transport.can_write_eof()
    }

    /// Closes the connection: what is buffered is flushed first. Idempotent.
    pub fn close(&self) {
        self.transport.close();
    }

    /// Whether the connection is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.transport.is_closing()
    }

    /// Waits until the connection is over (`connection_lost`); the error that ended it,
    /// if one did.
    pub async fn wait_closed(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut flow = self.shared.flow.borrow_mut();
            if flow.lost {
                return Poll::Ready(match &flow.error {
                    Some(e) => Err(copy_error(e)),
                    None => Ok(()),
                });
            }
            register(&mut flow.closed_wakers, cx.waker());
            Poll::Pending
        })
        .await
    }

    /// The transport's `get_extra_info` (`"peername"`, `"sockname"`, `"socket"`).
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.transport.get_extra_info(name)
    }

    /// The transport underneath.
    pub fn transport(&self) -> &StreamTransport {
        &self.transport
    }
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("transport", &self.transport)
            .finish()
    }
}
