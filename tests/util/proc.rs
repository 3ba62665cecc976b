//! This process's resources: resident memory and CPU time.

use std::time::Duration;

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

/// User + system CPU time of the calling thread (a loop's own cost, unaffected by other
/// test threads).
pub fn thread_cpu() -> Duration {
    cpu_time(libc::RUSAGE_THREAD)
}

/// User + system CPU time of this whole process.
pub fn process_cpu() -> Duration {
    cpu_time(libc::RUSAGE_SELF)
}

fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let ru = unsafe {
        let mut ru = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(who, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
