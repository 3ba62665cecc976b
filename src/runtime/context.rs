//! [`LoopContext`]: what a per-loop main learns about where it runs.

use std::fmt;
use std::sync::Arc;

use crate::event_loop::{EventLoop, RemoteHandle};

/// Handed to the per-loop main of [`Runtime::run`](super::Runtime::run) on its loop's
/// thread: which loop this is, how many there are, and handles to reach every loop.
pub struct LoopContext {
    pub(crate) index: usize,
    pub(crate) handles: Arc<[RemoteHandle]>,
    pub(crate) event_loop: EventLoop,
}

impl LoopContext {
    /// This loop's index, `0..count()`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many loops the runtime has.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// The loop this main runs on.
    pub fn event_loop(&self) -> &EventLoop {
        &self.event_loop
    }

    /// The handle of loop `index` (this one's included), for
    /// [`run_coroutine_threadsafe`](super::run_coroutine_threadsafe) and
    /// `call_soon_threadsafe`; `None` past the last loop.
    pub fn handle(&self, index: usize) -> Option<&RemoteHandle> {
        self.handles.get(index)
    }

    /// Every loop's handle, by index.
    pub fn handles(&self) -> &[RemoteHandle] {
        &self.handles
    }

    /// The other loops' handles with their indices.
    pub fn others(&self) -> impl Iterator<Item = (usize, &RemoteHandle)> {
        let me = self.index;
        self.handles
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != me)
    }
}

impl fmt::Debug for LoopContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopContext")
            .field("index", &self.index)
            .field("count", &self.count())
            .finish()
    }
}
