//! Tasks: Rust futures run by the loop, one step per wake-up, on the loop's thread.
//!
//! A task is one `Rc` allocation holding its future (pinned in place), its outcome and
//! its joiner's waker, plus an `Arc<TaskHeader>` that is its `Waker`. The header holds no
//! pointer to the (`!Send`) future, only the task's slot in the loop's task table, so
//! wakers may be cloned, sent and woken from any thread: on the loop thread a wake pushes
//! the task on the ready queue; elsewhere it goes through the loop's remote queue.
//!
//! Cancellation ([`JoinHandle::cancel`]) drops the future at its next scheduling point —
//! the Rust form of asyncio's `CancelledError` at the next `await`: destructors run (the
//! place for clean-up), and the task's outcome is [`Error::Cancelled`].

mod combinators;

pub use combinators::{
    AsCompleted, ReturnWhen, Sleep, as_completed, gather, sleep, timeout, wait, wait_for, yield_now,
};

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future as StdFuture;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use slab::Slab;

use crate::error::Error;
use crate::event_loop::{
    EventLoop, ExceptionContext, LoopInner, Ready, RemoteItem, Shared, get_event_loop, with_running,
};

/// A task's entry in the loop's task table.
struct TaskSlot {
    generation: u32,
    task: Rc<dyn TaskRun>,
}

/// A loop's live tasks, by slot index; a slot's generation tells a stale wake-up (for a
/// task that finished, its index since reused) from a current one.
#[derive(Default)]
pub(crate) struct TaskTable {
    slots: RefCell<Slab<TaskSlot>>,
}

impl TaskTable {
    /// The index the next inserted task gets.
    fn next_index(&self) -> u32 {
        self.slots.borrow().vacant_key() as u32
    }

    fn insert(&self, slot: TaskSlot) -> u32 {
        self.slots.borrow_mut().insert(slot) as u32
    }

    /// The task at `index`, if it is still the one of `generation`.
    fn get(&self, index: u32, generation: u32) -> Option<Rc<dyn TaskRun>> {
        match self.slots.borrow().get(index as usize) {
            Some(slot) if slot.generation == generation => Some(slot.task.clone()),
            _ => None,
        }
    }

    /// Removes the task at `index` if it is still the one of `generation`.
    fn remove(&self, index: u32, generation: u32) -> Option<TaskSlot> {
        let mut slots = self.slots.borrow_mut();
        match slots.get(index as usize) {
            Some(slot) if slot.generation == generation => Some(slots.remove(index as usize)),
            _ => None,
        }
    }

    /// Takes every task out of the table.
    fn take_all(&self) -> Slab<TaskSlot> {
        std::mem::take(&mut *self.slots.borrow_mut())
    }
}

/// The thread-safe part of a task: its waker.
pub(crate) struct TaskHeader {
    index: u32,
    generation: u32,
    loop_id: u64,
    shared: Arc<Shared>,
    scheduled: AtomicBool,
}

impl TaskHeader {
    pub(crate) fn ready_entry(&self) -> Ready {
        Ready::Task {
            index: self.index,
            generation: self.generation,
        }
    }
}

impl Wake for TaskHeader {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let local = with_running(|running| match running {
            Some(l) if l.id() == self.loop_id => {
                l.push_ready(self.ready_entry());
                true
            }
            _ => false,
        });
        if !local {
            // A closed loop refuses the wake; its tasks are gone anyway.
            let _ = self.shared.push(RemoteItem::Wake(self.clone()));
        }
    }
}

/// The loop's view of a task.
pub(crate) trait TaskRun {
    /// Runs one step; true when the task finished.
    fn run(&self, event_loop: &Rc<LoopInner>) -> bool;
    /// Ends the task now as cancelled (its future is dropped), unless it finished.
    fn cancel_now(&self);
}

enum Outcome<T> {
    Pending,
    Ready(T),
    Cancelled,
    Panicked(Box<dyn Any + Send>),
    Taken,
}

