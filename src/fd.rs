//! File descriptors shared between their owner and the operations in flight on them.
//!
//! An fd must not be closed while an SQE that names it is still queued or in the kernel:
//! the number could be reused by a new file, and the old op would act on it. So every op
//! holds a [`SharedFd`] clone, and the fd is closed only when the last clone goes — the
//! owner's, or the orphaned op's after its CQE.
//!
//! [`Fd`] is the public face: async `read`/`write`/`readv`/`writev`/`close` on any fd
//! (pipes, files, sockets, eventfds), each an io_uring op with an owned buffer.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};
use std::task::Waker;

use crate::buf::{IoBuf, IoBufMut};
use crate::driver::Driver;
use crate::op::{self, CURRENT_POSITION, Op};

/// An owned fd, reference-counted by its owner and every op in flight on it.
#[derive(Clone)]
pub(crate) struct SharedFd(Rc<FdOwner>);

/// Closes the fd when the last [`SharedFd`] goes, telling the engine first (the epoll
/// engine forgets the number's registration, so a reused number starts clean).
struct FdOwner {
    fd: Option<OwnedFd>,
    /// The loop's driver where the fd was made: told of the close even when the fd goes
    /// while that loop is neither running nor current (else a reused number would keep
    /// a stale epoll registration there).
    made_on: Weak<Driver>,
    /// Bytes a cancelled stream read took from the fd before its cancel (its CQE came with
    /// data after its future was dropped): the next reads return them first, in order.
    salvaged: RefCell<VecDeque<u8>>,
    /// Reads waiting in the kernel while salvaged bytes arrived: woken to give them out.
    salvage_waiters: RefCell<Vec<Waker>>,
}

impl Drop for FdOwner {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            crate::event_loop::fd_closing(fd.as_raw_fd(), &self.made_on);
        }
    }
}

impl SharedFd {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        let made_on = crate::event_loop::current_driver()
            .map(|d| Rc::downgrade(&d))
            .unwrap_or_default();
        SharedFd(Rc::new(FdOwner {
            fd: Some(fd),
            made_on,
            salvaged: RefCell::new(VecDeque::new()),
            salvage_waiters: RefCell::new(Vec::new()),
        }))
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }

    /// Keeps bytes an abandoned read took from the stream, for the next read; wakes the
    /// reads waiting meanwhile.
    pub(crate) fn salvage(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.0.salvaged.borrow_mut().extend(bytes);
        for w in self.0.salvage_waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Whether salvaged bytes wait to be read.
    pub(crate) fn has_salvaged(&self) -> bool {
        !self.0.salvaged.borrow().is_empty()
    }

    /// Wakes `waker` when bytes are salvaged.
    pub(crate) fn wait_for_salvage(&self, waker: &Waker) {
        let mut waiters = self.0.salvage_waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    /// Appends bytes read after the salvaged ones (they came later on the stream).
    pub(crate) fn append_salvaged(&self, bytes: &[u8]) {
        self.0.salvaged.borrow_mut().extend(bytes);
    }

    /// Moves salvaged bytes into the start of `buf` (as much as fits); returns the count.
    pub(crate) fn take_salvaged<B: IoBufMut>(&self, buf: &mut B) -> usize {
        let mut salvaged = self.0.salvaged.borrow_mut();
        let n = crate::buf::fill_start(buf, salvaged.make_contiguous());
        salvaged.drain(..n);
        n
    }

    /// The fd itself, if no op holds it any more.
    pub(crate) fn try_unwrap(self) -> Result<OwnedFd, SharedFd> {
        match Rc::try_unwrap(self.0) {
            Ok(mut owner) => {
                let fd = owner
                    .fd
                    .take()
                    .expect("an FdOwner holds its fd until dropped");
                crate::event_loop::fd_closing(fd.as_raw_fd(), &owner.made_on);
                Ok(fd)
            }
            Err(rc) => Err(SharedFd(rc)),
        }
    }
}

impl fmt::Debug for SharedFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedFd({})", self.raw())
    }
}

