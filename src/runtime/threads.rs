//! [`Runtime`]: the loop threads, `run` (a main on every loop), and shutdown.
//!
//! Each loop thread builds its loop (so the ring is created, and only ever touched, by the
//! thread that runs it), hands its [`RemoteHandle`] back, and runs the loop until the
//! runtime stops; then it cancels the loop's tasks, closes the loop and exits. Everything
//! the owner does to a loop goes through its cross-thread queue.

use std::fmt;
use std::sync::{Arc, mpsc};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use super::catch::{self, CatchPanic};
use super::context::LoopContext;
use super::control::Control;
use super::{RuntimeBuilder, RuntimeError};
use crate::error::Error;
use crate::event_loop::{EventLoop, ExceptionContext, LoopBuilder, RemoteHandle, get_running_loop};

/// What a loop thread starts from.
pub(crate) struct LoopStart {
    pub(crate) index: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) builder: LoopBuilder,
    pub(crate) control: Arc<Control>,
    pub(crate) ready: mpsc::Sender<Result<RemoteHandle, Error>>,
}

/// The body of loop thread `start.index`.
pub(crate) fn loop_thread(start: LoopStart) {
    let LoopStart {
        index,
        cpu,
        builder,
        control,
        ready,
    } = start;
    let body = catch::call(|| {
        if let Some(cpu) = cpu
            && let Err(e) = crate::sys::affinity::pin_current_thread(cpu)
        {
            let _ = ready.send(Err(e.into()));
            return;
        }
        let event_loop = match builder.build() {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        install_exception_handler(&event_loop, index, &control);
        let _ = ready.send(Ok(event_loop.remote()));
        drop(ready);
        let result = loop {
            if control.is_stopping() {
                break Ok(());
            }
            // A main may stop its loop (`EventLoop::stop`); the loop runs on until the
            // runtime stops.
            if let Err(e) = event_loop.run_forever() {
                break Err(e);
            }
        };
        if let Err(error) = result {
            control.fail(RuntimeError::Failed {
                index,
                thread: control.name(index).to_string(),
                error,
            });
        }
        event_loop.cancel_all_tasks();
        let _ = event_loop.close();
    });
    if let Err(e) = body {
        control.fail(RuntimeError::Panicked {
            index,
            thread: control.name(index).to_string(),
            message: format!("the loop thread: {e}"),
        });
    }
    control.exited(index);
}

/// Reports as the default handler does, and takes a panic anywhere on the loop for a
/// failure of the runtime.
fn install_exception_handler(event_loop: &EventLoop, index: usize, control: &Arc<Control>) {
    let control = control.clone();
    event_loop.set_exception_handler(Some(move |_: &EventLoop, ctx: &ExceptionContext| {
        let thread = control.name(index).to_string();
        match &ctx.error {
            Some(e) => eprintln!("ringloop: loop {index} ({thread}): {}: {e}", ctx.message),
            None => eprintln!("ringloop: loop {index} ({thread}): {}", ctx.message),
        }
        if let Some(Error::Panic(msg)) = &ctx.error {
            control.fail(RuntimeError::Panicked {
                index,
                thread,
                message: format!("{}: {msg}", ctx.message),
            });
        }
    }));
}

/// N event loops on N threads, one per core by default: asyncio's model (one loop per
/// thread, [`run_coroutine_threadsafe`](super::run_coroutine_threadsafe) between them)
/// across every core.
///
/// [`Runtime::run`] runs a main on every loop and returns their outputs, in loop order.
/// A panic on any loop (its main, a task nobody awaits, a callback) is reported by the
/// loop's exception handler and stops the runtime: `run` returns
/// [`RuntimeError::Panicked`] naming the loop. [`Runtime::shutdown`], or dropping the
/// runtime, stops every loop, cancels their tasks, closes them and joins the threads.
///
/// # Examples
///
/// ```
/// use ringloop::{Runtime, run_coroutine_threadsafe};
///
/// let rt = Runtime::builder().threads(2).build().unwrap();
/// let out = rt
///     .run(|ctx| async move {
///         // Ask the next loop for its index, from this one.
///         let next = ctx.handle((ctx.index() + 1) % ctx.count()).unwrap();
///         let theirs = run_coroutine_threadsafe(next, || async {
///             ringloop::get_running_loop().is_ok()
///         })
///         .await
///         .unwrap();
///         (ctx.index(), theirs)
///     })
///     .unwrap();
/// assert_eq!(out, vec![(0, true), (1, true)]);
/// rt.shutdown().unwrap();
/// ```
pub struct Runtime {
    control: Arc<Control>,
    handles: Arc<[RemoteHandle]>,
    threads: Vec<Option<JoinHandle<()>>>,
    thread_ids: Vec<ThreadId>,
}

enum RunEvent<T> {
    Done(usize, Result<T, Error>),
    Stopped,
}

/// Sends a main's outcome once; `Cancelled` if dropped first (its loop closed).
struct MainSink<T> {
    index: usize,
    tx: Option<mpsc::Sender<RunEvent<T>>>,
}

impl<T> MainSink<T> {
    fn send(mut self, outcome: Result<T, Error>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(RunEvent::Done(self.index, outcome));
        }
    }
}

