//! The event loop: a ready queue, a timer heap, the task table and the ring driver, turned
//! by `run_forever` one iteration at a time.
//!
//! One iteration (asyncio's `_run_once`):
//! 1. decide how long the kernel may block: not at all if callbacks are ready or the loop
//!    is stopping, else until the nearest timer (the driver keeps it armed: one timeout op
//!    in the ring), else indefinitely (another thread wakes us through the driver's
//!    unparker);
//! 2. submit every SQE pushed since the last iteration and reap every CQE (one
//!    `io_uring_enter`); completions wake tasks or queue transport callbacks;
//! 3. queue callbacks from other threads, then due timers;
//! 4. run exactly the callbacks queued so far — what they schedule waits for the next
//!    iteration.
//!
//! While callbacks keep the queue busy and nothing needs submitting, the ring is polled
//! only every [`POLL_INTERVAL`] iterations, so a callback-heavy loop makes no syscall per
//! iteration.

mod current;
mod handle;
mod remote;
mod timers;

pub(crate) use current::{current_driver, fd_closing, get_event_loop_if_set, with_running};
pub use current::{get_event_loop, get_running_loop, new_event_loop, set_event_loop};
pub use handle::{Handle, TimerHandle};
pub use remote::RemoteHandle;
pub(crate) use remote::{RemoteItem, Shared};

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::buf::ring::BufRing;
use crate::driver::{
    Completion, Dispatch, Driver, DriverStats, Engine, OpHandler, OpKey, RingSize, SetupMode, Wait,
};
use crate::error::Error;
use crate::task::{self, JoinHandle};
use handle::CallbackCell;
pub(crate) use handle::Runnable;
use timers::Timers;
pub(crate) use timers::deadline_after;

/// While callbacks are ready and nothing needs submitting, poll the ring every this many
/// iterations.
pub const POLL_INTERVAL: u32 = 61;

/// Buffer group of the datagram ring (the stream ring is group 0).
const DATAGRAM_RING_BGID: u16 = 1;
/// Buffers in the datagram ring: a multishot `recvmsg` fills at most this many before the
/// loop recycles them (then it ends with `ENOBUFS` and is re-armed).
const DATAGRAM_RING_ENTRIES: u16 = 32;

/// How long `close` waits for the kernel to hand back in-flight operations.
const CLOSE_BOUND: Duration = Duration::from_secs(2);

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

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

/// A transport with buffered writes to send before the next submit.
pub(crate) trait Flush {
    fn flush(self: Rc<Self>);
}

/// A transport still open, registered with its loop so that closing the loop lets go of
/// its protocol. A protocol that keeps its transport (the usual pattern) and the transport
/// that owns the protocol form a cycle that only `connection_lost` breaks; when the loop
/// closes first, [`Live::release`] breaks it, or the socket and the loop's own fds would
/// stay open for good.
pub(crate) trait Live {
    /// Drops the protocol and the transport's fd without calling the protocol (the loop
    /// is closing; ops still in the kernel keep what they point into until their CQEs).
    fn release(&self);
}

/// What went wrong, handed to the loop's exception handler.
#[derive(Debug, Clone)]
pub struct ExceptionContext {
    /// What the loop was doing.
    pub message: String,
    /// The error, when there is one.
    pub error: Option<Error>,
}

type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Running,
    Closed,
}

pub(crate) struct LoopInner {
    id: u64,
    pub(crate) driver: Rc<Driver>,
    ready: RefCell<VecDeque<Ready>>,
    timers: RefCell<Timers>,
    pub(crate) tasks: RefCell<Slab<task::TaskSlot>>,
    pub(crate) shared: Arc<Shared>,
    state: Cell<State>,
    stopping: Cell<bool>,
    exception_handler: RefCell<Option<ExceptionHandler>>,
    iterations: Cell<u64>,
    since_poll: Cell<u32>,
    cqes: RefCell<Vec<(u64, Completion)>>,
    remote_items: RefCell<Vec<RemoteItem>>,
    due: RefCell<Vec<Rc<dyn Runnable>>>,
    /// Transports with writes to send, flushed once just before each submit, so every
    /// write of an iteration leaves in one send.
    flush_queue: RefCell<Vec<Rc<dyn Flush>>>,
    flush_batch: RefCell<Vec<Rc<dyn Flush>>>,
    /// Transports not yet over, released at close (see [`Live`]).
    live: RefCell<Slab<std::rc::Weak<dyn Live>>>,
    pub(crate) net: NetConfig,
    buf_ring: RefCell<Option<Rc<BufRing>>>,
    /// Registering a buffer ring failed once (old kernel, or the epoll engine): don't retry.
    buf_ring_refused: Cell<bool>,
    /// The datagram endpoints' buffer ring (multishot `recvmsg`), registered on first use.
    dgram_ring: RefCell<Option<Rc<BufRing>>>,
    dgram_ring_refused: Cell<bool>,
    pid: u32,
    /// Signal handlers (`add_signal_handler`), see `crate::signal`.
    pub(crate) signals: crate::signal::LoopSignals,
    /// The default executor and results on their way (`run_in_executor`).
    pub(crate) executor: crate::executor::LoopExecutor,
    /// Child processes, killed and reaped if still running at close.
    pub(crate) processes: crate::process::LoopProcesses,
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
    pub(crate) inner: Rc<LoopInner>,
}

