//! hyper 1.x on ringloop: `hyper::rt::Read`/`Write` for [`CompatStream`], a
//! [`LoopExecutor`] that spawns hyper's background futures (`!Send` allowed) as tasks on
//! a loop, and a [`LoopTimer`] whose sleeps are the loop's timers (so hyper's
//! `header_read_timeout` and HTTP/2 keep-alive work).
//!
//! hyper requires its sleeps to be `Send + Sync`; the loop's timers are not, so a
//! [`LoopSleep`] shares only an atomic flag and a waker with its timer, and the timer
//! handles stay in a per-thread table (a sleep dropped on its loop's thread cancels its
//! timer; one that fired or was dropped elsewhere is a no-op for the loop).

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use hyper::rt::{Read, ReadBufCursor, Write};

use super::{CompatSocket, CompatStream};
use crate::{EventLoop, TimerHandle};

impl<S: CompatSocket> Read for CompatStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let got = std::task::ready!(this.poll_fill_buf(cx))?;
        let n = got.len().min(buf.remaining());
        buf.put_slice(&got[..n]);
        this.consume(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: CompatSocket> Write for CompatStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_bytes(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_slices(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        // The slices are copied into the write buffer either way: taking them whole
        // spares hyper its own flattening copy.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_shutdown(cx)
    }
}

/// hyper's executor on a ringloop loop: each future hyper hands it (an HTTP/2
/// connection's streams, a client connection) becomes a task of that loop. The futures
/// need not be `Send`.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "hyper")] {
/// use ringloop::compat::LoopExecutor;
///
/// ringloop::run(async {
///     let exec = LoopExecutor::current().unwrap();
///     let (tx, rx) = std::sync::mpsc::channel();
///     hyper::rt::Executor::execute(&exec, async move { tx.send(7).unwrap() });
///     ringloop::sleep(std::time::Duration::from_millis(1)).await;
///     assert_eq!(rx.try_recv().unwrap(), 7);
/// })
/// .unwrap();
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct LoopExecutor {
    event_loop: EventLoop,
}

impl LoopExecutor {
    /// An executor spawning on `event_loop`.
    pub fn new(event_loop: &EventLoop) -> Self {
        LoopExecutor {
            event_loop: event_loop.clone(),
        }
    }

    /// An executor spawning on this thread's running (or current) loop; an error if the
    /// thread has none.
    pub fn current() -> crate::Result<Self> {
        let event_loop = crate::get_event_loop()?;
        Ok(LoopExecutor { event_loop })
    }
}

impl<F> hyper::rt::Executor<F> for LoopExecutor
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        // Detached: the task runs to its end (as hyper expects of a spawned future).
        drop(self.event_loop.create_task(fut));
    }
}

/// hyper's timer on the running loop's timers (see the module docs for how a
/// `Send + Sync` sleep rides a `!Send` timer).
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopTimer;

impl hyper::rt::Timer for LoopTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LoopSleep::until(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LoopSleep::until(deadline))
    }
}

thread_local! {
    /// The loop timers of this thread's armed sleeps, by key.
    static TIMERS: RefCell<slab::Slab<TimerHandle>> = const { RefCell::new(slab::Slab::new()) };
}

struct Shared {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Shared {
    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let waker = self.waker.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A sleep of [`LoopTimer`]: armed as a loop timer when first polled (on a thread
/// without a loop, a helper thread waits out the deadline instead).
pub struct LoopSleep {
    deadline: Instant,
    shared: Arc<Shared>,
    armed: Option<(usize, ThreadId)>,
    threaded: bool,
}

impl LoopSleep {
    /// A sleep until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        LoopSleep {
            deadline,
            shared: Arc::new(Shared {
                fired: AtomicBool::new(false),
                waker: Mutex::new(None),
            }),
            armed: None,
            threaded: false,
        }
    }

    fn arm(&mut self) {
        if let Ok(event_loop) = crate::get_event_loop() {
            let key = TIMERS.with(|t| {
                let mut timers = t.borrow_mut();
                let entry = timers.vacant_entry();
                let key = entry.key();
                let shared = self.shared.clone();
                let handle = event_loop.call_at(self.deadline, move || {
                    shared.fire();
                    TIMERS.with(|t| {
                        t.borrow_mut().try_remove(key);
                    });
                });
                entry.insert(handle);
                key
            });
            self.armed = Some((key, std::thread::current().id()));
        } else if !self.threaded {
            self.threaded = true;
            let (shared, deadline) = (self.shared.clone(), self.deadline);
            std::thread::spawn(move || {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                shared.fire();
            });
        }
    }
}

impl Future for LoopSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.shared.fired.load(Ordering::Acquire) || Instant::now() >= this.deadline {
            return Poll::Ready(());
        }
        if let Ok(mut w) = this.shared.waker.lock() {
            match &mut *w {
                Some(old) if old.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        if this.armed.is_none() {
            this.arm();
        }
        Poll::Pending
    }
}

impl hyper::rt::Sleep for LoopSleep {}

impl Drop for LoopSleep {
    fn drop(&mut self) {
        if let Some((key, thread)) = self.armed
            && thread == std::thread::current().id()
            && !self.shared.fired.load(Ordering::Acquire)
        {
            // Not fired, so the key is still ours (a fired timer frees its key itself).
            let handle = TIMERS.with(|t| t.borrow_mut().try_remove(key));
            if let Some(h) = handle {
                h.cancel();
            }
        }
    }
}

impl std::fmt::Debug for LoopSleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopSleep")
            .field("deadline", &self.deadline)
            .field("fired", &self.shared.fired.load(Ordering::Relaxed))
            .finish()
    }
}