impl<T> Drop for MainSink<T> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(RunEvent::Done(self.index, Err(Error::Cancelled)));
        }
    }
}

impl Runtime {
    /// A runtime with default options: one loop per available core.
    pub fn new() -> Result<Runtime, RuntimeError> {
        RuntimeBuilder::default().build()
    }

    /// Options for a runtime.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    pub(crate) fn new_started(
        control: Arc<Control>,
        handles: Arc<[RemoteHandle]>,
        threads: Vec<Option<JoinHandle<()>>>,
    ) -> Runtime {
        let thread_ids = threads.iter().flatten().map(|j| j.thread().id()).collect();
        Runtime {
            control,
            handles,
            threads,
            thread_ids,
        }
    }

    /// How many loops.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Always false: a runtime has at least one loop.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The handle of loop `index`, for
    /// [`run_coroutine_threadsafe`](super::run_coroutine_threadsafe) and
    /// `call_soon_threadsafe`.
    pub fn handle(&self, index: usize) -> Option<&RemoteHandle> {
        self.handles.get(index)
    }

    /// Every loop's handle, by index.
    pub fn handles(&self) -> &[RemoteHandle] {
        &self.handles
    }

    /// Runs `main(ctx)` as a task on every loop (`ctx` says which) and blocks until all
    /// of them finish; returns their outputs by loop index. The loops keep running
    /// afterwards (another `run` may follow) until the runtime is shut down.
    ///
    /// `main` is called on each loop's thread, so the future it returns need not be
    /// `Send`; only `main` itself and the outputs cross threads.
    ///
    /// Errors: the first failure of the runtime — a panic on any loop (the runtime is then
    /// stopped), a main cancelled because its loop closed — naming the loop; or
    /// [`RuntimeError::Closed`] on a runtime already stopped.
    pub fn run<F, Fut>(&self, main: F) -> Result<Vec<Fut::Output>, RuntimeError>
    where
        F: Fn(LoopContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + 'static,
        Fut::Output: Send + 'static,
    {
        let me = std::thread::current().id();
        if let Some(index) = self.thread_ids.iter().position(|id| *id == me) {
            return Err(RuntimeError::Failed {
                index,
                thread: self.control.name(index).to_string(),
                error: Error::InvalidState(
                    "Runtime::run on one of the runtime's own loops would block that loop",
                ),
            });
        }
        let (tx, rx) = mpsc::channel::<RunEvent<Fut::Output>>();
        let stop_tx = std::sync::Mutex::new(tx.clone());
        let watch = self.control.on_stop(Box::new(move || {
            let tx = stop_tx.lock().unwrap_or_else(|p| p.into_inner());
            let _ = tx.send(RunEvent::Stopped);
        }))?;
        let result = self.run_mains(main, tx, &rx);
        self.control.remove_on_stop(watch);
        result
    }

    fn run_mains<F, Fut>(
        &self,
        main: F,
        tx: mpsc::Sender<RunEvent<Fut::Output>>,
        rx: &mpsc::Receiver<RunEvent<Fut::Output>>,
    ) -> Result<Vec<Fut::Output>, RuntimeError>
    where
        F: Fn(LoopContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + 'static,
        Fut::Output: Send + 'static,
    {
        let main = Arc::new(main);
        let count = self.handles.len();
        for (index, handle) in self.handles.iter().enumerate() {
            let main = main.clone();
            let handles = self.handles.clone();
            let sink = MainSink {
                index,
                tx: Some(tx.clone()),
            };
            let pushed = handle.call_soon_threadsafe(move || {
                let Ok(event_loop) = get_running_loop() else {
                    return; // the sink reports Cancelled
                };
                let ctx = LoopContext {
                    index,
                    handles,
                    event_loop: event_loop.clone(),
                };
                let future = match catch::call(|| main(ctx)) {
                    Ok(f) => f,
                    Err(e) => return sink.send(Err(e)),
                };
                let task = event_loop.create_task(async move {
                    let outcome = CatchPanic::new(future).await;
                    sink.send(outcome);
                });
                task.set_name(format!("runtime main {index}"));
            });
            if pushed.is_err() {
                return Err(self.control.failure().unwrap_or(RuntimeError::Closed));
            }
        }
        drop(tx);
        let mut outputs: Vec<Option<Fut::Output>> = (0..count).map(|_| None).collect();
        let mut left = count;
        while left > 0 {
            match rx.recv() {
                Ok(RunEvent::Done(index, Ok(v))) => {
                    outputs[index] = Some(v);
                    left -= 1;
                }
                Ok(RunEvent::Done(index, Err(error))) => {
                    let thread = self.control.name(index).to_string();
                    self.control.fail(match error {
                        Error::Panic(msg) => RuntimeError::Panicked {
                            index,
                            thread,
                            message: format!("its main: {msg}"),
                        },
                        error => RuntimeError::Failed {
                            index,
                            thread,
                            error,
                        },
                    });
                    return Err(self.control.failure().unwrap_or(RuntimeError::Closed));
                }
                Ok(RunEvent::Stopped) | Err(_) => {
                    return Err(self.control.failure().unwrap_or(RuntimeError::Closed));
                }
            }
        }
        Ok(outputs.into_iter().flatten().collect())
    }

    /// Stops every loop (their tasks are cancelled, the loops closed) and joins the
    /// threads. Returns the first failure the runtime saw, if any.
    pub fn shutdown(mut self) -> Result<(), RuntimeError> {
        self.stop_and_join(None);
        self.control.failure().map_or(Ok(()), Err)
    }

    /// [`shutdown`](Runtime::shutdown) waiting at most `timeout` for the loop threads; a
    /// loop stuck in a callback that does not return is detached, and
    /// [`RuntimeError::Stuck`] names it.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Result<(), RuntimeError> {
        let stuck = self.stop_and_join(Some(Instant::now() + timeout));
        if !stuck.is_empty() {
            return Err(RuntimeError::Stuck { indices: stuck });
        }
        self.control.failure().map_or(Ok(()), Err)
    }

    /// Stops the loops and joins the threads that exit by `deadline`; the others are
    /// detached. Returns the indices of those.
    fn stop_and_join(&mut self, deadline: Option<Instant>) -> Vec<usize> {
        self.control.stop();
        // A runtime dropped on one of its own loop threads cannot join that thread.
        let me = std::thread::current().id();
        let own = self.thread_ids.iter().position(|id| *id == me);
        let stuck = self.control.wait_exited(deadline, own);
        for (index, join) in self.threads.iter_mut().enumerate() {
            if stuck.contains(&index) || own == Some(index) {
                drop(join.take()); // detached
            } else if let Some(join) = join.take() {
                let _ = join.join();
            }
        }
        stuck
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.threads.iter().any(Option::is_some) {
            self.stop_and_join(None);
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("loops", &self.handles.len())
            .field("stopping", &self.control.is_stopping())
            .finish()
    }
}
