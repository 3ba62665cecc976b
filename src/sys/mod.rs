//! Raw system calls, in one place. Everything above this module works with owned types
//! (`OwnedFd`, `io::Result`); nothing else in the crate calls `libc` for syscalls except the
//! driver's ring set-up.

pub(crate) mod affinity;
pub(crate) mod fs;
pub(crate) mod nonblocking;
pub(crate) mod process;
pub(crate) mod signal;
pub(crate) mod socket;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Turns a `-1`-on-error return value into an `io::Result`.
pub(crate) fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A syscall's return value in the CQE convention: the count or fd, or `-errno` when it
/// is negative — how the epoll engine's attempts and the file pool report a result.
pub(crate) fn cqe_result(rc: isize) -> i32 {
    if rc < 0 {
        -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        i32::try_from(rc).unwrap_or(i32::MAX)
    }
}

/// A close-on-exec duplicate of `fd` (which must be open for the call).
pub(crate) fn dup_cloexec(fd: std::os::fd::RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes no pointers; an invalid fd is EBADF.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `new` is a fresh, valid fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A close-on-exec eventfd. It is blocking on purpose: io_uring returns `EAGAIN` for a
/// read on an `O_NONBLOCK` fd instead of waiting, and the loop keeps a read on it in the ring.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; on success it returns a new fd that we own.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
    // SAFETY: fd is a fresh, valid fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter (wakes a reader). A full counter (EAGAIN) already
/// guarantees a wake-up, so it is not an error.
pub(crate) fn eventfd_signal(fd: &OwnedFd) -> io::Result<()> {
    let one: u64 = 1;
    // SAFETY: we pass a pointer to 8 readable bytes that live across the call.
    let rc = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    if rc == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
    }
    Ok(())
}

/// This process's id (to detect use of a loop in a forked child).
pub(crate) fn getpid() -> u32 {
    std::process::id()
}
