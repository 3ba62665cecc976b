//! [`StreamReader`]: asyncio's buffered reading side of a stream connection.
//!
//! The connection's protocol feeds bytes, end of stream or the error that ended the
//! connection into a [`ReadState`] shared with the reader; read calls take what they need
//! from its buffer and wait (one waker: reads take `&mut self`, so at most one read runs at a
//! time, as asyncio demands at run time) until more arrives.
//!
//! Flow control is asyncio's: when the buffer holds more than twice the `limit`, the
//! transport's reading is paused; it resumes once a read drains the buffer to the limit or
//! below, or when a read has to wait for more data. A read consumes bytes only when it
//! returns them, so dropping a pending read loses nothing.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

use bytes::{Buf, BytesMut};

use super::{Owner, StreamError, copy_error};
use crate::transport::StreamTransport;

/// What the protocol has fed, waiting for the reader.
pub(crate) struct ReadState {
    buffer: BytesMut,
    limit: usize,
    eof: bool,
    exception: Option<io::Error>,
    /// The waiting read, if any.
    waker: Option<Waker>,
    /// Bumped by every feed; a waiting read returns when it changes.
    generation: u64,
    /// The transport to pause and resume; `None` before `connection_made` and after
    /// `connection_lost`.
    transport: Option<StreamTransport>,
    /// Whether we paused the transport's reading.
    paused: bool,
}

impl ReadState {
    pub(crate) fn new(limit: usize) -> Self {
        ReadState {
            buffer: BytesMut::new(),
            limit,
            eof: false,
            exception: None,
            waker: None,
            generation: 0,
            transport: None,
            paused: false,
        }
    }

    pub(crate) fn set_transport(&mut self, transport: Option<StreamTransport>) {
        self.transport = transport;
    }

    fn wake(&mut self) {
        self.generation += 1;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// asyncio's `feed_data`: appends `data`; returns the transport to pause when the
    /// buffer went above twice the limit (the caller pauses it after dropping its borrow).
    pub(crate) fn feed_data(&mut self, data: &[u8]) -> Option<StreamTransport> {
        if data.is_empty() {
            return None;
        }
        self.buffer.extend_from_slice(data);
        self.wake();
        if !self.paused && self.buffer.len() > 2 * self.limit {
            let t = self.transport.clone()?;
            self.paused = true;
            return Some(t);
        }
        None
    }

    /// asyncio's `feed_eof` (idempotent).
    pub(crate) fn feed_eof(&mut self) {
        self.eof = true;
        self.wake();
    }

    /// asyncio's `set_exception`: every read from now on fails with (a copy of) `err`.
    pub(crate) fn set_exception(&mut self, err: io::Error) {
        self.exception = Some(err);
        self.wake();
    }

    pub(crate) fn exception(&self) -> Option<io::Error> {
        self.exception.as_ref().map(copy_error)
    }

    fn check_exception(&self) -> Result<(), StreamError> {
        match &self.exception {
            Some(e) => Err(StreamError::Io(copy_error(e))),
            None => Ok(()),
        }
    }

    /// The transport to resume, when we paused it and the buffer is down to the limit.
    fn maybe_resume(&mut self) -> Option<StreamTransport> {
        if self.paused && self.buffer.len() <= self.limit {
            self.paused = false;
            return self.transport.clone();
        }
        None
    }

    /// Takes the first `n` buffered bytes.
    fn take(&mut self, n: usize) -> (Vec<u8>, Option<StreamTransport>) {
        let n = n.min(self.buffer.len());
        let data = self.buffer[..n].to_vec();
        self.buffer.advance(n);
        (data, self.maybe_resume())
    }
}

/// Position of `sep` in `hay`.
fn find(hay: &[u8], sep: &[u8]) -> Option<usize> {
    match sep {
        [b] => hay.iter().position(|x| x == b),
        _ => hay.windows(sep.len()).position(|w| w == sep),
    }
}

fn resume(t: Option<StreamTransport>) {
    if let Some(t) = t {
        t.resume_reading();
    }
}

/// The reading side of a stream connection, as asyncio's `StreamReader`; made by
/// [`open_connection`](super::open_connection) and [`start_server`](super::start_server)
/// (and their Unix twins).
///
/// Reads take `&mut self`: one read at a time. Each read is cancel-safe — bytes leave the
/// buffer only when a read returns them. When the reader and every clone of its
/// [`StreamWriter`](super::StreamWriter) are dropped, the connection is closed.
pub struct StreamReader {
    st: Rc<RefCell<ReadState>>,
    _owner: Option<Rc<Owner>>,
}

impl StreamReader {
    pub(crate) fn new(st: Rc<RefCell<ReadState>>, owner: Option<Rc<Owner>>) -> Self {
        StreamReader { st, _owner: owner }
    }