/// Any file descriptor, with its I/O done through the ring.
///
/// Reads and writes take owned buffers and give them back, as every ringloop op does.
/// Dropping an `Fd` while an op on it is in flight is safe: the op keeps the fd open (and
/// its buffer alive) until its completion arrives.
///
/// # Examples
///
/// ```
/// use std::os::fd::OwnedFd;
/// use ringloop::fd::Fd;
///
/// let (r, w) = std::io::pipe().unwrap();
/// let (r, w) = (Fd::from(OwnedFd::from(r)), Fd::from(OwnedFd::from(w)));
/// let got = ringloop::run(async move {
///     let (n, _) = w.write(b"ping".to_vec()).await;
///     assert_eq!(n.unwrap(), 4);
///     let (n, buf) = r.read(Vec::with_capacity(16)).await;
///     assert_eq!(n.unwrap(), 4);
///     buf
/// })
/// .unwrap();
/// assert_eq!(got, b"ping");
/// ```
#[derive(Clone, Debug)]
pub struct Fd {
    fd: SharedFd,
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Self {
        Fd {
            fd: SharedFd::new(fd),
        }
    }
}

impl Fd {
    pub(crate) fn shared(&self) -> SharedFd {
        self.fd.clone()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl Fd {
    /// Reads up to `buf.bytes_total()` bytes at the current position (the only position
    /// pipes and sockets have). `Ok(0)` is end of file.
    ///
    /// Bytes a read took before it was cancelled (its future dropped, e.g. by
    /// [`timeout`](crate::timeout)) are not lost: the next read returns them first.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        op::SalvagingRead::new(self.fd.clone(), buf, |fd, buf| {
            op::Read::new(fd, buf, CURRENT_POSITION)
        })
        .await
    }

    /// Reads at `offset` (files).
    pub async fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> (io::Result<usize>, B) {
        Op::new(op::Read::new(self.fd.clone(), buf, offset)).await
    }

    /// Writes `buf`'s initialized bytes at the current position; the count may be short.
    pub async fn write<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        Op::new(op::Write::new(self.fd.clone(), buf, CURRENT_POSITION)).await
    }

    /// Writes at `offset` (files).
    pub async fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> (io::Result<usize>, B) {
        Op::new(op::Write::new(self.fd.clone(), buf, offset)).await
    }

    /// Writes all of `buf`, continuing after short writes, in order.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        let mut done = 0;
        let mut buf = buf;
        while done < total {
            let (res, slice) = self.write(buf.slice(done..total)).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    return (Err(io::ErrorKind::WriteZero.into()), buf);
                }
                Ok(n) => done += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Reads into several buffers in order (one `readv`).
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        match op::Readv::new(self.fd.clone(), bufs, CURRENT_POSITION) {
            Ok(readv) => Op::new(readv).await,
            Err((e, bufs)) => (Err(e), bufs),
        }
    }

    /// Writes several buffers in order (one `writev`); the count may be short.
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        match op::Writev::new(self.fd.clone(), bufs, CURRENT_POSITION) {
            Ok(writev) => Op::new(writev).await,
            Err((e, bufs)) => (Err(e), bufs),
        }
    }

    /// Closes the fd through the ring and reports the kernel's answer.
    ///
    /// If ops on it are still in flight (their futures were dropped), the fd is closed
    /// when the last of them completes instead, and this returns `Ok(())`.
    pub async fn close(self) -> io::Result<()> {
        close_shared(self.fd).await
    }

    /// Wraps a raw fd.
    ///
    /// # Safety
    ///
    /// `fd` must be an open fd that nothing else owns or closes.
    pub unsafe fn from_raw_fd(fd: RawFd) -> Self {
        // SAFETY: forwarded to the caller.
        Fd::from(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Completes at once on the ring: a round trip through the kernel, for tests and benches.
pub async fn nop() -> io::Result<()> {
    Op::new(op::Nop).await
}

/// Closes `fd` through the ring if this is its last holder (else the last in-flight op
/// that holds it closes it, and this is `Ok(())`); outside a loop it closes at once.
/// What [`Fd::close`] and `fs::File::close` do.
pub(crate) async fn close_shared(fd: SharedFd) -> io::Result<()> {
    match fd.try_unwrap() {
        Ok(owned) => {
            if crate::event_loop::current_driver().is_err() {
                drop(owned);
                return Ok(());
            }
            Op::new(op::Close::new(owned)).await
        }
        Err(_shared) => Ok(()),
    }
}
