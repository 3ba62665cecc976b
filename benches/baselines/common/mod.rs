//! What both hand-written baseline servers need: `TCP_NODELAY` on a socket, and a signalfd
//! for the SIGINT/SIGTERM that stops them.

use std::io;

/// Sets `TCP_NODELAY` (best effort: a baseline server echoes either way).
pub fn set_nodelay(fd: i32) {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is a socket this process owns; the option value is a live c_int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Blocks SIGINT and SIGTERM and returns a signalfd that reads them (`SFD_NONBLOCK` added
/// to `SFD_CLOEXEC` when `nonblocking`).
pub fn stop_signal_fd(nonblocking: bool) -> io::Result<i32> {
    let flags = libc::SFD_CLOEXEC | if nonblocking { libc::SFD_NONBLOCK } else { 0 };
    // SAFETY: the sigset is initialized by sigemptyset before use; the calls only read it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, flags);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}
