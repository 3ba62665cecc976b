//! [`EventLoop`]'s methods: scheduling (`call_soon`, `call_later`, `call_at`, tasks),
//! state, and the counters tests and benchmarks read; then the loop core's `pub(crate)`
//! API the layers above use instead of reaching into [`LoopInner`].

use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handle::CallbackCell;
use super::{
    EventLoop, Handle, LoopBuilder, LoopInner, NetConfig, Ready, RemoteHandle, RemoteItem,
    Runnable, Shared, State, TimerHandle, timers,
};
use crate::driver::{Driver, DriverStats, Engine, SetupMode};
use crate::error::Error;
use crate::task::{self, JoinHandle};

impl EventLoop {
    /// A new loop with default settings.
    pub fn new() -> Result<EventLoop, Error> {
        LoopBuilder::default().build()
    }

    /// Options for a new loop.
    pub fn builder() -> LoopBuilder {
        LoopBuilder::default()
    }

    /// Schedules `f` for the next iteration; callbacks run in the order scheduled.
    ///
    /// On a closed loop the callback is dropped and the returned handle is cancelled.
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Handle {
        let cell = CallbackCell::new_runnable(f);
        if self.is_closed() {
            cell.cancel();
        } else {
            self.inner
                .ready
                .borrow_mut()
                .push_back(Ready::Callback(cell.clone()));
        }
        Handle { cell }
    }

    /// Schedules `f` from any thread; see [`RemoteHandle`] for a `Send` handle.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        self.inner.shared.push(RemoteItem::Callback(Box::new(f)))
    }

    /// A handle other threads use to reach this loop.
    pub fn remote(&self) -> RemoteHandle {
        RemoteHandle {
            shared: self.inner.shared.clone(),
        }
    }

    /// Runs `f` once `delay` has passed (never earlier). A delay too large to represent
    /// (such as `Duration::MAX`) means "decades from now", not a panic.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> TimerHandle {
        self.call_at(timers::deadline_after(delay), f)
    }

    /// Runs `f` at `when` on the loop's clock (never earlier). Equal deadlines run in the
    /// order scheduled; a deadline in the past runs in the next iteration.
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> TimerHandle {
        self.insert_timer(when, CallbackCell::new_runnable(f))
    }

    /// The loop's clock: monotonic (`CLOCK_MONOTONIC`, as `Instant`).
    pub fn time(&self) -> Instant {
        Instant::now()
    }

    /// Whether the loop is running.
    pub fn is_running(&self) -> bool {
        self.inner.state.get() == State::Running
    }

    /// Whether the loop is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.state.get() == State::Closed
    }

    /// Spawns `fut` as a task on this loop; its first step runs in the next iteration.
    pub fn create_task<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + 'static,
    {
        task::spawn_on(&self.inner, fut)
    }

    /// The ring's set-up mode (which task-run flags the kernel accepted); `None` on the
    /// epoll engine.
    pub fn setup_mode(&self) -> Option<SetupMode> {
        self.inner.driver.mode()
    }

    /// The engine running this loop's operations.
    pub fn engine(&self) -> Engine {
        self.inner.driver.engine()
    }

    /// The driver's counters (enters, SQEs, CQEs, overflow and stale counts).
    pub fn driver_stats(&self) -> DriverStats {
        self.inner.driver.stats()
    }

    /// Operations in the kernel now (the loop's own wake-up read and timer included).
    pub fn ops_in_flight(&self) -> usize {
        self.inner.driver.in_flight()
    }

    /// Iterations run so far.
    pub fn iterations(&self) -> u64 {
        self.inner.iterations.get()
    }

    /// Whether two handles name the same loop.
    pub fn same_loop(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    // ----- the loop core's crate API -----

    /// The driver this loop's operations go to.
    pub(crate) fn driver(&self) -> &Rc<Driver> {
        &self.inner.driver
    }

    /// This loop's id (unique in the process, never reused).
    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// The receive options the loop was built with.
    pub(crate) fn net_config(&self) -> NetConfig {
        self.inner.net
    }

    /// Queues a timer cell (a callback, or a sleep's waker) for `when`.
    pub(crate) fn insert_timer(&self, when: Instant, cell: Rc<dyn Runnable>) -> TimerHandle {
        let handle = self.inner.timers.borrow_mut().insert(when, cell);
        if self.is_closed() {
            handle.cancel();
        }
        handle
    }

    /// Cancels every task still on the loop (see `task::cancel_all_tasks`).
    pub(crate) fn cancel_all_tasks(&self) {
        task::cancel_all_tasks(&self.inner);
    }

    /// A handle that does not keep the loop alive.
    pub(crate) fn downgrade(&self) -> WeakLoop {
        WeakLoop(Rc::downgrade(&self.inner))
    }
}

/// A loop handle that does not keep the loop alive ([`EventLoop::downgrade`]).
#[derive(Clone, Default)]
pub(crate) struct WeakLoop(Weak<LoopInner>);

impl WeakLoop {
    /// The loop, if it still exists.
    pub(crate) fn upgrade(&self) -> Option<EventLoop> {
        self.0.upgrade().map(|inner| EventLoop { inner })
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("id", &self.inner.id)
            .field("state", &self.inner.state.get())
            .finish()
    }
}

impl LoopInner {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The task table (used by the task layer only).
    pub(crate) fn tasks(&self) -> &task::TaskTable {
        &self.tasks
    }

    /// The cross-thread queue (task wakers keep it to wake the loop from other threads).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn push_ready(&self, item: Ready) {
        self.ready.borrow_mut().push_back(item);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.get() == State::Closed
    }
}
