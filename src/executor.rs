//! Blocking work handed to threads: asyncio's `run_in_executor`.
//!
//! An [`Executor`] is a bounded pool of plain `std` threads, spawned lazily (one more
//! whenever a job is queued and no thread is idle, up to the bound) and named
//! `ringloop-executor`. A job runs the closure under `catch_unwind`, then sends its outcome
//! back with the loop's [`RemoteHandle`](crate::RemoteHandle) — `call_soon_threadsafe`,
//! which wakes a loop sleeping in the ring — and that callback sets the job's
//! [`Future`](crate::Future) on the loop's thread. The loop keeps the typed futures in a
//! table keyed by job id, so nothing `!Send` ever crosses a thread.
//!
//! Each loop has a default executor, created on first use with
//! `std::thread::available_parallelism()` threads unless
//! [`EventLoop::set_default_executor_threads`] or [`EventLoop::set_default_executor`] say
//! otherwise. [`EventLoop::shutdown_default_executor`] waits for its threads;
//! [`EventLoop::close`] shuts it down without waiting (as asyncio does): queued jobs still
//! run, their results are dropped. Such a job holds the loop's `RemoteHandle`, and with it
//! the loop's wake-up eventfd, until it finishes.
//!
//! Threads are spawned lazily, from the loop's thread, so they inherit its signal mask at
//! that moment: signals the loop handles (see [`crate::signal`]) stay blocked in them.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use crate::error::Error;
use crate::event_loop::{EventLoop, Phase, Service, get_running_loop};
use crate::future::Future;

type Job = Box<dyn FnOnce() + Send>;

/// A bounded pool of threads for blocking closures.
///
/// Cheap to clone (all clones are the same pool). Threads are spawned when jobs need them,
/// never more than [`Executor::max_threads`]. When the last clone is dropped the pool
/// shuts down without waiting: queued jobs still run, then the threads exit.
///
/// # Examples
///
/// ```
/// let executor = ringloop::Executor::new(2).unwrap();
/// let event_loop = ringloop::EventLoop::new().unwrap();
/// let fut = event_loop.run_in_executor_with(&executor, || std::fs::metadata("/").is_ok());
/// assert!(event_loop.run_until_complete(fut).unwrap().unwrap());
/// executor.shutdown(true);
/// event_loop.close().unwrap();
/// ```
#[derive(Clone)]
pub struct Executor {
    handle: Arc<PoolHandle>,
}

/// Shuts the pool down when the last `Executor` clone goes (workers hold the `Pool`).
struct PoolHandle {
    pool: Arc<Pool>,
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        self.pool.shutdown(false);
    }
}

struct Pool {
    max_threads: usize,
    state: Mutex<PoolState>,
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    /// Threads waiting for work.
    idle: usize,
    /// Threads alive.
    threads: usize,
    handles: Vec<thread::JoinHandle<()>>,
    shutdown: bool,
}

