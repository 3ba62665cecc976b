//! asyncio's `run_coroutine_threadsafe`: build a future on another loop, get its result
//! back on any thread — awaited on a loop, or with a blocking [`ConcurrentFuture::wait`].
//!
//! The closure crosses threads, not the future: `f: FnOnce() -> Fut + Send` runs on the
//! target loop's thread (through its cross-thread queue and eventfd wake-up, as
//! `call_soon_threadsafe`), so `Fut` may hold `Rc`s and transports. The future runs there
//! as a task; its output (`Send`) goes into a slot both sides share, a `Mutex` with the
//! waiting side's waker and a `Condvar` for plain threads.
//!
//! Cancellation goes both ways. [`ConcurrentFuture::cancel`], or dropping the
//! `ConcurrentFuture` before it is done, sets a flag and wakes the remote task (its waker
//! is `Send`); the task drops the future at its next poll, so its destructors run on the
//! loop it was built on, and the outcome becomes [`Error::Cancelled`]. The other way, a
//! loop that closes with the task (or the queued closure) still there drops it, and the
//! waiting side sees `Cancelled` — never a hang.
//!
//! A panic in `f` or in the future is the outcome ([`Error::Panic`]), as an exception is in
//! asyncio; when nobody waits for it any more it goes to the target loop's exception
//! handler instead.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::catch::{self, CatchPanic};
use crate::error::Error;
use crate::event_loop::{ExceptionContext, RemoteHandle, get_running_loop};

/// Runs `f` on the loop behind `handle` and the future it returns as a task there; the
/// returned [`ConcurrentFuture`] gives its output on any thread.
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use ringloop::{EventLoop, run_coroutine_threadsafe};
///
/// let event_loop = EventLoop::new().unwrap();
/// let remote = event_loop.remote();
/// let stopper = event_loop.remote();
/// let caller = std::thread::spawn(move || {
///     // The closure is Send; the future it builds on the loop holds an Rc.
///     let answer = run_coroutine_threadsafe(&remote, || {
///         let local = Rc::new(21);
///         async move { *local * 2 }
///     });
///     let out = answer.wait();
///     stopper.call_soon_threadsafe(|| ringloop::get_running_loop().unwrap().stop()).unwrap();
///     out
/// });
/// event_loop.run_forever().unwrap();
/// assert_eq!(caller.join().unwrap().unwrap(), 42);
/// event_loop.close().unwrap();
/// ```
pub fn run_coroutine_threadsafe<F, Fut>(
    handle: &RemoteHandle,
    f: F,
) -> ConcurrentFuture<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let slot = Arc::new(Slot::new());
    let producer = Producer {
        slot: Some(slot.clone()),
    };
    // If the loop is closed, the closure (and the producer in it) is dropped here and the
    // outcome becomes Cancelled; say Closed instead.
    let pushed = handle.call_soon_threadsafe(move || start(producer, f));
    if let Err(e) = pushed {
        let mut inner = slot.lock();
        inner.outcome = Some(Err(e));
        inner.state = SlotState::Done;
    }
    ConcurrentFuture {
        slot,
        target: handle.clone(),
        armed: true,
    }
}

/// On the target loop: build the future and spawn the task that drives it.
fn start<F, Fut>(producer: Producer<Fut::Output>, f: F)
where
    F: FnOnce() -> Fut,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    if producer.cancel_requested() {
        return; // dropping the producer records Cancelled
    }
    let Ok(event_loop) = get_running_loop() else {
        return;
    };
    let future = match catch::call(f) {
        Ok(future) => future,
        Err(panic) => return producer.deliver(Err(panic)),
    };
    let task = event_loop.create_task(Remote {
        future: CatchPanic::new(future),
        producer,
    });
    drop(task); // detached: the task runs on; the producer reports its end
}

/// The task on the target loop: polls the future unless cancellation was asked for.
struct Remote<Fut: Future> {
    future: CatchPanic<Fut>,
    producer: Producer<Fut::Output>,
}

impl<Fut: Future> Future for Remote<Fut>
where
    Fut::Output: Send,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Remote is Unpin: the future is boxed inside CatchPanic.
        let this = self.get_mut();
        if this.producer.register_remote(cx.waker()) {
            // The future's destructors run here, on its loop, before the waiting side
            // learns of the cancellation.
            this.future.drop_future();
            this.producer.deliver_in_place(Err(Error::Cancelled));
            return Poll::Ready(());
        }
        match Pin::new(&mut this.future).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => {
                this.producer.deliver_in_place(outcome);
                Poll::Ready(())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// The future runs (or is queued to start).
    Pending,
    /// The outcome is in `outcome` (or was taken).
    Done,
}

struct Inner<T> {
    state: SlotState,
    outcome: Option<Result<T, Error>>,
    /// Whoever awaits the outcome on a loop.
    waiter: Option<Waker>,
    /// The remote task, woken to see a cancellation.
    remote: Option<Waker>,
    cancel: bool,
    /// The `ConcurrentFuture` is gone: nobody will read the outcome.
    abandoned: bool,
}

/// The outcome both threads share.
struct Slot<T> {
    inner: Mutex<Inner<T>>,
    done: Condvar,
}