struct TaskCell<F: StdFuture> {
    header: Arc<TaskHeader>,
    waker: Waker,
    /// Pinned in place: never moved while `Some`, dropped in place.
    future: RefCell<Option<F>>,
    outcome: RefCell<Outcome<F::Output>>,
    join_waker: Cell<Option<Waker>>,
    cancel_requested: Cell<bool>,
    /// When the task finished, in this thread's finishing order (0: not yet).
    finished_at: Cell<u64>,
    handle_alive: Cell<bool>,
    event_loop: Weak<LoopInner>,
}

impl<F: StdFuture> TaskCell<F> {
    fn finish(&self, outcome: Outcome<F::Output>) {
        self.finished_at.set(next_finish_seq());
        // Drop the future in place (it is pinned); the borrow ends before anything else.
        *self.future.borrow_mut() = None;
        let report = matches!(outcome, Outcome::Panicked(_)) && !self.handle_alive.get();
        let message = match &outcome {
            Outcome::Panicked(p) => Some(crate::error::panic_message(p.as_ref())),
            _ => None,
        };
        *self.outcome.borrow_mut() = outcome;
        if let Some(w) = self.join_waker.take() {
            w.wake();
        }
        if report && let (Some(l), Some(message)) = (self.event_loop.upgrade(), message) {
            l.report(ExceptionContext {
                message: "a task panicked and nobody awaits it".into(),
                error: Some(Error::Panic(message)),
            });
        }
    }

    fn is_finished(&self) -> bool {
        !matches!(*self.outcome.borrow(), Outcome::Pending)
    }
}

impl<F: StdFuture + 'static> TaskRun for TaskCell<F> {
    fn cancel_now(&self) {
        if !self.is_finished() {
            self.finish(Outcome::Cancelled);
        }
    }

    fn run(&self, _event_loop: &Rc<LoopInner>) -> bool {
        self.header.scheduled.store(false, Ordering::Release);
        if self.is_finished() {
            return true;
        }
        if self.cancel_requested.get() {
            self.finish(Outcome::Cancelled);
            return true;
        }
        let mut cx = Context::from_waker(&self.waker);
        let polled = {
            let mut slot = self.future.borrow_mut();
            let Some(fut) = slot.as_mut() else {
                return true;
            };
            // SAFETY: the future lives inside this Rc allocation and is never moved out
            // while Some: it is dropped in place by `finish`.
            let fut = unsafe { Pin::new_unchecked(fut) };
            catch_unwind(AssertUnwindSafe(|| fut.poll(&mut cx)))
        };
        match polled {
            Ok(Poll::Pending) => false,
            Ok(Poll::Ready(v)) => {
                self.finish(Outcome::Ready(v));
                true
            }
            Err(payload) => {
                self.finish(Outcome::Panicked(payload));
                true
            }
        }
    }
}

/// The typed view a [`JoinHandle`] has of its task.
trait JoinTarget<T> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<T, Error>>;
    fn register(&self, waker: &Waker);
    fn take_raw(&self) -> Option<Outcome<T>>;
    fn cancel(&self) -> bool;
    fn is_finished(&self) -> bool;
    fn failed(&self) -> bool;
    fn finished_at(&self) -> u64;
    fn detach(&self);
}

