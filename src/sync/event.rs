//! [`Event`]: asyncio's `Event`, loop-local.

use std::cell::RefCell;
use std::fmt;
use std::future::Future as StdFuture;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::waiters::Waiters;

struct State {
    value: bool,
    waiters: Waiters,
}

/// asyncio's `Event`: `set` wakes every waiter; `clear` afterwards does not take the
/// wake-up back from those already woken (CPython's `test_clear_with_waiters`).
///
/// ```
/// ringloop::run(async {
///     let ev = ringloop::Event::new();
///     let e = ev.clone();
///     let t = ringloop::spawn(async move { e.wait().await });
///     ev.set();
///     t.await.unwrap();
///     assert!(ev.is_set());
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct Event {
    state: Rc<RefCell<State>>,
}

impl Default for Event {
    fn default() -> Self {
        Self::new()
    }
}

impl Event {
    /// An event, not set.
    pub fn new() -> Self {
        Event {
            state: Rc::new(RefCell::new(State {
                value: false,
                waiters: Waiters::new(),
            })),
        }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.state.borrow().value
    }

    /// How many waiters are queued (woken ones stay until they run, as in asyncio).
    pub fn waiters(&self) -> usize {
        self.state.borrow().waiters.len()
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let wakers = {
            let mut s = self.state.borrow_mut();
            if s.value {
                return;
            }
            s.value = true;
            // Woken waiters stay linked: asyncio keeps them in `_waiters` until they run.
            s.waiters.notify_all_linked()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Clears the flag; later `wait`s block until the next `set`.
    pub fn clear(&self) {
        self.state.borrow_mut().value = false;
    }

    /// Waits until the flag is set (returns at once if it is).
    pub fn wait(&self) -> Wait {
        Wait {
            event: self.clone(),
            key: None,
        }
    }
}

impl fmt::Display for Event {
    /// asyncio's repr extras: `<Event [set]>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.borrow();
        let what = if s.value { "set" } else { "unset" };
        match s.waiters.len() {
            0 => write!(f, "<Event [{what}]>"),
            n => write!(f, "<Event [{what}, waiters:{n}]>"),
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The future of [`Event::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct Wait {
    event: Event,
    key: Option<usize>,
}

impl StdFuture for Wait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut s = this.event.state.borrow_mut();
        match this.key {
            None if s.value => Poll::Ready(()),
            None => {
                this.key = Some(s.waiters.push_back(cx.waker()));
                Poll::Pending
            }
            Some(key) if s.waiters.is_notified(key) => {
                s.waiters.remove(key);
                this.key = None;
                Poll::Ready(())
            }
            Some(key) => {
                s.waiters.update_waker(key, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.event.state.borrow_mut().waiters.remove(key);
        }
    }
}