impl Executor {
    /// A pool of at most `max_threads` threads (none spawned yet). Zero is an error.
    pub fn new(max_threads: usize) -> Result<Executor, Error> {
        if max_threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Executor::new: max_threads must be at least 1",
            )
            .into());
        }
        Ok(Executor {
            handle: Arc::new(PoolHandle {
                pool: Arc::new(Pool {
                    max_threads,
                    state: Mutex::new(PoolState::default()),
                    work: Condvar::new(),
                }),
            }),
        })
    }

    /// The default bound: `std::thread::available_parallelism()` (1 if unknown).
    pub fn default_size() -> usize {
        thread::available_parallelism().map_or(1, NonZeroUsize::get)
    }

    /// The bound on threads.
    pub fn max_threads(&self) -> usize {
        self.handle.pool.max_threads
    }

    /// Threads alive now (spawned lazily, so 0 before the first job).
    pub fn thread_count(&self) -> usize {
        self.handle.pool.lock().threads
    }

    /// Whether [`Executor::shutdown`] was called.
    pub fn is_shutdown(&self) -> bool {
        self.handle.pool.lock().shutdown
    }

    /// Refuses new jobs; queued jobs still run, then the threads exit. With `wait`, blocks
    /// until every thread has exited (a job calling this on its own pool does not wait
    /// for its own thread).
    pub fn shutdown(&self, wait: bool) {
        self.handle.pool.shutdown(wait);
    }

    fn submit(&self, job: Job) -> Result<(), Error> {
        self.handle.pool.submit(job, &self.handle.pool)
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.handle.pool.lock();
        f.debug_struct("Executor")
            .field("max_threads", &self.handle.pool.max_threads)
            .field("threads", &state.threads)
            .field("queued", &state.queue.len())
            .field("shutdown", &state.shutdown)
            .finish()
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // No user code runs under the lock (jobs run and drop outside it).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn submit(&self, job: Job, this: &Arc<Pool>) -> Result<(), Error> {
        let mut state = self.lock();
        if state.shutdown {
            return Err(Error::InvalidState("the executor was shut down"));
        }
        state.queue.push_back(job);
        if state.queue.len() <= state.idle {
            drop(state);
            self.work.notify_one();
            return Ok(());
        }
        if state.threads < self.max_threads {
            let pool = this.clone();
            match thread::Builder::new()
                .name("ringloop-executor".into())
                .spawn(move || pool.work_loop())
            {
                Ok(handle) => {
                    state.threads += 1;
                    state.handles.push(handle);
                }
                Err(e) if state.threads == 0 => {
                    // Nobody could ever run the job: hand it back (dropped outside the lock).
                    let job = state.queue.pop_back();
                    drop(state);
                    drop(job);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("run_in_executor: cannot spawn a thread: {e}"),
                    )
                    .into());
                }
                // Running threads will get to it.
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn work_loop(&self) {
        loop {
            let job = {
                let mut state = self.lock();
                loop {
                    if let Some(job) = state.queue.pop_front() {
                        break Some(job);
                    }
                    if state.shutdown {
                        state.threads -= 1;
                        break None;
                    }
                    state.idle += 1;
                    state = self.work.wait(state).unwrap_or_else(|p| p.into_inner());
                    state.idle -= 1;
                }
            };
            match job {
                // Jobs catch their own panics (see `EventLoop::job`); this guard keeps the
                // thread count right should anything else unwind.
                Some(job) => {
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
                None => return,
            }
        }
    }

    fn shutdown(&self, wait: bool) {
        let handles = {
            let mut state = self.lock();
            state.shutdown = true;
            if wait {
                std::mem::take(&mut state.handles)
            } else {
                Vec::new()
            }
        };
        self.work.notify_all();
        let me = thread::current().id();
        for handle in handles {
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }
}

/// What a job sends back to its loop.
enum Outcome {
    Done(Box<dyn Any + Send>),
    Panicked(Box<dyn Any + Send>),
    /// The future was cancelled before the job started; the closure did not run.
    Skipped,
}

type Completer = Box<dyn FnOnce(Outcome)>;

/// A loop's executor state (a loop service, created on first use).
#[derive(Default)]
pub(crate) struct LoopExecutor {
    default: RefCell<Option<Executor>>,
    default_threads: Cell<Option<usize>>,
    shutdown_called: Cell<bool>,
    next_id: Cell<u64>,
    /// The futures of jobs not yet delivered, by job id (ids are never reused).
    pending: RefCell<HashMap<u64, Completer>>,
}

impl LoopExecutor {
    /// The default executor, created on first use.
    fn default_executor(&self) -> Result<Executor, Error> {
        if self.shutdown_called.get() {
            return Err(Error::InvalidState(
                "shutdown_default_executor was called on this loop",
            ));
        }
        let mut default = self.default.borrow_mut();
        if let Some(executor) = default.as_ref() {
            return Ok(executor.clone());
        }
        let size = self
            .default_threads
            .get()
            .unwrap_or_else(Executor::default_size);
        let executor = Executor::new(size)?;
        *default = Some(executor.clone());
        Ok(executor)
    }
}

impl Service for LoopExecutor {
    fn phase(&self) -> Phase {
        Phase::Executor
    }

    /// The loop closes: the default executor shuts down without waiting, and results on
    /// their way are dropped.
    fn close(&self) {
        self.shutdown_called.set(true);
        let default = self.default.borrow_mut().take();
        if let Some(executor) = &default {
            executor.shutdown(false);
        }
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        drop(pending);
        drop(default);
    }
}

/// Runs on the loop (a `call_soon_threadsafe` callback): completes job `id`'s future.
fn deliver(loop_id: u64, id: u64, outcome: Outcome) {
    let Ok(event_loop) = get_running_loop() else {
        return;
    };
    if event_loop.id() != loop_id {
        return;
    }
    let Some(state) = event_loop.existing_service::<LoopExecutor>() else {
        return;
    };
    let completer = state.pending.borrow_mut().remove(&id);
    if let Some(completer) = completer {
        completer(outcome);
    }
}

impl EventLoop {
    /// Runs the blocking closure `f` on the loop's default executor and returns a
    /// [`Future`] for its result (asyncio's `run_in_executor(None, f)`).
    ///
    /// The result is delivered on the loop through `call_soon_threadsafe`, which wakes the
    /// loop if it sleeps. A panic in `f` becomes [`Error::Panic`] on the future. Cancelling
    /// the future before a thread picks the job up keeps `f` from running. After
    /// [`EventLoop::shutdown_default_executor`] (or on a closed loop) the future fails at
    /// once. Awaiting a `Future<T>` needs `T: Clone` (every awaiter gets the result).
    ///
    /// # Examples
    ///
    /// ```
    /// let sum = ringloop::run(async {
    ///     let event_loop = ringloop::get_running_loop().unwrap();
    ///     let a = event_loop.run_in_executor(|| (1..=10u64).sum::<u64>());
    ///     let b = event_loop.run_in_executor(|| 5u64);
    ///     a.await.unwrap() + b.await.unwrap()
    /// })
    /// .unwrap();
    /// assert_eq!(sum, 60);
    /// ```
    pub fn run_in_executor<T, F>(&self, f: F) -> Future<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match self.service::<LoopExecutor>().default_executor() {
            Ok(executor) => self.run_in_executor_with(&executor, f),
            Err(e) => failed(self, e),
        }
    }

    /// As [`EventLoop::run_in_executor`], on `executor` (asyncio's
    /// `run_in_executor(executor, f)`).
    pub fn run_in_executor_with<T, F>(&self, executor: &Executor, f: F) -> Future<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.is_closed() {
            return failed(self, Error::Closed);
        }
        let (future, id, job) = self.job(f);
        if let Err(e) = executor.submit(job) {
            self.service::<LoopExecutor>()
                .pending
                .borrow_mut()
                .remove(&id);
            // The future is new and pending: setting it cannot fail.
            let _ = future.set_exception(e);
        }
        future
    }

    /// Makes `executor` the loop's default (asyncio's `set_default_executor`). The
    /// previous default is dropped; if nothing else holds it, it shuts down without
    /// waiting (its queued jobs still run and deliver).
    pub fn set_default_executor(&self, executor: Executor) {
        let old = self
            .service::<LoopExecutor>()
            .default
            .borrow_mut()
            .replace(executor);
        drop(old);
    }

    /// Sets the thread bound of the default executor: a new default with `n` threads is
    /// created on next use (the previous one is dropped, as in
    /// [`EventLoop::set_default_executor`]). Zero is an error.
    pub fn set_default_executor_threads(&self, n: usize) -> Result<(), Error> {
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "set_default_executor_threads: the executor needs at least 1 thread",
            )
            .into());
        }
        let state = self.service::<LoopExecutor>();
        state.default_threads.set(Some(n));
        let old = state.default.borrow_mut().take();
        drop(old);
        Ok(())
    }

    /// Shuts the default executor down and waits for its threads (asyncio's
    /// `shutdown_default_executor`): queued jobs finish and deliver first. The threads are
    /// joined on a helper thread, so the loop keeps running meanwhile. Afterwards
    /// [`EventLoop::run_in_executor`] fails; explicit executors still work.
    ///
    /// ```
    /// ringloop::run(async {
    ///     let event_loop = ringloop::get_running_loop().unwrap();
    ///     let n = event_loop.run_in_executor(|| 7).await.unwrap();
    ///     event_loop.shutdown_default_executor().await.unwrap();
    ///     assert!(event_loop.run_in_executor(|| 8).await.is_err());
    ///     n
    /// })
    /// .unwrap();
    /// ```
    pub async fn shutdown_default_executor(&self) -> Result<(), Error> {
        let state = self.service::<LoopExecutor>();
        state.shutdown_called.set(true);
        let Some(executor) = state.default.borrow_mut().take() else {
            return Ok(());
        };
        if self.is_closed() {
            executor.shutdown(false);
            return Err(Error::Closed);
        }
        let (future, id, job) = self.job(move || executor.shutdown(true));
        let spawned = thread::Builder::new()
            .name("ringloop-executor-shutdown".into())
            .spawn(job);
        if let Err(e) = spawned {
            self.service::<LoopExecutor>()
                .pending
                .borrow_mut()
                .remove(&id);
            return Err(io::Error::new(
                e.kind(),
                format!("shutdown_default_executor: cannot spawn a thread: {e}"),
            )
            .into());
        }
        future.await
    }

    /// Wraps `f` as a job whose outcome completes the returned future on this loop.
    fn job<T, F>(&self, f: F) -> (Future<T>, u64, Job)
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let future: Future<T> = Future::with_loop(Some(self));
        let state = self.service::<LoopExecutor>();
        let id = state.next_id.get();
        state.next_id.set(id + 1);

        let target = future.clone();
        let completer: Completer = Box::new(move |outcome| {
            let _ = match outcome {
                Outcome::Done(value) => match value.downcast::<T>() {
                    Ok(value) => target.set_result(*value),
                    Err(_) => target.set_exception(Error::InvalidState(
                        "an executor job returned a value of another type",
                    )),
                },
                Outcome::Panicked(payload) => target.set_exception(Error::from_panic(payload)),
                Outcome::Skipped => Ok(()),
            };
        });
        state.pending.borrow_mut().insert(id, completer);

        // Cancelling the future before the job starts skips the closure.
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        future.add_done_callback(move |f| {
            if f.cancelled() {
                flag.store(true, Ordering::Release);
            }
        });

        let remote = self.remote();
        let loop_id = self.id();
        let job: Job = Box::new(move || {
            let outcome = if cancelled.load(Ordering::Acquire) {
                Outcome::Skipped
            } else {
                match catch_unwind(AssertUnwindSafe(f)) {
                    Ok(value) => Outcome::Done(Box::new(value)),
                    Err(payload) => Outcome::Panicked(payload),
                }
            };
            // A closed loop refuses the result; it is dropped here.
            let _ = remote.call_soon_threadsafe(move || deliver(loop_id, id, outcome));
        });
        (future, id, job)
    }
}

/// A future already failed with `error`.
fn failed<T: 'static>(event_loop: &EventLoop, error: Error) -> Future<T> {
    let future = Future::with_loop(Some(event_loop));
    // The future is new and pending: setting it cannot fail.
    let _ = future.set_exception(error);
    future
}