impl<F: StdFuture + 'static> JoinTarget<F::Output> for TaskCell<F> {
    fn poll_join(&self, cx: &mut Context<'_>) -> Poll<Result<F::Output, Error>> {
        match self.take_raw() {
            Some(outcome) => Poll::Ready(outcome_into_result(outcome)),
            None => {
                self.join_waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }

    fn register(&self, waker: &Waker) {
        self.join_waker.set(Some(waker.clone()));
    }

    fn take_raw(&self) -> Option<Outcome<F::Output>> {
        let mut outcome = self.outcome.borrow_mut();
        match *outcome {
            Outcome::Pending => None,
            _ => Some(std::mem::replace(&mut *outcome, Outcome::Taken)),
        }
    }

    fn cancel(&self) -> bool {
        if self.is_finished() || self.cancel_requested.get() {
            return false;
        }
        self.cancel_requested.set(true);
        self.waker.wake_by_ref();
        true
    }

    fn is_finished(&self) -> bool {
        TaskCell::is_finished(self)
    }

    fn finished_at(&self) -> u64 {
        self.finished_at.get()
    }

    fn failed(&self) -> bool {
        matches!(
            *self.outcome.borrow(),
            Outcome::Cancelled | Outcome::Panicked(_)
        )
    }

    fn detach(&self) {
        self.handle_alive.set(false);
        if let Outcome::Panicked(p) = &*self.outcome.borrow()
            && let Some(l) = self.event_loop.upgrade()
        {
            l.report(ExceptionContext {
                message: "a task panicked and its result was never retrieved".into(),
                error: Some(Error::Panic(crate::error::panic_message(p.as_ref()))),
            });
        }
    }
}

fn outcome_into_result<T>(outcome: Outcome<T>) -> Result<T, Error> {
    match outcome {
        Outcome::Ready(v) => Ok(v),
        Outcome::Cancelled => Err(Error::Cancelled),
        Outcome::Panicked(p) => Err(Error::from_panic(p)),
        Outcome::Taken => Err(Error::InvalidState("the task's result was already taken")),
        Outcome::Pending => Err(Error::InvalidState("the task is not finished")),
    }
}

/// Owns the right to a task's output. Awaiting it gives `Ok(output)`, or
/// [`Error::Cancelled`] / [`Error::Panic`]. Dropping it detaches the task, which keeps
/// running (as an asyncio task does).
pub struct JoinHandle<T> {
    task: Rc<dyn JoinTarget<T>>,
}

impl<T> JoinHandle<T> {
    /// Requests cancellation: the task's future is dropped at its next scheduling point.
    /// Returns false if it already finished (or was already cancelled).
    pub fn cancel(&self) -> bool {
        self.task.cancel()
    }

    /// Whether the task finished (completed, was cancelled, or panicked).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Whether the task finished by cancellation or panic.
    pub fn failed(&self) -> bool {
        self.task.failed()
    }

    /// Finishing order among this thread's tasks (smaller finished earlier); 0 while
    /// running, and for a task created on a closed loop (cancelled before it existed).
    pub(crate) fn finished_at(&self) -> u64 {
        self.task.finished_at()
    }

    pub(crate) fn register(&self, waker: &Waker) {
        self.task.register(waker);
    }

    /// The output, for `run_until_complete`: a panic in the task resumes here.
    pub(crate) fn take_output_resuming_panic(&self) -> Result<T, Error> {
        match self.task.take_raw() {
            Some(Outcome::Panicked(p)) => resume_unwind(p),
            Some(outcome) => outcome_into_result(outcome),
            None => Err(Error::InvalidState("the task is not finished")),
        }
    }
}

impl<T> StdFuture for JoinHandle<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.task.poll_join(cx)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.task.detach();
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

thread_local! {
    static NEXT_GENERATION: Cell<u32> = const { Cell::new(0) };
    static FINISH_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// The next number in this thread's task-finishing order (starts at 1).
fn next_finish_seq() -> u64 {
    FINISH_SEQ.with(|s| {
        let next = s.get() + 1;
        s.set(next);
        next
    })
}

/// Spawns `fut` on `event_loop`; its first step runs through the ready queue.
pub(crate) fn spawn_on<F>(event_loop: &Rc<LoopInner>, fut: F) -> JoinHandle<F::Output>
where
    F: StdFuture + 'static,
{
    let generation = NEXT_GENERATION.with(|g| {
        let next = g.get().wrapping_add(1);
        g.set(next);
        next
    });
    let tasks = event_loop.tasks();
    let header = Arc::new(TaskHeader {
        index: tasks.next_index(),
        generation,
        loop_id: event_loop.id(),
        shared: event_loop.shared().clone(),
        scheduled: AtomicBool::new(true),
    });
    let closed = event_loop.is_closed();
    let cell = Rc::new(TaskCell {
        waker: Waker::from(header.clone()),
        header,
        future: RefCell::new(Some(fut)),
        outcome: RefCell::new(if closed {
            Outcome::Cancelled
        } else {
            Outcome::Pending
        }),
        join_waker: Cell::new(None),
        cancel_requested: Cell::new(false),
        handle_alive: Cell::new(true),
        finished_at: Cell::new(0),
        event_loop: Rc::downgrade(event_loop),
    });
    if closed {
        // No table borrow is held here: the future's destructor may spawn.
        let future = cell.future.borrow_mut().take();
        drop(future);
    } else {
        let ready = cell.header.ready_entry();
        // Nothing ran since `next_index`, so the task gets the index its header names.
        let index = tasks.insert(TaskSlot {
            generation,
            task: cell.clone(),
        });
        debug_assert_eq!(index, cell.header.index);
        event_loop.push_ready(ready);
    }
    JoinHandle { task: cell }
}

/// Runs one step of the task at `index` (if it is still the same task).
pub(crate) fn run_task(event_loop: &Rc<LoopInner>, index: u32, generation: u32) {
    let Some(task) = event_loop.tasks().get(index, generation) else {
        return;
    };
    if task.run(event_loop) {
        let removed = event_loop.tasks().remove(index, generation);
        drop(removed);
    }
}

/// Spawns `fut` as a task on the running loop (else the thread's current loop).
///
/// # Panics
///
/// When the thread has no event loop and one cannot be created (io_uring refused); use
/// [`EventLoop::create_task`] to handle that case.
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: StdFuture + 'static,
{
    match get_event_loop() {
        Ok(l) => l.create_task(fut),
        Err(e) => panic!("ringloop::spawn: no event loop for this thread: {e}"),
    }
}

/// asyncio's name for [`spawn`].
pub fn create_task<F>(fut: F) -> JoinHandle<F::Output>
where
    F: StdFuture + 'static,
{
    spawn(fut)
}

/// asyncio's `ensure_future`: wraps a future in a task (a task is returned as is by
/// awaiting its handle, so there is nothing else to ensure in Rust).
pub fn ensure_future<F>(fut: F) -> JoinHandle<F::Output>
where
    F: StdFuture + 'static,
{
    spawn(fut)
}

/// asyncio's `asyncio.run`: a new loop made current, runs `fut` to completion, cancels
/// what tasks remain and lets them finish, closes the loop.
///
/// # Examples
///
/// ```
/// let answer = ringloop::run(async { 6 * 7 }).unwrap();
/// assert_eq!(answer, 42);
/// ```
pub fn run<F>(fut: F) -> Result<F::Output, Error>
where
    F: StdFuture + 'static,
{
    run_on(EventLoop::new()?, fut)
}

/// [`run`] on a given (new) loop: made current, runs `fut`, cancels the rest, closes.
pub(crate) fn run_on<F>(event_loop: EventLoop, fut: F) -> Result<F::Output, Error>
where
    F: StdFuture + 'static,
{
    struct Restore(Option<EventLoop>);
    impl Drop for Restore {
        fn drop(&mut self) {
            crate::event_loop::set_event_loop(self.0.take());
        }
    }
    let previous = crate::event_loop::get_event_loop_if_set();
    crate::event_loop::set_event_loop(Some(event_loop.clone()));
    let _restore = Restore(previous);
    struct CloseOnExit(EventLoop);
    impl Drop for CloseOnExit {
        fn drop(&mut self) {
            let _ = self.0.close();
        }
    }
    let closer = CloseOnExit(event_loop.clone());
    let result = event_loop.run_until_complete(fut);
    event_loop.cancel_all_tasks();
    drop(closer);
    result
}

/// Cancels every task still on the loop: each future is dropped (asyncio's cancellation
/// point) and each joiner sees [`Error::Cancelled`].
pub(crate) fn cancel_all_tasks(event_loop: &LoopInner) {
    // Dropping a future may spawn again; a few rounds settle it.
    for _ in 0..16 {
        let tasks = event_loop.tasks().take_all();
        if tasks.is_empty() {
            return;
        }
        for (_, slot) in tasks {
            slot.task.cancel_now();
        }
    }
}
