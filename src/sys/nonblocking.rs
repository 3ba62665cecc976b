//! The syscalls the epoll engine runs: epoll itself, and non-blocking I/O whose result
//! comes back the way a CQE carries it (a count or fd, or `-errno`).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::{cqe_result as res, cvt};

pub(crate) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: no pointers; returns a new fd on success.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: fd is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Registers `fd` edge-triggered for reading and writing, with `fd` as its token.
pub(crate) fn epoll_add(epfd: RawFd, fd: RawFd) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
        u64: fd as u64,
    };
    // SAFETY: ev is a valid epoll_event for the duration of the call.
    cvt(unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
}

/// Removes `fd` (before it is closed, so a reused number starts clean).
pub(crate) fn epoll_del(epfd: RawFd, fd: RawFd) {
    // SAFETY: a null event is allowed for EPOLL_CTL_DEL.
    unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
}

/// Waits for events; `timeout_ms` -1 blocks. EINTR returns 0 events.
pub(crate) fn epoll_wait(
    epfd: RawFd,
    events: &mut [libc::epoll_event],
    timeout_ms: i32,
) -> io::Result<usize> {
    // SAFETY: events is a writable array of `len` epoll_events.
    let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(n as usize)
}

pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd; no pointers.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    }
    Ok(())
}

/// # Safety
///
/// `buf` must be valid for writes of `len` bytes.
pub(crate) unsafe fn recv(fd: RawFd, buf: *mut u8, len: usize, flags: i32) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::recv(fd, buf.cast(), len, flags | libc::MSG_DONTWAIT) })
}

/// # Safety
///
/// `buf` must be valid for reads of `len` bytes.
pub(crate) unsafe fn send(fd: RawFd, buf: *const u8, len: usize, flags: i32) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::send(fd, buf.cast(), len, flags | libc::MSG_DONTWAIT) })
}

/// # Safety
///
/// `buf` must be valid for writes of `len` bytes.
pub(crate) unsafe fn read(fd: RawFd, buf: *mut u8, len: usize, offset: u64) -> i32 {
    if offset != u64::MAX {
        // SAFETY: forwarded from the caller.
        let r = res(unsafe { libc::pread(fd, buf.cast(), len, offset as libc::off_t) });
        // Streams (pipes, sockets, eventfds) have no position: io_uring reads them at
        // their current one whatever the offset, and so do we.
        if r != -libc::ESPIPE {
            return r;
        }
    }
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::read(fd, buf.cast(), len) })
}

/// # Safety
///
/// `buf` must be valid for reads of `len` bytes.
pub(crate) unsafe fn write(fd: RawFd, buf: *const u8, len: usize, offset: u64) -> i32 {
    if offset != u64::MAX {
        // SAFETY: forwarded from the caller.
        let r = res(unsafe { libc::pwrite(fd, buf.cast(), len, offset as libc::off_t) });
        if r != -libc::ESPIPE {
            return r;
        }
    }
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::write(fd, buf.cast(), len) })
}

/// # Safety
///
/// `iov` must point to `count` valid iovecs whose buffers are valid for writes.
pub(crate) unsafe fn readv(fd: RawFd, iov: *const libc::iovec, count: i32, offset: u64) -> i32 {
    if offset != u64::MAX {
        // SAFETY: forwarded from the caller.
        let r = res(unsafe { libc::preadv(fd, iov, count, offset as libc::off_t) });
        if r != -libc::ESPIPE {
            return r;
        }
    }
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::readv(fd, iov, count) })
}

/// # Safety
///
/// `iov` must point to `count` valid iovecs whose buffers are valid for reads.
pub(crate) unsafe fn writev(fd: RawFd, iov: *const libc::iovec, count: i32, offset: u64) -> i32 {
    if offset != u64::MAX {
        // SAFETY: forwarded from the caller.
        let r = res(unsafe { libc::pwritev(fd, iov, count, offset as libc::off_t) });
        if r != -libc::ESPIPE {
            return r;
        }
    }
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::writev(fd, iov, count) })
}

/// # Safety
///
/// `msg` must be a valid msghdr whose buffers are valid for writes.
pub(crate) unsafe fn recvmsg(fd: RawFd, msg: *mut libc::msghdr, flags: i32) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::recvmsg(fd, msg, flags | libc::MSG_DONTWAIT) })
}

/// # Safety
///
/// `msg` must be a valid msghdr whose buffers are valid for reads.
pub(crate) unsafe fn sendmsg(fd: RawFd, msg: *const libc::msghdr, flags: i32) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::sendmsg(fd, msg, flags | libc::MSG_DONTWAIT) })
}

/// # Safety
///
/// `addr`/`len` must be null or valid for writes as accept4 requires.
pub(crate) unsafe fn accept4(
    fd: RawFd,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: i32,
) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::accept4(fd, addr, len, flags) } as isize)
}

/// # Safety
///
/// `addr` must point to `len` valid bytes of a socket address.
pub(crate) unsafe fn connect(fd: RawFd, addr: *const libc::sockaddr, len: u32) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::connect(fd, addr, len) } as isize)
}

pub(crate) fn close(fd: RawFd) -> i32 {
    // SAFETY: the caller hands over ownership of fd (an IORING_OP_CLOSE).
    res(unsafe { libc::close(fd) } as isize)
}

/// The socket's pending error as `-errno` (0 if none).
pub(crate) fn so_error(fd: RawFd) -> i32 {
    match super::socket::get_opt(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
        Ok(0) => 0,
        Ok(code) => -code,
        Err(e) => -e.raw_os_error().unwrap_or(libc::EIO),
    }
}

/// The poll events of `mask` that `fd` has now (0 if none), or `-errno`.
pub(crate) fn poll_now(fd: RawFd, mask: i16) -> i32 {
    let mut pfd = libc::pollfd {
        fd,
        events: mask,
        revents: 0,
    };
    // SAFETY: pfd is one valid pollfd for the duration of the call.
    let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
    if rc < 0 {
        return -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
    }
    i32::from(pfd.revents as u16)
}