    /// The buffer limit: reading is paused above twice this many buffered bytes, and
    /// [`readuntil`](StreamReader::readuntil) gives up on a chunk longer than it.
    pub fn limit(&self) -> usize {
        self.st.borrow().limit
    }

    /// Bytes received and not read yet.
    pub fn buffered(&self) -> usize {
        self.st.borrow().buffer.len()
    }

    /// Whether the peer ended the stream and everything before that was read.
    pub fn at_eof(&self) -> bool {
        let st = self.st.borrow();
        st.eof && st.buffer.is_empty()
    }

    /// The error that ended the connection, if one did (reads fail with it from then on).
    pub fn exception(&self) -> Option<io::Error> {
        self.st.borrow().exception()
    }

    /// Waits until something is fed (data, end of stream or an error), resuming the
    /// transport first if we had paused it — the data asked for may be behind the pause.
    async fn wait_for_data(&mut self) -> Result<(), StreamError> {
        let (generation, paused) = {
            let mut st = self.st.borrow_mut();
            let paused = if st.paused {
                st.paused = false;
                st.transport.clone()
            } else {
                None
            };
            (st.generation, paused)
        };
        resume(paused);
        poll_fn(|cx| {
            let mut st = self.st.borrow_mut();
            if st.generation != generation {
                Poll::Ready(())
            } else {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        self.st.borrow().check_exception()
    }

    /// Reads up to `n` bytes: what is buffered, else waits for the next arrival. An empty
    /// result means end of stream (or `n == 0`).
    pub async fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        self.st.borrow().check_exception()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let must_wait = {
            let st = self.st.borrow();
            st.buffer.is_empty() && !st.eof
        };
        if must_wait {
            self.wait_for_data().await?;
        }
        let (data, t) = self.st.borrow_mut().take(n);
        resume(t);
        Ok(data)
    }

    /// Reads until end of stream (asyncio's `read(-1)`).
    pub async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let (eof, t) = {
                let mut st = self.st.borrow_mut();
                st.check_exception()?;
                let (data, t) = st.take(usize::MAX);
                if out.is_empty() {
                    out = data;
                } else {
                    out.extend_from_slice(&data);
                }
                (st.eof, t)
            };
            resume(t);
            if eof {
                return Ok(out);
            }
            self.wait_for_data().await?;
        }
    }

    /// Reads exactly `n` bytes. End of stream first is
    /// [`StreamError::IncompleteRead`] with the bytes that did arrive (they leave the
    /// buffer).
    pub async fn readexactly(&mut self, n: usize) -> Result<Vec<u8>, StreamError> {
        self.st.borrow().check_exception()?;
        if n == 0 {
            return Ok(Vec::new());
        }
        loop {
            {
                let mut st = self.st.borrow_mut();
                if st.buffer.len() >= n {
                    break;
                }
                if st.eof {
                    let (partial, t) = st.take(usize::MAX);
                    drop(st);
                    resume(t);
                    return Err(StreamError::IncompleteRead {
                        partial,
                        expected: Some(n),
                    });
                }
            }
            self.wait_for_data().await?;
        }
        let (data, t) = self.st.borrow_mut().take(n);
        resume(t);
        Ok(data)
    }