/// Options for a new loop.
#[derive(Debug, Clone)]
pub struct LoopBuilder {
    size: RingSize,
    net: NetConfig,
    engine: Option<Engine>,
}

/// How stream transports receive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetConfig {
    /// Multishot receives from a provided-buffer ring (else one owned-buffer recv each).
    pub(crate) multishot_recv: bool,
    pub(crate) recv_buffers: u16,
    pub(crate) recv_buffer_size: usize,
}

impl Default for LoopBuilder {
    fn default() -> Self {
        LoopBuilder {
            size: RingSize {
                sq_entries: 256,
                cq_entries: 4096,
            },
            net: NetConfig {
                multishot_recv: true,
                recv_buffers: 512,
                recv_buffer_size: 16 * 1024,
            },
            engine: None,
        }
    }
}

impl LoopBuilder {
    /// Submission queue entries (rounded up to a power of two by the kernel). Default 256.
    pub fn sq_entries(mut self, n: u32) -> Self {
        self.size.sq_entries = n.max(1);
        self
    }

    /// Completion queue entries. Default 4096.
    pub fn cq_entries(mut self, n: u32) -> Self {
        self.size.cq_entries = n.max(1);
        self
    }

    /// Whether receives use multishot ops fed by provided-buffer rings (the default, where
    /// the kernel has them: `recv` on streams, `recvmsg` on datagram endpoints, whose ring
    /// of 32 × 64 KiB buffers is registered with the first endpoint) or one single-shot
    /// receive into an owned buffer per read or datagram.
    pub fn multishot_recv(mut self, on: bool) -> Self {
        self.net.multishot_recv = on;
        self
    }

    /// The provided-buffer ring shared by every stream of the loop: `count` buffers (a
    /// power of two) of `size` bytes. Default 512 × 16 KiB. Also the size of single-shot
    /// receive buffers.
    pub fn recv_buffers(mut self, count: u16, size: usize) -> Self {
        self.net.recv_buffers = count.max(1).next_power_of_two();
        self.net.recv_buffer_size = size.max(1);
        self
    }

    /// Which engine runs the loop's operations. Without this, `RINGLOOP_ENGINE`
    /// (`uring`, `epoll` or `auto`) decides, and io_uring is the default.
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// asyncio's `run` on a loop with these options: creates it, makes it current, runs
    /// `fut` to completion, cancels what tasks remain, closes the loop.
    pub fn run<F>(self, fut: F) -> Result<F::Output, Error>
    where
        F: std::future::Future + 'static,
    {
        task::run_on(self.build()?, fut)
    }

