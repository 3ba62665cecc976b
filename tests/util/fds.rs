//! This process's fds: one way to count them, a settled baseline, a bounded "back to the
//! baseline" check, and the fd limit.
//!
//! Every count here is [`open_fds`]: the entries of `/proc/self/fd` minus the one the
//! directory stream holds while it is read, so counts taken by different tests agree.
//! fd counts are process-wide: tests that take them hold [`serial`](super::serial), or
//! live alone in their binary.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Open fds of this process (entries of `/proc/self/fd`, minus the one `read_dir` holds).
pub fn open_fds() -> usize {
    let dir = std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd");
    // The directory stream itself holds one fd while we count.
    dir.count().saturating_sub(1)
}

/// [`open_fds`] once it holds still: the same over three reads 5 ms apart (at most 1 s).
/// A thread of the test before may still be winding down (or another thread may be
/// reading `/proc/self/fd` too) when a test takes its baseline; a baseline taken while
/// it still closes its fds would be too high.
pub fn settled_open_fds() -> usize {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut last = open_fds();
    let mut same = 0;
    while same < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        let now = open_fds();
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

/// Fails unless [`open_fds`] comes back to `before` (or below: an earlier test's thread
/// closed one meanwhile) within `within`. The wait is for fds whose last holder is on its
/// way out (an executor worker drops a finished job's loop handle, and its wake-up fd, on
/// its own schedule); only *more* fds than before fail.
pub fn assert_fds_back_to(before: usize, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    while open_fds() > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = open_fds();
    assert!(after <= before, "{what}: {after} fds open, {before} before");
}

/// The targets of this process's open fds (`3 -> socket:[N]`, ...), for a readable
/// failure message.
pub fn fd_targets() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for entry in dir.flatten() {
            let target = std::fs::read_link(entry.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            out.push(format!(
                "{} -> {target}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    out
}

/// A pipe as two owned fds: (read end, write end). Both close-on-exec, blocking.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().expect("pipe");
    (OwnedFd::from(r), OwnedFd::from(w))
}

/// This process's `RLIMIT_NOFILE`.
pub fn nofile() -> libc::rlimit {
    // SAFETY: getrlimit fills the struct we pass.
    unsafe {
        let mut rl = std::mem::zeroed::<libc::rlimit>();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl
    }
}

/// Sets this process's `RLIMIT_NOFILE`. The limit bounds fd *numbers* (a new fd is the
/// lowest free number, and must be below `rlim_cur`), not the count.
pub fn set_nofile(rl: libc::rlimit) {
    // SAFETY: setrlimit reads the struct we pass.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// Puts the fd limit back when dropped (also when the test panics).
pub struct NofileGuard(pub libc::rlimit);

impl Drop for NofileGuard {
    fn drop(&mut self) {
        set_nofile(self.0);
    }
}
