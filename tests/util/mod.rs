//! Helpers shared by the integration tests: fd counting, patterned payloads, re-running
//! the current test binary as a child process, and small clock checks.
//!
//! Each test file includes this with `mod util;`; not every file uses every helper.
#![allow(dead_code)]

pub mod seccomp;

use std::os::fd::OwnedFd;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Open fds of this process (entries of `/proc/self/fd`, minus the one `read_dir` holds).
pub fn open_fds() -> usize {
    let dir = std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd");
    // The directory stream itself holds one fd while we count.
    dir.count().saturating_sub(1)
}

/// The targets of this process's open fds, for a readable failure message.
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

/// `len` bytes of a pattern that depends on `seed` and on each byte's position, so a
/// shifted, truncated or reordered copy does not verify.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
    (0..len)
        .map(|i| {
            // xorshift32, mixed with the position.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as u8) ^ (i as u8)
        })
        .collect()
}

/// A 64-bit FNV-1a checksum.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A pipe as two owned fds: (read end, write end). Both close-on-exec, blocking.
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().expect("pipe");
    (OwnedFd::from(r), OwnedFd::from(w))
}

/// The env var that tells a re-executed test binary which child role to play.
pub const CHILD_ENV: &str = "RINGLOOP_TEST_CHILD";

/// The child role this process was started with, if any.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Re-runs the current test binary, only the test `test_name`, with `CHILD_ENV=role`, and
/// returns its output. The child is killed if it runs longer than `limit`.
///
/// The child gets no `RINGLOOP_ENGINE` (it tests the default engine's own paths) unless
/// `engine` names one.
pub fn run_child(test_name: &str, role: &str, limit: Duration) -> Output {
    run_child_with_engine(test_name, role, limit, None)
}

/// [`run_child`] with `RINGLOOP_ENGINE` set to `engine` in the child.
pub fn run_child_with_engine(
    test_name: &str,
    role: &str,
    limit: Duration,
    engine: Option<&str>,
) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    let mut command = Command::new(exe);
    command.env_remove("RINGLOOP_ENGINE");
    if let Some(engine) = engine {
        command.env("RINGLOOP_ENGINE", engine);
    }
    let mut child = command
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the test binary as a child");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("child output")
}

/// The child's stdout and stderr, for failure messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// How late a timer may fire on a machine shared with compilers; never how early.
pub const LATE_TOLERANCE: Duration = Duration::from_millis(50);

/// Whether the test runs under valgrind (timing bounds are then meaningless).
pub fn under_valgrind() -> bool {
    std::env::var_os("RINGLOOP_UNDER_VALGRIND").is_some()
}

/// Resident set size of this process in bytes (from `/proc/self/statm`).
pub fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("the second field of /proc/self/statm");
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * usize::try_from(page).unwrap_or(4096)
}

/// A count from the environment variable `name`, else `default` (for shorter runs under
/// valgrind, or longer ones by hand).
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}
