//! [`CompatStream`]: a ringloop stream with the state a poll-based I/O trait needs — one
//! receive in flight with the bytes it brought, and a write buffer with one send in flight.
//!
//! The traits (`tokio`, `futures-io`, `hyper`) are thin layers over the five poll
//! functions here (`poll_fill_buf`/`consume`, `poll_write_slices`, `poll_flush`,
//! `poll_shutdown`), so every trait family has the same semantics and the same tests.

use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::buf::IoBuf;
use crate::fd::SharedFd;
use crate::net::{TcpStream, UnixStream};
use crate::op::{Op, Recv, SalvagingRead, Send};

/// Default size of the receive buffer (the most one receive brings).
pub const DEFAULT_READ_BUFFER: usize = 16 * 1024;
/// Default write high-water mark: `poll_write` is `Pending` while this many bytes wait
/// for the kernel.
pub const DEFAULT_WRITE_HIGH_WATER: usize = 64 * 1024;

// The sealed trait names the crate-private SharedFd; it is unnameable outside the crate.
#[allow(private_interfaces)]
mod sealed {
    /// The stream sockets a [`CompatStream`](super::CompatStream) can wrap.
    pub trait Sealed {
        fn fd(&self) -> &crate::fd::SharedFd;
        fn shutdown(&self, how: std::net::Shutdown) -> std::io::Result<()>;
    }
}

/// A connected stream socket a [`CompatStream`] can wrap: [`TcpStream`] and
/// [`UnixStream`] (sealed).
pub trait CompatSocket: sealed::Sealed + Unpin {}

#[allow(private_interfaces)]
impl sealed::Sealed for TcpStream {
    fn fd(&self) -> &SharedFd {
        self.shared_fd()
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
}
impl CompatSocket for TcpStream {}

#[allow(private_interfaces)]
impl sealed::Sealed for UnixStream {
    fn fd(&self) -> &SharedFd {
        self.shared_fd()
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }
}
impl CompatSocket for UnixStream {}

type RecvFuture = SalvagingRead<Vec<u8>, Recv<Vec<u8>>>;
type SendFuture = Op<Send<crate::buf::Slice<Vec<u8>>>>;

/// A [`TcpStream`] or [`UnixStream`] with the poll-based I/O traits of tokio,
/// `futures-io` and hyper (each behind its cargo feature).
///
/// Reads: one receive is in flight at a time and it lives here, not in the poll call, so
/// a caller that stops polling (a dropped `read` future, a `select!` that took the other
/// branch) loses nothing: the next poll gets the bytes. `poll_read` copies from that
/// buffer into the caller's (`AsyncBufRead` hands out the buffer itself, no copy).
///
/// Writes: `poll_write` copies into a write buffer, starts a send if none is in flight and
/// reports the bytes written; it is `Pending` while the unsent bytes reach the high-water
/// mark. `poll_flush` waits until the kernel took every byte; `poll_shutdown` flushes,
/// then shuts the write half (`shutdown(SHUT_WR)`). Dropping the stream with unflushed
/// bytes cancels their send, as dropping a `BufWriter` does: flush first.
///
/// Errors are the socket's own (`ECONNRESET`, `EPIPE`, ...); a failed send fails every
/// later write and flush with the same error.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "tokio")] {
/// use ringloop::compat::CompatStream;
/// use ringloop::net::{TcpListener, TcpStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// ringloop::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = ringloop::spawn(async move {
///         let mut s = CompatStream::new(TcpStream::connect(addr).await.unwrap());
///         s.write_all(b"ping").await.unwrap();
///         s.shutdown().await.unwrap();
///     });
///     let (stream, _) = listener.accept().await.unwrap();
///     let mut s = CompatStream::new(stream);
///     let mut got = String::new();
///     s.read_to_string(&mut got).await.unwrap();
///     assert_eq!(got, "ping");
///     client.await.unwrap();
/// })
/// .unwrap();
/// # }
/// ```
pub struct CompatStream<S: CompatSocket> {
    inner: S,
    fd: SharedFd,
    read: ReadSide,
    write: WriteSide,
}

struct ReadSide {
    /// Completed bytes; `[pos..]` not yet given out.
    buf: Vec<u8>,
    pos: usize,
    /// The receive in flight (it owns the buffer meanwhile).
    op: Option<RecvFuture>,
    size: usize,
}

struct WriteSide {
    /// Bytes accepted by `poll_write` and not yet handed to a send.
    backlog: Vec<u8>,
    /// The send in flight and how many bytes of it are unconfirmed.
    op: Option<SendFuture>,
    in_flight: usize,
    /// An emptied buffer kept for the next backlog.
    spare: Vec<u8>,
    high_water: usize,
    /// The error a send failed with: every later write and flush fails with it.
    failed: Option<(io::ErrorKind, Option<i32>, String)>,
    shut: bool,
}

impl<S: CompatSocket> CompatStream<S> {
    /// Wraps `stream` with the default buffer sizes ([`DEFAULT_READ_BUFFER`],
    /// [`DEFAULT_WRITE_HIGH_WATER`]).
    pub fn new(stream: S) -> Self {
        Self::with_buffers(stream, DEFAULT_READ_BUFFER, DEFAULT_WRITE_HIGH_WATER)
    }