impl<T> Slot<T> {
    fn new() -> Self {
        Slot {
            inner: Mutex::new(Inner {
                state: SlotState::Pending,
                outcome: None,
                waiter: None,
                remote: None,
                cancel: false,
                abandoned: false,
            }),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The target loop's side of the slot: delivers exactly once, `Cancelled` if dropped first.
struct Producer<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Producer<T> {
    fn cancel_requested(&self) -> bool {
        self.slot.as_ref().is_some_and(|s| s.lock().cancel)
    }

    /// Keeps the task's waker for a later cancel; true if cancellation was asked for.
    fn register_remote(&self, waker: &Waker) -> bool {
        let Some(slot) = &self.slot else { return true };
        let mut inner = slot.lock();
        if inner.cancel {
            return true;
        }
        match &inner.remote {
            Some(w) if w.will_wake(waker) => {}
            _ => inner.remote = Some(waker.clone()),
        }
        false
    }

    fn deliver(mut self, outcome: Result<T, Error>) {
        self.deliver_in_place(outcome);
    }

    fn deliver_in_place(&mut self, outcome: Result<T, Error>) {
        let Some(slot) = self.slot.take() else { return };
        let mut inner = slot.lock();
        if inner.state == SlotState::Done {
            return;
        }
        inner.state = SlotState::Done;
        inner.remote = None;
        if inner.abandoned {
            drop(inner);
            if let Err(e @ Error::Panic(_)) = outcome
                && let Ok(l) = get_running_loop()
            {
                l.call_exception_handler(ExceptionContext {
                    message: "a coroutine from run_coroutine_threadsafe panicked and nobody \
                              waits for its result"
                        .into(),
                    error: Some(e),
                });
            }
            return;
        }
        inner.outcome = Some(outcome);
        let waiter = inner.waiter.take();
        drop(inner);
        slot.done.notify_all();
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Dropped before delivering: the loop closed, or the task saw a cancellation.
        self.deliver_in_place(Err(Error::Cancelled));
    }
}

/// The result of [`run_coroutine_threadsafe`], as asyncio's `concurrent.futures.Future`:
/// awaitable on any loop (`Output = Result<T, Error>`), [`wait`](ConcurrentFuture::wait)able
/// from a plain thread, [`cancel`](ConcurrentFuture::cancel)lable. `Send` when `T` is.
///
/// Dropping it before the outcome is in cancels the remote task (see
/// [`detach`](ConcurrentFuture::detach) to let it run on).
pub struct ConcurrentFuture<T> {
    slot: Arc<Slot<T>>,
    target: RemoteHandle,
    armed: bool,
}

impl<T> ConcurrentFuture<T> {
    /// Blocks the calling thread until the outcome is in. Refused with
    /// [`Error::InvalidState`] on the loop that runs the coroutine (that would never
    /// finish: await it there instead).
    pub fn wait(mut self) -> Result<T, Error> {
        self.wait_until(None)
    }

    /// [`wait`](ConcurrentFuture::wait) for at most `timeout`: [`Error::Timeout`] leaves
    /// the coroutine running and this future usable.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<T, Error> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> Result<T, Error> {
        if let Ok(l) = get_running_loop()
            && Arc::ptr_eq(&l.remote().shared, &self.target.shared)
            && !self.done()
        {
            return Err(Error::InvalidState(
                "wait() on the loop that runs the coroutine would block it forever; await it",
            ));
        }
        let mut inner = self.slot.lock();
        loop {
            if inner.state == SlotState::Done {
                return inner
                    .outcome
                    .take()
                    .unwrap_or(Err(Error::InvalidState("the result was already taken")));
            }
            inner = match deadline {
                None => self
                    .slot
                    .done
                    .wait(inner)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout);
                    }
                    self.slot
                        .done
                        .wait_timeout(inner, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }

    /// Asks the remote task to stop: its future is dropped on its loop at the next poll,
    /// and the outcome becomes [`Error::Cancelled`]. False if the outcome is already in.
    pub fn cancel(&self) -> bool {
        let mut inner = self.slot.lock();
        if inner.state == SlotState::Done {
            return false;
        }
        inner.cancel = true;
        let remote = inner.remote.take();
        drop(inner);
        if let Some(w) = remote {
            w.wake();
        }
        true
    }

    /// Whether the outcome is in (a result, an error, a cancellation).
    pub fn done(&self) -> bool {
        self.slot.lock().state == SlotState::Done
    }

    /// Lets the remote task run on without anyone waiting for it (dropping a detached
    /// future does not cancel it).
    pub fn detach(mut self) {
        self.armed = false;
    }
}

impl<T> Future for ConcurrentFuture<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut inner = self.slot.lock();
        if inner.state == SlotState::Done {
            return Poll::Ready(
                inner
                    .outcome
                    .take()
                    .unwrap_or(Err(Error::InvalidState("the result was already taken"))),
            );
        }
        match &inner.waiter {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Drop for ConcurrentFuture<T> {
    fn drop(&mut self) {
        let mut inner = self.slot.lock();
        inner.abandoned = true;
        inner.waiter = None;
        let done = inner.state == SlotState::Done;
        drop(inner);
        if self.armed && !done {
            self.cancel();
        }
    }
}

impl<T> fmt::Debug for ConcurrentFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrentFuture")
            .field("done", &self.done())
            .finish()
    }
}