    /// Creates the loop. Fails with [`Error::Unavailable`] when io_uring is refused (the
    /// message says why and what to do).
    pub fn build(self) -> Result<EventLoop, Error> {
        let engine = match self.engine {
            Some(e) => e,
            None => Engine::from_env()?,
        };
        let driver = match engine {
            Engine::Uring => Driver::new(self.size).map_err(|e| Error::Unavailable(Arc::new(e)))?,
            Engine::Epoll => Driver::new_epoll()?,
            Engine::Auto => match Driver::new(self.size) {
                Ok(d) => d,
                Err(e) => {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        eprintln!("ringloop: {e}; falling back to the epoll engine");
                    });
                    Driver::new_epoll()?
                }
            },
        };
        let shared = Shared::new(driver.unparker());
        let inner = Rc::new(LoopInner {
            id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
            driver: Rc::new(driver),
            ready: RefCell::new(VecDeque::with_capacity(256)),
            timers: RefCell::new(Timers::default()),
            tasks: RefCell::new(Slab::new()),
            shared: Arc::new(shared),
            state: Cell::new(State::Idle),
            stopping: Cell::new(false),
            exception_handler: RefCell::new(None),
            iterations: Cell::new(0),
            since_poll: Cell::new(0),
            cqes: RefCell::new(Vec::with_capacity(256)),
            remote_items: RefCell::new(Vec::new()),
            due: RefCell::new(Vec::new()),
            flush_queue: RefCell::new(Vec::new()),
            flush_batch: RefCell::new(Vec::new()),
            live: RefCell::new(Slab::new()),
            net: self.net,
            buf_ring: RefCell::new(None),
            buf_ring_refused: Cell::new(false),
            dgram_ring: RefCell::new(None),
            dgram_ring_refused: Cell::new(false),
            pid: crate::sys::getpid(),
            signals: Default::default(),
            executor: Default::default(),
            processes: Default::default(),
        });
        Ok(EventLoop { inner })
    }
}

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

    pub(crate) fn insert_timer(&self, when: Instant, cell: Rc<dyn Runnable>) -> TimerHandle {
        let handle = self.inner.timers.borrow_mut().insert(when, cell);
        if self.is_closed() {
            handle.cancel();
        }
        handle
    }

    /// The loop's clock: monotonic (`CLOCK_MONOTONIC`, as `Instant`).
    pub fn time(&self) -> Instant {
        Instant::now()
    }

    /// Runs until [`EventLoop::stop`] is called.
    pub fn run_forever(&self) -> Result<(), Error> {
        let _guard = self.inner.start_running()?;
        let result = loop {
            if let Err(e) = self.inner.run_once() {
                break Err(e);
            }
            if self.inner.stopping.get() {
                break Ok(());
            }
        };
        self.inner.stopping.set(false);
        self.inner.state.set(State::Idle);
        result
    }

    /// Runs `fut` as a task until it completes and returns its output.
    ///
    /// Errors: [`Error::InvalidState`] when called inside a running loop or when the loop
    /// was stopped before the future completed; [`Error::Closed`] on a closed loop. A panic
    /// in the future propagates to the caller, as an exception would in asyncio.
    pub fn run_until_complete<F>(&self, fut: F) -> Result<F::Output, Error>
    where
        F: std::future::Future + 'static,
    {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        // Refuse first: a future handed to a loop that cannot run it must not be left
        // behind as a task that runs later (asyncio checks before `ensure_future` too).
        let _guard = self.inner.start_running()?;
        let handle = self.create_task(fut);
        let result = loop {
            if let Err(e) = self.inner.run_once() {
                break Err(e);
            }
            if handle.is_finished() {
                break Ok(());
            }
            if self.inner.stopping.get() {
                break Err(Error::InvalidState(
                    "event loop stopped before the future completed",
                ));
            }
        };
        self.inner.stopping.set(false);
        self.inner.state.set(State::Idle);
        result?;
        handle.take_output_resuming_panic()
    }

    /// Stops the loop after the current iteration; before `run_forever`, the next run
    /// does one iteration and returns.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Whether the loop is running.
    pub fn is_running(&self) -> bool {
        self.inner.state.get() == State::Running
    }

    /// Whether the loop is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.state.get() == State::Closed
    }

    /// Closes the loop: drops every task, callback and timer, cancels every operation in
    /// the kernel and waits (bounded) for their completions, then releases the ring.
    /// Closing a running loop is an error; closing twice is fine.
    pub fn close(&self) -> Result<(), Error> {
        self.inner.close()
    }

    /// Spawns `fut` as a task on this loop; its first step runs in the next iteration.
    pub fn create_task<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + 'static,
    {
        task::spawn_on(&self.inner, fut)
    }

    /// Sets the handler for errors the loop catches (panicking callbacks, errors nobody
    /// retrieved); `None` restores the default, which prints to stderr.
    pub fn set_exception_handler(
        &self,
        handler: Option<impl Fn(&EventLoop, &ExceptionContext) + 'static>,
    ) {
        *self.inner.exception_handler.borrow_mut() =
            handler.map(|h| Rc::new(h) as ExceptionHandler);
    }

    /// Reports an error through the exception handler.
    pub fn call_exception_handler(&self, context: ExceptionContext) {
        self.inner.report(context);
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

    /// Provided receive buffers currently handed out to transports (0 when idle: every
    /// buffer a completion carries goes back to the ring).
    pub fn recv_buffers_in_use(&self) -> usize {
        self.inner
            .buf_ring
            .borrow()
            .as_ref()
            .map_or(0, |r| r.outstanding() as usize)
    }

    /// Iterations run so far.
    pub fn iterations(&self) -> u64 {
        self.inner.iterations.get()
    }

    /// Whether two handles name the same loop.
    pub fn same_loop(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
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

    pub(crate) fn push_ready(&self, item: Ready) {
        self.ready.borrow_mut().push_back(item);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.get() == State::Closed
    }

    fn start_running(self: &Rc<Self>) -> Result<current::RunningGuard, Error> {
        match self.state.get() {
            State::Closed => return Err(Error::Closed),
            State::Running => {
                return Err(Error::InvalidState("this event loop is already running"));
            }
            State::Idle => {}
        }
        if crate::sys::getpid() != self.pid {
            return Err(Error::InvalidState(
                "this event loop was created before fork(); create a new loop in the child",
            ));
        }
        let guard = current::enter_running(self)?;
        self.state.set(State::Running);
        Ok(guard)
    }

    /// One iteration (see the module docs).
    fn run_once(self: &Rc<Self>) -> Result<(), Error> {
        self.iterations.set(self.iterations.get() + 1);
        self.run_flushes();
        let busy = !self.ready.borrow().is_empty() || self.stopping.get();
        let next_deadline = self.timers.borrow_mut().next_deadline();
        let now = Instant::now();
        let mut deadline = None;
        let wait = if busy || next_deadline.is_some_and(|d| d <= now) || self.shared.has_pending() {
            let polls = self.since_poll.get() + 1;
            if polls >= POLL_INTERVAL {
                self.since_poll.set(0);
                Wait::Poll
            } else {
                self.since_poll.set(polls);
                Wait::IfSubmitting
            }
        } else {
            self.since_poll.set(0);
            deadline = next_deadline;
            Wait::Block
        };

        let mut cqes = std::mem::take(&mut *self.cqes.borrow_mut());
        let result = if wait == Wait::Block {
            let result = if self.shared.prepare_sleep() {
                self.driver
                    .submit_and_reap(Wait::Block, deadline, &mut cqes)
            } else {
                self.driver.submit_and_reap(Wait::Poll, deadline, &mut cqes)
            };
            self.shared.woke();
            result
        } else {
            self.driver.submit_and_reap(wait, None, &mut cqes)
        };
        if let Err(e) = result {
            *self.cqes.borrow_mut() = cqes;
            return Err(e.into());
        }
        for (user_data, completion) in cqes.drain(..) {
            self.dispatch(user_data, completion);
        }
        *self.cqes.borrow_mut() = cqes;

        self.drain_remote();
        if self.timers.borrow().len() > 0 {
            let mut due = std::mem::take(&mut *self.due.borrow_mut());
            self.timers
                .borrow_mut()
                .take_due(Instant::now(), |cell| due.push(cell));
            for cell in due.drain(..) {
                if cell.runs_when_due() {
                    cell.run();
                } else {
                    self.push_ready(Ready::Callback(cell));
                }
            }
            *self.due.borrow_mut() = due;
        }

        let ntodo = self.ready.borrow().len();
        for _ in 0..ntodo {
            let Some(item) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            self.run_ready(item);
        }
        Ok(())
    }

    fn run_ready(self: &Rc<Self>, item: Ready) {
        match item {
            Ready::Callback(cell) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cell.run())) {
                    self.report(ExceptionContext {
                        message: "a callback panicked".into(),
                        error: Some(Error::from_panic(payload)),
                    });
                }
            }
            Ready::Task { index, generation } => task::run_task(self, index, generation),
            Ready::Io {
                handler,
                tag,
                completion,
            } => {
                if let Err(payload) =
                    catch_unwind(AssertUnwindSafe(|| handler.on_completion(tag, completion)))
                {
                    self.report(ExceptionContext {
                        message: "an I/O completion callback panicked".into(),
                        error: Some(Error::from_panic(payload)),
                    });
                }
            }
        }
    }

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

    /// Registers a transport to release at close; the key unregisters it.
    pub(crate) fn register_live(&self, live: std::rc::Weak<dyn Live>) -> usize {
        self.live.borrow_mut().insert(live)
    }

    /// Forgets a transport registered with [`LoopInner::register_live`] (it is over).
    pub(crate) fn unregister_live(&self, key: usize) {
        // A drop during close's release finds the slab taken (or borrowed): nothing to do.
        if let Ok(mut live) = self.live.try_borrow_mut() {
            live.try_remove(key);
        }
    }

    /// Queues a transport's flush for just before the next submit.
    pub(crate) fn schedule_flush(&self, flush: Rc<dyn Flush>) {
        self.flush_queue.borrow_mut().push(flush);
    }

    fn run_flushes(&self) {
        if self.flush_queue.borrow().is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut *self.flush_batch.borrow_mut());
        std::mem::swap(&mut batch, &mut *self.flush_queue.borrow_mut());
        for f in batch.drain(..) {
            f.flush();
        }
        *self.flush_batch.borrow_mut() = batch;
    }

    /// The loop's provided-buffer ring, registered on first use; `None` where multishot
    /// receives are off or the kernel refuses buffer rings.
    pub(crate) fn buf_ring(&self) -> Option<Rc<BufRing>> {
        if !self.net.multishot_recv || self.buf_ring_refused.get() {
            return None;
        }
        if let Some(r) = self.buf_ring.borrow().as_ref() {
            return Some(r.clone());
        }
        let ring = BufRing::new(0, self.net.recv_buffers, self.net.recv_buffer_size)
            .and_then(|r| self.driver.register_buf_ring(r));
        match ring {
            Ok(r) => {
                *self.buf_ring.borrow_mut() = Some(r.clone());
                Some(r)
            }
            Err(_) => {
                self.buf_ring_refused.set(true);
                None
            }
        }
    }

    /// The datagram endpoints' provided-buffer ring (each buffer holds the multishot
    /// `recvmsg` header, a source address and the largest UDP payload), registered on first
    /// use; `None` where multishot receives are off or the kernel refuses buffer rings.
    pub(crate) fn datagram_ring(&self) -> Option<Rc<BufRing>> {
        if !self.net.multishot_recv || self.dgram_ring_refused.get() {
            return None;
        }
        if let Some(r) = self.dgram_ring.borrow().as_ref() {
            return Some(r.clone());
        }
        let ring = BufRing::new(
            DATAGRAM_RING_BGID,
            DATAGRAM_RING_ENTRIES,
            crate::transport::DATAGRAM_RING_BUFFER,
        )
        .and_then(|r| self.driver.register_buf_ring(r));
        match ring {
            Ok(r) => {
                *self.dgram_ring.borrow_mut() = Some(r.clone());
                Some(r)
            }
            Err(_) => {
                self.dgram_ring_refused.set(true);
                None
            }
        }
    }

    fn drain_remote(&self) {
        if !self.shared.has_pending() {
            return;
        }
        let mut items = std::mem::take(&mut *self.remote_items.borrow_mut());
        self.shared.drain(&mut items);
        for item in items.drain(..) {
            match item {
                RemoteItem::Callback(f) => {
                    let cell = CallbackCell::new_runnable(f);
                    self.push_ready(Ready::Callback(cell));
                }
                RemoteItem::Wake(header) => self.push_ready(header.ready_entry()),
            }
        }
        *self.remote_items.borrow_mut() = items;
    }

    pub(crate) fn report(self: &Rc<Self>, context: ExceptionContext) {
        let handler = self.exception_handler.borrow().clone();
        match handler {
            Some(h) => {
                let event_loop = EventLoop {
                    inner: self.clone(),
                };
                if catch_unwind(AssertUnwindSafe(|| h(&event_loop, &context))).is_err() {
                    eprintln!("ringloop: the exception handler panicked");
                    default_report(&context);
                }
            }
            None => default_report(&context),
        }
    }

    fn close(&self) -> Result<(), Error> {
        match self.state.get() {
            State::Closed => return Ok(()),
            State::Running => {
                return Err(Error::InvalidState("cannot close a running event loop"));
            }
            State::Idle => {}
        }
        self.state.set(State::Closed);
        if crate::sys::getpid() != self.pid {
            // A forked child: the parent's ring must not be touched here (see
            // `Driver::release_after_fork`); everything below then frees only our copies.
            self.driver.release_after_fork();
        }
        // Drop tasks first: their futures abandon their ops into the driver.
        task::cancel_all_tasks(self);
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        drop(ready);
        let timers = self.timers.borrow_mut().clear();
        drop(timers);
        self.flush_queue.borrow_mut().clear();
        // Open transports let go of their protocols (breaking protocol <-> transport
        // cycles) and fds; their ops' memory stays with the driver's slots until shutdown.
        let live = std::mem::take(&mut *self.live.borrow_mut());
        for (_, t) in live {
            if let Some(t) = t.upgrade() {
                t.release();
            }
        }
        self.signals.close();
        self.executor.close();
        self.processes.close();
        drop(self.shared.close());
        self.buf_ring.borrow_mut().take();
        self.dgram_ring.borrow_mut().take();
        // What the kernel still holds past the bound (the driver's timer and wake-up
        // buffers included) the driver leaks rather than frees.
        self.driver.shutdown(CLOSE_BOUND);
        Ok(())
    }
}

fn default_report(context: &ExceptionContext) {
    match &context.error {
        Some(e) => eprintln!("ringloop: {}: {e}", context.message),
        None => eprintln!("ringloop: {}", context.message),
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