    /// Wraps `stream` with a receive buffer of `read_buffer` bytes (at least 1) and a write
    /// high-water mark of `write_high_water` bytes (at least 1).
    pub fn with_buffers(stream: S, read_buffer: usize, write_high_water: usize) -> Self {
        let fd = sealed::Sealed::fd(&stream).clone();
        CompatStream {
            inner: stream,
            fd,
            read: ReadSide {
                buf: Vec::new(),
                pos: 0,
                op: None,
                size: read_buffer.max(1),
            },
            write: WriteSide {
                backlog: Vec::new(),
                op: None,
                in_flight: 0,
                spare: Vec::new(),
                high_water: write_high_water.max(1),
                failed: None,
                shut: false,
            },
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Bytes accepted by writes and not yet taken by the kernel.
    pub fn write_buffer_size(&self) -> usize {
        self.write.in_flight + self.write.backlog.len()
    }

    /// Bytes received and not yet read.
    pub fn read_buffer_size(&self) -> usize {
        self.read.buf.len() - self.read.pos
    }

    /// The stream back. Received bytes not yet read go back to the stream (its next
    /// `read` returns them first), as do those of a receive still in flight; unflushed
    /// writes are cancelled (flush first).
    pub fn into_inner(mut self) -> S {
        if self.read.pos < self.read.buf.len() {
            self.fd.salvage(&self.read.buf[self.read.pos..]);
        }
        // A receive in flight is abandoned: its bytes are salvaged to the fd.
        self.read.op = None;
        self.write.op = None;
        self.inner
    }

    /// Waits for received bytes: the unread ones, or what the receive in flight brings (an
    /// empty slice is end of stream).
    pub fn poll_fill_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let read = &mut self.read;
        loop {
            if read.pos < read.buf.len() {
                return Poll::Ready(Ok(&read.buf[read.pos..]));
            }
            match read.op.as_mut() {
                Some(op) => {
                    let (res, buf) = std::task::ready!(Pin::new(op).poll(cx));
                    read.op = None;
                    read.buf = buf;
                    read.pos = 0;
                    match res {
                        Ok(0) => return Poll::Ready(Ok(&[])),
                        Ok(_) => continue,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                None => {
                    let mut buf = std::mem::take(&mut read.buf);
                    buf.clear();
                    if buf.capacity() < read.size {
                        buf.reserve_exact(read.size);
                    }
                    read.pos = 0;
                    read.op = Some(SalvagingRead::new(self.fd.clone(), buf, Recv::stream));
                }
            }
        }
    }

    /// Marks `n` received bytes as read.
    pub fn consume(&mut self, n: usize) {
        self.read.pos = (self.read.pos + n).min(self.read.buf.len());
    }

    /// Copies received bytes into `out` (at most its length); `Ok(0)` for an empty `out`
    /// or at end of stream.
    pub fn poll_read_slice(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let got = std::task::ready!(self.poll_fill_buf(cx))?;
        let n = got.len().min(out.len());
        out[..n].copy_from_slice(&got[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }

    /// Accepts as many bytes of `slices` (in order) as fit under the high-water mark and
    /// starts their send; `Pending` while the unsent bytes reach the mark.
    pub fn poll_write_slices(
        &mut self,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = slices.iter().map(|s| s.len()).sum();
        if total == 0 {
            return Poll::Ready(self.write.check().map(|()| 0));
        }
        // Progress first: a send that completed frees room and starts the backlog.
        if let Poll::Ready(Err(e)) = self.poll_sends(cx) {
            return Poll::Ready(Err(e));
        }
        if self.write.shut {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            )));
        }
        let w = &mut self.write;
        let room = w.high_water.saturating_sub(w.in_flight + w.backlog.len());
        if room == 0 {
            // poll_sends registered the waker with the send in flight.
            return Poll::Pending;
        }
        let mut left = room;
        for s in slices {
            let n = s.len().min(left);
            w.backlog.extend_from_slice(&s[..n]);
            left -= n;
            if left == 0 {
                break;
            }
        }
        let accepted = room - left;
        if w.op.is_none() {
            self.start_send();
        }
        Poll::Ready(Ok(accepted))
    }

    /// As [`CompatStream::poll_write_slices`] for one slice.
    pub fn poll_write_bytes(
        &mut self,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_slices(cx, &[IoSlice::new(data)])
    }

    /// Waits until the kernel took every byte written so far.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_sends(cx)
    }

    /// Flushes, then shuts the write half (`shutdown(SHUT_WR)`; the peer reads end of
    /// stream). Later calls return at once.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_sends(cx))?;
        if !self.write.shut {
            self.write.shut = true;
            sealed::Sealed::shutdown(&self.inner, Shutdown::Write)?;
        }
        Poll::Ready(Ok(()))
    }

