//! Raw process syscalls: `pidfd_open`, `pidfd_send_signal`, `waitid` on a pidfd, and the
//! `SIGPIPE` disposition check. [`crate::process`] builds child processes on these: a
//! child is named by its pidfd from spawn to reaping, so a recycled pid can never be
//! signalled or waited for by mistake.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// How a child ended, decoded from its `siginfo_t` (`CLD_EXITED` → the exit code;
/// `CLD_KILLED`/`CLD_DUMPED` → the signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Exited(i32),
    Signaled(i32),
}

/// A zeroed `siginfo_t` for `waitid` to fill.
pub(crate) fn zeroed_siginfo() -> libc::siginfo_t {
    // SAFETY: siginfo_t is plain old data (integers and unions of integers and pointers);
    // all-zero bytes are a valid value.
    unsafe { MaybeUninit::<libc::siginfo_t>::zeroed().assume_init() }
}

/// Decodes what `waitid(WEXITED)` wrote. `None` when the kernel wrote nothing (the pid
/// field is still zero: `WNOHANG` and the child is still running).
pub(crate) fn decode_siginfo(info: &libc::siginfo_t) -> Option<Ended> {
    // SAFETY: waitid fills the SIGCHLD member of the union (or leaves the zeroes we put
    // there); reading si_pid/si_status from it is what the union is for.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_KILLED | libc::CLD_DUMPED => Ended::Signaled(status),
        _ => Ended::Exited(status),
    })
}

/// A close-on-exec pidfd for the child `pid` (Linux 5.3+).
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, no pointers; on success it returns a new
    // fd (always O_CLOEXEC) that we own.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = cvt(rc as libc::c_int)?;
    // SAFETY: fd is a fresh, valid fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `sig` to the process `pidfd` names. `ESRCH` once it has been reaped.
pub(crate) fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> io::Result<()> {
    // SAFETY: the caller keeps the fd open across the call; a null siginfo pointer is allowed
    // and means "as kill(2) would".
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    cvt(rc as libc::c_int).map(drop)
}

/// Reaps the child `pidfd` names if it has ended (`waitid(P_PIDFD, WEXITED | WNOHANG)`);
/// `Ok(None)` while it runs. `ECHILD` when someone else reaped it.
pub(crate) fn waitid_pidfd_nohang(pidfd: RawFd) -> io::Result<Option<Ended>> {
    let mut info = zeroed_siginfo();
    loop {
        // SAFETY: info is a valid siginfo_t the kernel may write; the caller keeps the fd
        // open across the call.
        let rc = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        match cvt(rc) {
            Ok(_) => return Ok(decode_siginfo(&info)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether the calling thread blocks any signal (for example one the loop handles through
/// a signalfd).
pub(crate) fn thread_blocks_signals() -> bool {
    let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
    let mut old = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes `empty`; pthread_sigmask with SIG_BLOCK and an empty
    // set changes nothing and writes the current mask into `old`.
    let old = unsafe {
        libc::sigemptyset(empty.as_mut_ptr());
        if libc::pthread_sigmask(libc::SIG_BLOCK, empty.as_ptr(), old.as_mut_ptr()) != 0 {
            return false;
        }
        old.assume_init()
    };
    // SAFETY: `old` is an initialized sigset_t; sigismember only reads it.
    (1..=libc::SIGRTMAX()).any(|sig| unsafe { libc::sigismember(&old, sig) } == 1)
}

/// Makes the child of `cmd` start with an empty signal mask. `std::process::Command`
/// keeps the parent thread's mask across fork and exec, so a signal the loop's thread
/// blocks (to read it from a signalfd) would stay blocked in the child.
pub(crate) fn clear_sigmask_on_exec(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the set it is given.
    let empty = unsafe {
        libc::sigemptyset(empty.as_mut_ptr());
        empty.assume_init()
    };
    let reset = move || {
        // SAFETY: `empty` is an initialized sigset_t owned by this closure; a null old-set
        // pointer is allowed. pthread_sigmask is async-signal-safe.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    };
    // SAFETY: the hook runs in the child between fork and exec and only calls
    // pthread_sigmask (async-signal-safe) on a set it owns: no allocation, no lock, nothing
    // of the parent's ring.
    unsafe { cmd.pre_exec(reset) };
}

/// Whether `SIGPIPE` has its default action (terminate) in this process.
pub(crate) fn sigpipe_is_default() -> bool {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only queries; `old` is valid for the kernel to fill.
    let rc = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), old.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: sigaction succeeded and filled `old`.
    let old = unsafe { old.assume_init() };
    old.sa_sigaction == libc::SIG_DFL
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    #[allow(clippy::zombie_processes)] // reaped through the pidfd below
    fn signal_and_reap_through_a_pidfd() {
        let child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .expect("spawn sleep");
        let pidfd = pidfd_open(child.id()).expect("pidfd_open");
        assert_eq!(waitid_pidfd_nohang(pidfd.as_raw_fd()).unwrap(), None);
        pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGTERM).unwrap();
        let ended = loop {
            if let Some(e) = waitid_pidfd_nohang(pidfd.as_raw_fd()).unwrap() {
                break e;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(ended, Ended::Signaled(libc::SIGTERM));
        let e = pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGTERM).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }
}
