//! The part of a loop other threads may touch: a queue of callbacks and task wake-ups,
//! and the driver's [`Unparker`], so a sleeping loop wakes up.
//!
//! The unparker is used only when the loop says it is (about to be) asleep, so a busy
//! loop pays no syscall per remote call. The handshake is two `SeqCst` flags: the loop
//! sets `sleeping` and then checks `pending`; a sender sets `pending` and then swaps
//! `sleeping` — at least one of them sees the other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::driver::Unparker;
use crate::error::Error;
use crate::task::TaskHeader;

/// What another thread can hand the loop.
pub(crate) enum RemoteItem {
    Callback(Box<dyn FnOnce() + Send>),
    Wake(Arc<TaskHeader>),
}

pub(crate) struct Shared {
    queue: Mutex<Vec<RemoteItem>>,
    pending: AtomicBool,
    sleeping: AtomicBool,
    closed: AtomicBool,
    unparker: Unparker,
}

impl Shared {
    pub(crate) fn new(unparker: Unparker) -> Self {
        Shared {
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            unparker,
        }
    }

    /// Queues an item for the loop and wakes it if it sleeps.
    pub(crate) fn push(&self, item: RemoteItem) -> Result<(), Error> {
        {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            if self.closed.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            queue.push(item);
            self.pending.store(true, Ordering::SeqCst);
        }
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.unparker.unpark();
        }
        Ok(())
    }

    /// The loop is about to block; returns false if work arrived meanwhile (don't block).
    pub(crate) fn prepare_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        !self.pending.load(Ordering::SeqCst)
    }

    /// The loop is awake again.
    pub(crate) fn woke(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Whether anything is queued (cheap check).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes everything queued.
    pub(crate) fn drain(&self, out: &mut Vec<RemoteItem>) {
        if self.pending.swap(false, Ordering::SeqCst) {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            out.append(&mut queue);
        }
    }

    /// Refuses further items and returns what was queued (dropped by the caller).
    pub(crate) fn close(&self) -> Vec<RemoteItem> {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        self.closed.store(true, Ordering::SeqCst);
        self.pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut *queue)
    }
}

/// A handle other threads use to schedule callbacks on a loop; `Send + Sync + Clone`.
///
/// # Examples
///
/// ```
/// let event_loop = ringloop::EventLoop::new().unwrap();
/// let remote = event_loop.remote();
/// let stopper = event_loop.remote();
/// std::thread::spawn(move || {
///     remote.call_soon_threadsafe(|| println!("hello from another thread")).unwrap();
///     stopper.call_soon_threadsafe(|| ringloop::get_running_loop().unwrap().stop()).unwrap();
/// });
/// event_loop.run_forever().unwrap();
/// event_loop.close().unwrap();
/// ```
#[derive(Clone)]
pub struct RemoteHandle {
    pub(crate) shared: Arc<Shared>,
}

impl RemoteHandle {
    /// Schedules `f` to run on the loop's thread in a coming iteration, waking the loop if
    /// it sleeps. Fails with [`Error::Closed`] once the loop is closed.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        self.shared.push(RemoteItem::Callback(Box::new(f)))
    }
}

impl std::fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHandle").finish_non_exhaustive()
    }
}
