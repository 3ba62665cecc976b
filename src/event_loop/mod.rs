//! The loop core: a ready queue, a timer heap, the task table, the cross-thread queue
//! and the driver, turned by `run_forever` one iteration at a time. Everything else a
//! loop offers (signal handlers, the default executor, child processes, buffer rings,
//! the registry of open transports) is a service attached through [`services`].
//!
//! One iteration (asyncio's `_run_once`, [`run`]):
//! 1. flush: the before-submit hooks queued since the last iteration run (transports
//!    push their buffered writes), so every write of an iteration leaves together;
//! 2. decide how long the kernel may block: not at all if callbacks are ready or the loop
//!    is stopping, else until the nearest timer (the driver keeps it armed: one timeout op
//!    in the ring), else indefinitely (another thread wakes us through the driver's
//!    unparker);
//! 3. submit every SQE pushed since the last iteration and reap every CQE (one
//!    `io_uring_enter`); completions wake tasks or queue transport callbacks;
//! 4. queue callbacks from other threads, then due timers;
//! 5. run exactly the callbacks queued so far — what they schedule waits for the next
//!    iteration.
//!
//! While callbacks keep the queue busy and nothing needs submitting, the ring is polled
//! only every [`POLL_INTERVAL`] iterations, so a callback-heavy loop makes no syscall per
//! iteration.
//!
//! Files: `builder.rs` (options, construction), `api.rs` (`EventLoop`'s methods and the
//! core's crate API), `run.rs` (the iteration), `close.rs` (the shutdown order),
//! `services.rs` (the service registry), `exception.rs` (the exception handler),
//! `timers.rs`, `handle.rs`, `remote.rs`, `current.rs`. This module imports nothing above
//! the task layer: services register themselves from their own modules.

mod api;
mod builder;
mod close;
mod current;
mod exception;
mod handle;
mod remote;
mod run;
pub(crate) mod services;
#[cfg(test)]
mod tests;
mod timers;

pub(crate) use api::WeakLoop;
pub use builder::LoopBuilder;
pub(crate) use builder::NetConfig;
pub(crate) use current::{current_driver, fd_closing, get_event_loop_if_set, with_running};
pub use current::{get_event_loop, get_running_loop, new_event_loop, set_event_loop};
pub use exception::ExceptionContext;
pub use handle::{Handle, TimerHandle};
pub use remote::RemoteHandle;
pub(crate) use remote::{RemoteItem, Shared};
pub(crate) use services::{Phase, Service};

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use crate::driver::{Completion, Dispatch, Driver, OpHandler, OpKey};
use crate::task;
use exception::ExceptionHandler;
pub(crate) use handle::Runnable;
use services::Services;
use timers::Timers;
pub(crate) use timers::deadline_after;

/// While callbacks are ready and nothing needs submitting, poll the ring every this many
/// iterations.
pub const POLL_INTERVAL: u32 = 61;

/// An entry of the ready queue.
pub(crate) enum Ready {
    Callback(Rc<dyn Runnable>),
    Task {
        index: u32,
        generation: u32,
    },
    Io {
        handler: Rc<dyn OpHandler>,
        tag: u32,
        completion: Completion,
    },
}

/// A before-submit hook: something with buffered work (a transport's writes) to push
/// just before the next submit ([`EventLoop::schedule_flush`]).
pub(crate) trait Flush {
    fn flush(self: Rc<Self>);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Running,
    Closed,
}

/// The loop core. Its fields are private to `event_loop/`; other layers use the methods
/// of [`EventLoop`] and the services.
pub(crate) struct LoopInner {
    id: u64,
    driver: Rc<Driver>,
    ready: RefCell<VecDeque<Ready>>,
    timers: RefCell<Timers>,
    tasks: task::TaskTable,
    shared: Arc<Shared>,
    state: Cell<State>,
    stopping: Cell<bool>,
    exception_handler: RefCell<Option<ExceptionHandler>>,
    iterations: Cell<u64>,
    since_poll: Cell<u32>,
    cqes: RefCell<Vec<(u64, Completion)>>,
    remote_items: RefCell<Vec<RemoteItem>>,
    due: RefCell<Vec<Rc<dyn Runnable>>>,
    /// Before-submit hooks (transports with writes to send), run once just before each
    /// submit, so every write of an iteration leaves in one send.
    flush_queue: RefCell<Vec<Rc<dyn Flush>>>,
    flush_batch: RefCell<Vec<Rc<dyn Flush>>>,
    /// Signal handlers, the executor, processes, buffer rings, open transports...
    services: Services,
    /// The builder's receive options, for the transports and buffer rings.
    net: NetConfig,
    pid: u32,
}

/// An asyncio-style event loop driven by an io_uring ring. Cheap to clone (a handle).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let event_loop = ringloop::EventLoop::new().unwrap();
/// let l = event_loop.clone();
/// event_loop.call_later(Duration::from_millis(10), move || l.stop());
/// event_loop.call_soon(|| println!("runs first"));
/// event_loop.run_forever().unwrap();
/// event_loop.close().unwrap();
/// ```
///
/// # Closing resources
///
/// [`EventLoop::close`] cancels every operation still in the kernel, waits (bounded) for
/// their completions and only then unmaps the ring, so no buffer is freed while the kernel
/// may write to it. [`run`](crate::run) closes its loop; dropping the last handle closes it
/// too, but tasks that hold the loop keep it alive, so close loops explicitly.
#[derive(Clone)]
pub struct EventLoop {
    inner: Rc<LoopInner>,
}

impl LoopInner {
    /// Hands an op's completion on: wakes its future or queues its handler. (The driver
    /// keeps its internal completions — timer, wake-up, cancels — to itself.)
    fn dispatch(&self, user_data: u64, completion: Completion) {
        let Some(key) = OpKey::from_user_data(user_data) else {
            return;
        };
        match self.driver.complete(key, completion) {
            Dispatch::Nothing => {}
            Dispatch::Wake(waker) => waker.wake(),
            Dispatch::Handler(handler, tag, completion) => self.push_ready(Ready::Io {
                handler,
                tag,
                completion,
            }),
        }
    }
}

impl Drop for LoopInner {
    fn drop(&mut self) {
        if self.state.get() == State::Running {
            self.state.set(State::Idle);
        }
        let _ = self.close();
    }
}
