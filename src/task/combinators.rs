//! The asyncio helpers over tasks and time: `sleep`, `yield_now`, `timeout`/`timeout_at`/`wait_for`,
//! `gather`, `wait`, `as_completed`.

use std::cell::{Cell, RefCell};
use std::future::{Future as StdFuture, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{JoinHandle, spawn};
use crate::error::Error;
use crate::event_loop::{Runnable, TimerHandle, deadline_after, get_running_loop};

/// The timer-heap entry of a [`Sleep`]: when due it wakes the sleeping task directly.
struct SleepCell {
    cancelled: Cell<bool>,
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Runnable for SleepCell {
    fn run(&self) {
        if self.cancelled.get() {
            return;
        }
        self.fired.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
    fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }
    fn cancel(&self) {
        self.cancelled.set(true);
        self.waker.borrow_mut().take();
    }
    fn runs_when_due(&self) -> bool {
        true
    }
}

/// The future of [`sleep`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    /// `sleep(0)`: yield exactly one iteration instead of arming a timer.
    yield_once: bool,
    timer: Option<(TimerHandle, Rc<SleepCell>)>,
}

impl Sleep {
    /// When the sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl StdFuture for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yield_once {
            self.yield_once = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some((_, cell)) = &self.timer {
            if cell.fired.get() {
                return Poll::Ready(());
            }
            let mut w = cell.waker.borrow_mut();
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let event_loop = match get_running_loop() {
            Ok(l) => l,
            Err(_) => panic!("ringloop::sleep polled outside a running event loop"),
        };
        let cell = Rc::new(SleepCell {
            cancelled: Cell::new(false),
            fired: Cell::new(false),
            waker: RefCell::new(Some(cx.waker().clone())),
        });
        let handle = event_loop.insert_timer(self.deadline, cell.clone());
        self.timer = Some((handle, cell));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((handle, cell)) = self.timer.take()
            && !cell.fired.get()
        {
            handle.cancel();
        }
    }
}

/// Completes after `duration` (never earlier). `sleep(Duration::ZERO)` yields to the loop
/// for exactly one iteration, as `asyncio.sleep(0)`.
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: deadline_after(duration),
        yield_once: duration.is_zero(),
        timer: None,
    }
}

/// Completes at `deadline` (never earlier); a deadline passed completes at once.
pub(crate) fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        yield_once: false,
        timer: None,
    }
}

/// Yields to the loop for one iteration.
pub fn yield_now() -> Sleep {
    sleep(Duration::ZERO)
}