    /// Reads through the next `sep` (included in the result).
    ///
    /// As asyncio: end of stream before `sep` is [`StreamError::IncompleteRead`] with
    /// everything buffered (which leaves the buffer); more than [`limit`](Self::limit)
    /// bytes before `sep` is [`StreamError::LimitOverrun`], and the data **stays** in the
    /// buffer (read it with [`read`](Self::read) or [`readexactly`](Self::readexactly)).
    /// An empty separator is an `InvalidInput` error.
    pub async fn readuntil(&mut self, sep: &[u8]) -> Result<Vec<u8>, StreamError> {
        if sep.is_empty() {
            return Err(StreamError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "readuntil: the separator must be at least one byte",
            )));
        }
        self.st.borrow().check_exception()?;
        // Bytes from the start of the buffer known not to hold the separator's start.
        let mut offset = 0;
        let isep = loop {
            {
                let mut st = self.st.borrow_mut();
                let buflen = st.buffer.len();
                if buflen.saturating_sub(offset) >= sep.len() {
                    if let Some(i) = find(&st.buffer[offset..], sep) {
                        break offset + i;
                    }
                    offset = buflen + 1 - sep.len();
                    if offset > st.limit {
                        return Err(StreamError::LimitOverrun { consumed: offset });
                    }
                }
                // A last feed may complete the separator and end the stream together, so
                // end of stream is checked after the buffer.
                if st.eof {
                    let (partial, t) = st.take(usize::MAX);
                    drop(st);
                    resume(t);
                    return Err(StreamError::IncompleteRead {
                        partial,
                        expected: None,
                    });
                }
            }
            self.wait_for_data().await?;
        };
        if isep > self.st.borrow().limit {
            return Err(StreamError::LimitOverrun { consumed: isep });
        }
        let (data, t) = self.st.borrow_mut().take(isep + sep.len());
        resume(t);
        Ok(data)
    }

    /// Reads one line, `\n` included. At end of stream it returns what is left (empty
    /// once everything was read) rather than an error.
    ///
    /// A line longer than the limit is [`StreamError::LimitOverrun`], as asyncio's
    /// `readline` (which raises `ValueError`): the over-long line is dropped from the
    /// buffer — through its `\n` if that was already received, else everything buffered.
    pub async fn readline(&mut self) -> Result<Vec<u8>, StreamError> {
        match self.readuntil(b"\n").await {
            Ok(line) => Ok(line),
            Err(StreamError::IncompleteRead { partial, .. }) => Ok(partial),
            Err(StreamError::LimitOverrun { consumed }) => {
                let t = {
                    let mut st = self.st.borrow_mut();
                    if st.buffer.get(consumed) == Some(&b'\n') {
                        st.buffer.advance(consumed + 1);
                    } else {
                        st.buffer.clear();
                    }
                    st.maybe_resume()
                };
                resume(t);
                Err(StreamError::LimitOverrun { consumed })
            }
            Err(e) => Err(e),
        }
    }
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.st.borrow();
        f.debug_struct("StreamReader")
            .field("buffered", &st.buffer.len())
            .field("limit", &st.limit)
            .field("eof", &st.eof)
            .field("paused", &st.paused)
            .field("exception", &st.exception)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    //! The buffer rules on a reader fed by hand (no socket, so chunking is exact).

    use super::*;
    use std::time::Duration;

    fn reader(limit: usize) -> (StreamReader, Rc<RefCell<ReadState>>) {
        let st = Rc::new(RefCell::new(ReadState::new(limit)));
        (StreamReader::new(st.clone(), None), st)
    }

    fn feed_later(st: &Rc<RefCell<ReadState>>, ms: u64, data: &'static [u8], eof: bool) {
        let st = st.clone();
        crate::get_running_loop()
            .unwrap()
            .call_later(Duration::from_millis(ms), move || {
                let mut st = st.borrow_mut();
                st.feed_data(data);
                if eof {
                    st.feed_eof();
                }
            });
    }

    #[test]
    fn readuntil_waits_across_feeds_and_finds_split_separators() {
        crate::run(async {
            let (mut r, st) = reader(64);
            st.borrow_mut().feed_data(b"abcSE");
            feed_later(&st, 5, b"Pdef", false);
            assert_eq!(r.readuntil(b"SEP").await.unwrap(), b"abcSEP");
            assert_eq!(r.buffered(), 3);
            feed_later(&st, 5, b"\nrest", true);
            assert_eq!(r.readline().await.unwrap(), b"def\n");
            assert_eq!(r.readline().await.unwrap(), b"rest");
            assert!(r.at_eof());
            assert_eq!(r.readline().await.unwrap(), b"");
        })
        .unwrap();
    }

    #[test]
    fn readuntil_overrun_leaves_the_buffer_readline_overrun_discards() {
        crate::run(async {
            // Not found: offset = buffered + 1 - len(sep) > limit; data stays.
            let (mut r, st) = reader(8);
            st.borrow_mut().feed_data(b"0123456789ab");
            match r.readuntil(b"\n").await {
                Err(StreamError::LimitOverrun { consumed }) => assert_eq!(consumed, 12),
                other => panic!("{other:?}"),
            }
            assert_eq!(r.buffered(), 12);
            // Found beyond the limit: consumed is the separator's position; data stays.
            st.borrow_mut().feed_data(b"\nnext\n");
            match r.readuntil(b"\n").await {
                Err(StreamError::LimitOverrun { consumed }) => assert_eq!(consumed, 12),
                other => panic!("{other:?}"),
            }
            assert_eq!(r.buffered(), 18);
            // readline drops the long line through its newline; the next line survives.
            assert!(matches!(
                r.readline().await,
                Err(StreamError::LimitOverrun { consumed: 12 })
            ));
            assert_eq!(r.readline().await.unwrap(), b"next\n");
            // Without a newline, readline drops everything buffered.
            st.borrow_mut().feed_data(b"xxxxxxxxxxxxxxxx");
            assert!(matches!(
                r.readline().await,
                Err(StreamError::LimitOverrun { consumed: 16 })
            ));
            assert_eq!(r.buffered(), 0);
        })
        .unwrap();
    }

    #[test]
    fn incomplete_reads_carry_the_partial_bytes() {
        crate::run(async {
            let (mut r, st) = reader(64);
            feed_later(&st, 2, b"hello", true);
            match r.readexactly(8).await {
                Err(StreamError::IncompleteRead { partial, expected }) => {
                    assert_eq!((partial.as_slice(), expected), (&b"hello"[..], Some(8)));
                }
                other => panic!("{other:?}"),
            }
            assert!(r.at_eof());
            let (mut r, st) = reader(64);
            st.borrow_mut().feed_data(b"no separator");
            st.borrow_mut().feed_eof();
            match r.readuntil(b"--").await {
                Err(StreamError::IncompleteRead { partial, expected }) => {
                    assert_eq!((partial.as_slice(), expected), (&b"no separator"[..], None));
                }
                other => panic!("{other:?}"),
            }
            assert!(r.readuntil(b"").await.is_err());
        })
        .unwrap();
    }

    #[test]
    fn read_and_read_to_end_and_errors() {
        crate::run(async {
            let (mut r, st) = reader(64);
            st.borrow_mut().feed_data(b"abcdef");
            assert_eq!(r.read(4).await.unwrap(), b"abcd");
            assert_eq!(r.read(0).await.unwrap(), b"");
            feed_later(&st, 2, b"gh", false);
            feed_later(&st, 4, b"ij", true);
            assert_eq!(r.read_to_end().await.unwrap(), b"efghij");
            assert_eq!(r.read(10).await.unwrap(), b"");
            // An error ends every read, even with bytes still buffered.
            let (mut r, st) = reader(64);
            st.borrow_mut().feed_data(b"12");
            st.borrow_mut()
                .set_exception(io::Error::from_raw_os_error(libc::ECONNRESET));
            let e = r.read(1).await.unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
            assert!(matches!(r.readexactly(1).await, Err(StreamError::Io(_))));
            assert!(r.exception().is_some());
        })
        .unwrap();
    }
}