    /// Drives the sends: completes the one in flight (resubmitting a short send's rest),
    /// then sends the backlog; `Ready` once nothing is left unsent.
    fn poll_sends(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            self.write.check()?;
            let Some(op) = self.write.op.as_mut() else {
                if self.write.backlog.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                self.start_send();
                continue;
            };
            let (res, slice) = std::task::ready!(Pin::new(op).poll(cx));
            self.write.op = None;
            let (begin, end) = (slice.begin(), slice.end());
            let buf = slice.into_inner();
            match res {
                Ok(0) => {
                    self.write.in_flight = 0;
                    self.write.fail(&io::Error::from(io::ErrorKind::WriteZero));
                }
                Ok(n) if begin + n < end => {
                    self.write.in_flight -= n;
                    self.write.op = Some(Op::new(Send::new(
                        self.fd.clone(),
                        buf.slice(begin + n..end),
                    )));
                }
                Ok(_) => {
                    self.write.in_flight = 0;
                    let mut buf = buf;
                    buf.clear();
                    self.write.spare = buf;
                }
                Err(e) => {
                    self.write.in_flight = 0;
                    self.write.fail(&e);
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Hands the backlog to a new send (none is in flight).
    fn start_send(&mut self) {
        let w = &mut self.write;
        debug_assert!(w.op.is_none());
        let spare = std::mem::take(&mut w.spare);
        let buf = std::mem::replace(&mut w.backlog, spare);
        let len = buf.len();
        w.in_flight = len;
        w.op = Some(Op::new(Send::new(self.fd.clone(), buf.slice(0..len))));
    }
}

impl WriteSide {
    fn fail(&mut self, e: &io::Error) {
        self.failed = Some((e.kind(), e.raw_os_error(), e.to_string()));
        self.backlog.clear();
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            None => Ok(()),
            Some((_, Some(code), _)) => Err(io::Error::from_raw_os_error(*code)),
            Some((kind, None, msg)) => Err(io::Error::new(*kind, msg.clone())),
        }
    }
}

impl<S: CompatSocket + std::fmt::Debug> std::fmt::Debug for CompatStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompatStream")
            .field("inner", &self.inner)
            .field("unread", &self.read_buffer_size())
            .field("unsent", &self.write_buffer_size())
            .finish()
    }
}

impl TcpStream {
    /// Wraps the stream for tokio, `futures-io` and hyper ([`CompatStream::new`]).
    pub fn compat(self) -> CompatStream<TcpStream> {
        CompatStream::new(self)
    }
}

impl UnixStream {
    /// Wraps the stream for tokio, `futures-io` and hyper ([`CompatStream::new`]).
    pub fn compat(self) -> CompatStream<UnixStream> {
        CompatStream::new(self)
    }
}