/// The future of [`timeout`], [`timeout_at`] and [`wait_for`].
#[must_use = "futures do nothing unless awaited"]
pub struct WithTimeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F: StdFuture> StdFuture for WithTimeout<F> {
    type Output = Result<F::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `self`, and
        // `WithTimeout` has no Drop impl that could move it; `sleep` is Unpin.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(v) = future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Error::Timeout)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Runs `future` for at most `duration`; on timeout the future is dropped (cancelled) and
/// the result is [`Error::Timeout`]. A result that is ready wins over an expired deadline.
pub fn timeout<F: StdFuture>(duration: Duration, future: F) -> WithTimeout<F> {
    timeout_at(deadline_after(duration), future)
}

/// asyncio's `timeout_at(when)`: [`timeout`] with a deadline on the loop's clock
/// ([`EventLoop::time`](crate::EventLoop::time)) instead of a delay. A deadline already
/// passed still polls `future` once: what is ready at once is returned.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// ringloop::run(async {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     let r = ringloop::timeout_at(deadline, ringloop::sleep(Duration::from_secs(10))).await;
///     assert!(r.unwrap_err().is_timeout());
/// })
/// .unwrap();
/// ```
pub fn timeout_at<F: StdFuture>(deadline: Instant, future: F) -> WithTimeout<F> {
    WithTimeout {
        future,
        sleep: Sleep {
            deadline,
            yield_once: false,
            timer: None,
        },
    }
}

/// asyncio's `wait_for(aw, timeout)`: [`timeout`] with asyncio's argument order. When the
/// awaited thing is a task, pass `async move { handle.await }` after arranging for
/// cancellation, or use [`JoinHandle::cancel`] on timeout.
pub fn wait_for<F: StdFuture>(future: F, duration: Duration) -> WithTimeout<F> {
    timeout(duration, future)
}

/// Runs every future as a task and returns their outputs in argument order; the first
/// failed task's error (cancellation, panic) is returned instead, after all finished.
pub async fn gather<I, F>(futures: I) -> Result<Vec<F::Output>, Error>
where
    I: IntoIterator<Item = F>,
    F: StdFuture + 'static,
{
    let handles: Vec<JoinHandle<F::Output>> = futures.into_iter().map(spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    let mut first_error = None;
    for handle in handles {
        match handle.await {
            Ok(v) => outputs.push(v),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(outputs),
    }
}

/// When [`wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any task finishes.
    FirstCompleted,
    /// As soon as any task fails (is cancelled or panics), or when all finished.
    FirstException,
    /// When all tasks finished.
    AllCompleted,
}

/// Waits for tasks as asyncio's `wait`: returns `(done, pending)` when `return_when` is
/// met or `timeout` passes. It never errors on timeout and never cancels anything.
pub async fn wait<T>(
    handles: Vec<JoinHandle<T>>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> (Vec<JoinHandle<T>>, Vec<JoinHandle<T>>) {
    let mut deadline = timeout.map(sleep);
    let handles = RefCell::new(handles);
    poll_fn(|cx| {
        let handles_ref = handles.borrow();
        let finished = handles_ref.iter().filter(|h| h.is_finished()).count();
        let failed = handles_ref.iter().any(|h| h.is_finished() && h.failed());
        let met = match return_when {
            ReturnWhen::FirstCompleted => finished > 0,
            ReturnWhen::FirstException => failed || finished == handles_ref.len(),
            ReturnWhen::AllCompleted => finished == handles_ref.len(),
        };
        if met || handles_ref.is_empty() {
            return Poll::Ready(());
        }
        if let Some(d) = deadline.as_mut()
            && Pin::new(d).poll(cx).is_ready()
        {
            return Poll::Ready(());
        }
        for h in handles_ref.iter().filter(|h| !h.is_finished()) {
            h.register(cx.waker());
        }
        Poll::Pending
    })
    .await;
    handles
        .into_inner()
        .into_iter()
        .partition(|h| h.is_finished())
}

/// Tasks in the order they finish; see [`as_completed`].
pub struct AsCompleted<T> {
    pending: Vec<JoinHandle<T>>,
}

impl<T> AsCompleted<T> {
    /// The output of the next task to finish, or `None` when all were returned.
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        if self.pending.is_empty() {
            return None;
        }
        let index = poll_fn(|cx| {
            // Of the tasks already finished, the one that finished first.
            let first = self
                .pending
                .iter()
                .enumerate()
                .filter(|(_, h)| h.is_finished())
                .min_by_key(|(_, h)| h.finished_at())
                .map(|(i, _)| i);
            if let Some(i) = first {
                return Poll::Ready(i);
            }
            for h in &self.pending {
                h.register(cx.waker());
            }
            Poll::Pending
        })
        .await;
        let handle = self.pending.swap_remove(index);
        Some(handle.await)
    }

    /// How many tasks have not been returned yet.
    pub fn remaining(&self) -> usize {
        self.pending.len()
    }
}

/// asyncio's `as_completed`: yields each task's output as it finishes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ringloop::{as_completed, sleep, spawn};
///
/// ringloop::run(async {
///     let slow = spawn(async { sleep(Duration::from_millis(30)).await; "slow" });
///     let fast = spawn(async { sleep(Duration::from_millis(1)).await; "fast" });
///     let mut done = as_completed(vec![slow, fast]);
///     assert_eq!(done.next().await.unwrap().unwrap(), "fast");
///     assert_eq!(done.next().await.unwrap().unwrap(), "slow");
///     assert!(done.next().await.is_none());
/// })
/// .unwrap();
/// ```
pub fn as_completed<T>(handles: Vec<JoinHandle<T>>) -> AsCompleted<T> {
    AsCompleted { pending: handles }
}
