//! The cap on io_uring's kernel worker threads (`IORING_REGISTER_IOWQ_MAX_WORKERS`).
//!
//! Work the kernel cannot finish inline — a buffered read whose pages are not cached on a
//! file system without async buffered reads, an `fsync`, a `statx`, an `openat` whose
//! path is not in the dentry cache — is punted to io-wq, the submitting thread's pool of
//! `iou-wrk-<tid>` kernel threads. Without a cap the kernel allows `4 × CPUs` *bounded*
//! workers (regular files, block devices) per thread and `RLIMIT_NPROC` *unbounded* ones
//! (sockets, pipes: work that may wait forever), which is how runtimes end up with
//! hundreds of worker threads (PITFALLS #19). ringloop never sets `IOSQE_ASYNC`, and caps
//! both pools when a loop is built ([`IowqLimits`], `LoopBuilder::iowq_max_workers`).
//!
//! The limits belong to the *thread's* io-wq, which every ring of that thread shares: a
//! second loop on the same thread replaces the first one's limits. On the epoll engine
//! there is no io-wq (its file ops run on the engine's own pool, see `epoll.rs`).

use std::io;

use io_uring::IoUring;

/// Upper bounds on one thread's io-wq workers; 0 leaves that pool at the kernel's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IowqLimits {
    /// Workers for regular files and block devices (buffered reads and writes, fsync,
    /// statx, path ops).
    pub(crate) bounded: u32,
    /// Workers for work that may block without bound (sockets, pipes, `splice`).
    pub(crate) unbounded: u32,
}

impl Default for IowqLimits {
    /// `bounded`: the kernel's own `4 × CPUs`, but at most 32 (a buffered read that
    /// misses the cache waits on the disk; more threads than that only queue deeper on
    /// it); `unbounded`: 64 (ringloop punts no socket work itself; a few `splice`s or
    /// `IOSQE_ASYNC` users may).
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        IowqLimits {
            bounded: (4 * cpus).clamp(4, 32),
            unbounded: 64,
        }
    }
}

/// Applies `limits` to the calling thread's io-wq (now, or when the kernel creates it)
/// and returns the limits in force before. `[0, 0]` only reads them. A kernel before
/// 5.15 (no such registration) answers `Unsupported`.
pub(crate) fn apply(ring: &IoUring, limits: IowqLimits) -> io::Result<IowqLimits> {
    let mut arg = [limits.bounded, limits.unbounded];
    match ring.submitter().register_iowq_max_workers(&mut arg) {
        Ok(()) => Ok(IowqLimits {
            bounded: arg[0],
            unbounded: arg[1],
        }),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "IORING_REGISTER_IOWQ_MAX_WORKERS needs Linux 5.15+",
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::setup::{RingSize, build_ring};

    #[test]
    fn limits_are_applied_and_read_back() {
        let (ring, _, _) = build_ring(RingSize {
            sq_entries: 8,
            cq_entries: 16,
        })
        .expect("a ring");
        let set = IowqLimits {
            bounded: 3,
            unbounded: 5,
        };
        if apply(&ring, set).is_err() {
            eprintln!("kernel without IOWQ_MAX_WORKERS: skipped");
            return;
        }
        let zero = IowqLimits {
            bounded: 0,
            unbounded: 0,
        };
        assert_eq!(apply(&ring, zero).unwrap(), set);
        let d = IowqLimits::default();
        assert!(
            d.bounded >= 4 && d.bounded <= 32 && d.unbounded == 64,
            "{d:?}"
        );
    }
}
