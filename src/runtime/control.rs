//! What a runtime's loop threads and its owner share: the first failure, whether the
//! runtime is stopping, which loop threads have exited, and who to tell when it stops.
//!
//! Any thread may call [`Control::fail`] (a loop's exception handler, a loop thread whose
//! driver failed, `Runtime::run` seeing a main panic): the first failure is kept, the
//! runtime is marked stopping, every registered waiter is told, and every loop is asked
//! to stop through its cross-thread queue.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use super::RuntimeError;
use crate::event_loop::{RemoteHandle, get_running_loop};

type Notify = Box<dyn FnOnce() + Send>;

struct State {
    failure: Option<RuntimeError>,
    stopping: bool,
    exited: Vec<bool>,
    next_id: u64,
    on_stop: Vec<(u64, Notify)>,
}

pub(crate) struct Control {
    state: Mutex<State>,
    changed: Condvar,
    handles: OnceLock<Arc<[RemoteHandle]>>,
    names: Vec<String>,
}

impl Control {
    pub(crate) fn new(names: Vec<String>) -> Self {
        Control {
            state: Mutex::new(State {
                failure: None,
                stopping: false,
                exited: vec![false; names.len()],
                next_id: 0,
                on_stop: Vec::new(),
            }),
            changed: Condvar::new(),
            handles: OnceLock::new(),
            names,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The name of loop `index`'s thread.
    pub(crate) fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// Every loop is built: from now on a stop reaches all of them. A stop that came while
    /// they were being built (it found no handles) is sent again.
    pub(crate) fn set_handles(&self, handles: Arc<[RemoteHandle]>) {
        let _ = self.handles.set(handles);
        if self.is_stopping() {
            self.stop_loops();
        }
    }

    /// Records `error` (only the first is kept) and stops the runtime.
    pub(crate) fn fail(&self, error: RuntimeError) {
        {
            let mut state = self.lock();
            if state.failure.is_none() {
                state.failure = Some(error);
            }
        }
        self.stop();
    }

    /// Marks the runtime stopping, tells the waiters, asks every loop to stop.
    pub(crate) fn stop(&self) {
        let waiters = {
            let mut state = self.lock();
            state.stopping = true;
            std::mem::take(&mut state.on_stop)
        };
        for (_, notify) in waiters {
            notify();
        }
        self.changed.notify_all();
        self.stop_loops();
    }

    fn stop_loops(&self) {
        if let Some(handles) = self.handles.get() {
            for h in handles.iter() {
                // A loop already closed has nothing to stop.
                let _ = h.call_soon_threadsafe(|| {
                    if let Ok(l) = get_running_loop() {
                        l.stop();
                    }
                });
            }
        }
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.lock().stopping
    }

    /// The first failure, if any.
    pub(crate) fn failure(&self) -> Option<RuntimeError> {
        self.lock().failure.clone()
    }

    /// Calls `notify` once when the runtime stops; refused (with the failure, else
    /// `Closed`) if it is stopping already. The id removes it again.
    pub(crate) fn on_stop(&self, notify: Notify) -> Result<u64, RuntimeError> {
        let mut state = self.lock();
        if state.stopping {
            return Err(state.failure.clone().unwrap_or(RuntimeError::Closed));
        }
        state.next_id += 1;
        let id = state.next_id;
        state.on_stop.push((id, notify));
        Ok(id)
    }

    pub(crate) fn remove_on_stop(&self, id: u64) {
        self.lock().on_stop.retain(|(i, _)| *i != id);
    }

    /// Loop `index`'s thread is done (its loop closed).
    pub(crate) fn exited(&self, index: usize) {
        self.lock().exited[index] = true;
        self.changed.notify_all();
    }

    /// Waits until every loop thread but `except` has exited or `deadline` passes;
    /// returns the indices of those still running.
    pub(crate) fn wait_exited(
        &self,
        deadline: Option<Instant>,
        except: Option<usize>,
    ) -> Vec<usize> {
        let mut state = self.lock();
        loop {
            let running: Vec<usize> = (0..state.exited.len())
                .filter(|&i| !state.exited[i] && Some(i) != except)
                .collect();
            if running.is_empty() {
                return running;
            }
            state = match deadline {
                None => self.changed.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return running;
                    }
                    self.changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}
