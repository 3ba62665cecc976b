//! The loop's wake-up: an eventfd other threads write ([`Unparker`]) and the driver
//! waits on — on io_uring as a read kept in the ring (re-armed on each completion, with
//! its 8-byte target owned here), on epoll as an fd registered natively.

use std::cell::UnsafeCell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use io_uring::opcode;
use io_uring::squeue::Entry;
use io_uring::types::Fd;

use super::tag;
use crate::sys;

/// Wakes a parked driver from any thread. `Send + Sync + Clone`; it keeps the eventfd
/// open as long as a clone lives.
#[derive(Clone)]
pub(crate) struct Unparker(Arc<OwnedFd>);

impl Unparker {
    pub(super) fn new() -> io::Result<Self> {
        Ok(Unparker(Arc::new(sys::eventfd()?)))
    }

    /// Ends the driver's current (or next) blocking wait.
    pub(crate) fn unpark(&self) {
        // A failed write can only be EBADF-like misuse; the loop also polls its queue.
        let _ = sys::eventfd_signal(&self.0);
    }

    pub(super) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl std::fmt::Debug for Unparker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Unparker({})", self.raw())
    }
}

/// The io_uring side: the read kept on the eventfd.
pub(super) struct WakeRead {
    /// The read's 8-byte target, written by the kernel; lives as long as the driver (or
    /// is leaked with the ring).
    buf: Box<UnsafeCell<u64>>,
    /// A read is in the ring.
    pub(super) armed: bool,
}

impl Default for WakeRead {
    fn default() -> Self {
        WakeRead {
            buf: Box::new(UnsafeCell::new(0)),
            armed: false,
        }
    }
}

impl WakeRead {
    /// The read's SQE, when none is in the ring.
    pub(super) fn sqe(&self, unparker: &Unparker) -> Option<Entry> {
        if self.armed {
            return None;
        }
        Some(
            opcode::Read::new(Fd(unparker.raw()), self.buf.get().cast::<u8>(), 8)
                .offset(u64::MAX)
                .build()
                .user_data(tag::WAKE_READ),
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::driver::{Driver, RingSize, Wait};
    use std::time::{Duration, Instant};

    fn drivers() -> Vec<Driver> {
        let mut d = vec![Driver::new_epoll().unwrap()];
        if let Ok(u) = Driver::new(RingSize {
            sq_entries: 8,
            cq_entries: 16,
        }) {
            d.push(u);
        }
        d
    }

    #[test]
    fn unpark_from_another_thread_ends_a_blocking_wait() {
        for driver in drivers() {
            let unparker = driver.unparker();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                unparker.unpark();
            });
            let started = Instant::now();
            let mut out = Vec::new();
            // Without the wake-up this would block forever (no deadline, no op).
            driver
                .submit_and_reap(Wait::Block, None, &mut out)
                .expect("enter");
            while started.elapsed() < Duration::from_millis(25) {
                // A spurious early return (the eventfd read armed at set-up) is fine:
                // wait again until the other thread's wake-up.
                driver
                    .submit_and_reap(Wait::Block, None, &mut out)
                    .expect("enter");
            }
            t.join().unwrap();
            assert!(out.is_empty(), "the wake-up is internal: {out:?}");
            assert!(started.elapsed() < Duration::from_secs(5));
            assert_eq!(driver.shutdown(Duration::from_secs(1)), 0);
            assert_eq!(driver.in_flight(), 0);
        }
    }
}
