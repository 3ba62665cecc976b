//! Raw signal syscalls: the thread's signal mask, `signalfd`, and discarding a pending
//! signal. [`crate::signal`] builds the loop's signal handlers on these.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::cvt;

/// Bytes in one `struct signalfd_siginfo`, the unit a signalfd read returns.
pub(crate) const SIGINFO_SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();

/// The lowest real-time signal the C library leaves to programs (glibc keeps the first
/// two or three for its threads).
pub(crate) fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

/// The highest real-time signal.
pub(crate) fn sigrtmax() -> i32 {
    libc::SIGRTMAX()
}

/// A `sigset_t`.
#[derive(Clone, Copy)]
pub(crate) struct SigSet(libc::sigset_t);

impl SigSet {
    /// The empty set.
    pub(crate) fn empty() -> Self {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initializes the set it is given; it cannot fail for a
        // valid pointer.
        unsafe { libc::sigemptyset(set.as_mut_ptr()) };
        // SAFETY: initialized just above.
        SigSet(unsafe { set.assume_init() })
    }

    /// A set holding `sig` only.
    pub(crate) fn single(sig: i32) -> io::Result<Self> {
        let mut set = Self::empty();
        set.add(sig)?;
        Ok(set)
    }

    /// Adds `sig` (EINVAL when it is not a signal number).
    pub(crate) fn add(&mut self, sig: i32) -> io::Result<()> {
        // SAFETY: self.0 is an initialized sigset_t.
        cvt(unsafe { libc::sigaddset(&mut self.0, sig) }).map(drop)
    }

    /// Removes `sig` (EINVAL when it is not a signal number).
    pub(crate) fn remove(&mut self, sig: i32) -> io::Result<()> {
        // SAFETY: self.0 is an initialized sigset_t.
        cvt(unsafe { libc::sigdelset(&mut self.0, sig) }).map(drop)
    }

    /// Whether `sig` is in the set (false for a non-signal).
    pub(crate) fn contains(&self, sig: i32) -> bool {
        // SAFETY: self.0 is an initialized sigset_t; sigismember only reads it.
        unsafe { libc::sigismember(&self.0, sig) == 1 }
    }
}

/// Calls `pthread_sigmask(how, set)` on the calling thread and returns the old mask.
fn thread_sigmask(how: libc::c_int, set: &SigSet) -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    // SAFETY: both pointers are to initialized sigset_t values that live across the call.
    let rc = unsafe { libc::pthread_sigmask(how, &set.0, &mut old.0) };
    if rc != 0 {
        // pthread_sigmask returns the error number instead of setting errno.
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(old)
}

/// Blocks `sig` for the calling thread; returns whether it was blocked already.
pub(crate) fn block_signal(sig: i32) -> io::Result<bool> {
    let old = thread_sigmask(libc::SIG_BLOCK, &SigSet::single(sig)?)?;
    Ok(old.contains(sig))
}

/// Unblocks `sig` for the calling thread.
pub(crate) fn unblock_signal(sig: i32) -> io::Result<()> {
    thread_sigmask(libc::SIG_UNBLOCK, &SigSet::single(sig)?).map(drop)
}

/// The calling thread's signal mask.
#[cfg(test)]
pub(crate) fn current_sigmask() -> io::Result<SigSet> {
    thread_sigmask(libc::SIG_BLOCK, &SigSet::empty())
}

/// A new non-blocking, close-on-exec signalfd reading the signals of `mask`.
pub(crate) fn signalfd(mask: &SigSet) -> io::Result<OwnedFd> {
    // SAFETY: -1 asks for a new fd; the mask pointer is valid for the call. On success
    // the return value is a fresh fd that we own.
    let fd = cvt(unsafe { libc::signalfd(-1, &mask.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    // SAFETY: fd is a fresh, valid fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Replaces the set of signals an existing signalfd reads.
pub(crate) fn signalfd_set_mask(fd: &impl AsRawFd, mask: &SigSet) -> io::Result<()> {
    // SAFETY: fd is an open signalfd (the caller owns it); the mask pointer is valid for
    // the call. Given an existing signalfd, the call only updates its mask.
    cvt(unsafe { libc::signalfd(fd.as_raw_fd(), &mask.0, 0) }).map(drop)
}

/// Takes every pending instance of `sig` (blocked in this thread) off the thread's and
/// the process's pending sets without handling it; returns how many were taken.
pub(crate) fn discard_pending(sig: i32) -> io::Result<usize> {
    let set = SigSet::single(sig)?;
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut taken = 0;
    // Real-time signals queue; bound the loop anyway (RLIMIT_SIGPENDING is finite).
    for _ in 0..100_000 {
        // SAFETY: the set and timespec pointers are valid for the call; a null siginfo
        // pointer is allowed.
        let rc = unsafe { libc::sigtimedwait(&set.0, std::ptr::null_mut(), &zero) };
        if rc == -1 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(taken),
                Some(libc::EINTR) => continue,
                _ => return Err(e),
            }
        }
        taken += 1;
    }
    Ok(taken)
}

/// The signal number (`ssi_signo`) of each whole `signalfd_siginfo` in `bytes`.
pub(crate) fn siginfo_signals(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    bytes.chunks_exact(SIGINFO_SIZE).map(|info| {
        // ssi_signo is the struct's first field, a u32.
        let mut signo = [0u8; 4];
        signo.copy_from_slice(&info[..4]);
        u32::from_ne_bytes(signo) as i32
    })
}
