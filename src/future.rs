//! asyncio's `Future`: a result slot that callbacks and tasks wait on.
//!
//! [`Future<T>`] is a cheap-to-clone handle (all clones see the same slot). It is set once —
//! with a result, an error, or by cancellation — and then every done-callback is scheduled
//! through the loop's `call_soon` (never called inline, also when added after the fact),
//! and every task awaiting it is woken. Awaiting it gives `Result<T, Error>`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::error::Error;
use crate::event_loop::{
    EventLoop, ExceptionContext, WeakLoop, get_event_loop_if_set, get_running_loop,
};

enum Slot<T> {
    Pending,
    Result(T),
    Error(Error),
    Cancelled,
}

type DoneCallback<T> = Box<dyn FnOnce(&Future<T>)>;

struct Inner<T> {
    slot: RefCell<Slot<T>>,
    callbacks: RefCell<Vec<(u64, DoneCallback<T>)>>,
    wakers: RefCell<Vec<Waker>>,
    next_callback_id: Cell<u64>,
    /// Whether the error (if any) was looked at; an unseen error is reported on drop.
    retrieved: Cell<bool>,
    event_loop: WeakLoop,
}

/// Identifies a done-callback for [`Future::remove_done_callback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

/// An asyncio-style future, bound to an event loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ringloop::{Future, get_running_loop};
///
/// let got = ringloop::run(async {
///     let fut: Future<&str> = Future::new();
///     let setter = fut.clone();
///     get_running_loop()
///         .unwrap()
///         .call_later(Duration::from_millis(5), move || setter.set_result("done").unwrap());
///     fut.await
/// })
/// .unwrap();
/// assert_eq!(got.unwrap(), "done");
/// ```
pub struct Future<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future {
            inner: self.inner.clone(),
        }
    }
}

impl<T: 'static> Default for Future<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: 'static> Future<T> {
    /// A pending future bound to the running loop (else the thread's current loop).
    pub fn new() -> Self {
        let event_loop = get_running_loop().ok().or_else(get_event_loop_if_set);
        Self::with_loop(event_loop.as_ref())
    }

    /// A pending future bound to `event_loop` (`None`: whichever loop runs when it is set).
    pub fn with_loop(event_loop: Option<&EventLoop>) -> Self {
        Future {
            inner: Rc::new(Inner {
                slot: RefCell::new(Slot::Pending),
                callbacks: RefCell::new(Vec::new()),
                wakers: RefCell::new(Vec::new()),
                next_callback_id: Cell::new(0),
                retrieved: Cell::new(false),
                event_loop: event_loop.map_or_else(WeakLoop::default, EventLoop::downgrade),
            }),
        }
    }

    /// Sets the result; an error if the future is already done.
    pub fn set_result(&self, value: T) -> Result<(), Error> {
        self.settle(Slot::Result(value))
    }

    /// Sets an error; an error if the future is already done.
    pub fn set_exception(&self, error: Error) -> Result<(), Error> {
        self.settle(Slot::Error(error))
    }

    /// Cancels the future; false if it is already done.
    pub fn cancel(&self) -> bool {
        self.settle(Slot::Cancelled).is_ok()
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(*self.inner.slot.borrow(), Slot::Cancelled)
    }

    /// Whether the future is done (has a result, an error, or was cancelled).
    pub fn done(&self) -> bool {
        !matches!(*self.inner.slot.borrow(), Slot::Pending)
    }

    /// The error set on a done future (`Ok(None)` when it has a result); an error when it
    /// is not done, or [`Error::Cancelled`] when cancelled.
    pub fn exception(&self) -> Result<Option<Error>, Error> {
        match &*self.inner.slot.borrow() {
            Slot::Pending => Err(Error::InvalidState("the future is not done")),
            Slot::Cancelled => Err(Error::Cancelled),
            Slot::Error(e) => {
                self.inner.retrieved.set(true);
                Ok(Some(e.clone()))
            }
            Slot::Result(_) => Ok(None),
        }
    }

    /// Adds a callback run (through `call_soon`) once the future is done — soon, if it
    /// already is. Callbacks run in the order added.
    pub fn add_done_callback(&self, f: impl FnOnce(&Future<T>) + 'static) -> CallbackId {
        let id = self.inner.next_callback_id.get();
        self.inner.next_callback_id.set(id + 1);
        if self.done() {
            self.schedule(Box::new(f));
        } else {
            self.inner.callbacks.borrow_mut().push((id, Box::new(f)));
        }
        CallbackId(id)
    }

    /// Removes a done-callback not yet scheduled; returns how many were removed (0 or 1).
    pub fn remove_done_callback(&self, id: CallbackId) -> usize {
        let mut callbacks = self.inner.callbacks.borrow_mut();
        let before = callbacks.len();
        callbacks.retain(|(cid, _)| *cid != id.0);
        before - callbacks.len()
    }

    fn settle(&self, outcome: Slot<T>) -> Result<(), Error> {
        {
            let mut slot = self.inner.slot.borrow_mut();
            if !matches!(*slot, Slot::Pending) {
                return Err(Error::InvalidState("the future is already done"));
            }
            *slot = outcome;
        }
        let callbacks = std::mem::take(&mut *self.inner.callbacks.borrow_mut());
        for (_, cb) in callbacks {
            self.schedule(cb);
        }
        let wakers = std::mem::take(&mut *self.inner.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
        Ok(())
    }

    fn schedule(&self, cb: DoneCallback<T>) {
        let event_loop = self
            .inner
            .event_loop
            .upgrade()
            .or_else(|| get_running_loop().ok())
            .or_else(get_event_loop_if_set);
        let this = self.clone();
        match event_loop {
            Some(l) => {
                l.call_soon(move || cb(&this));
            }
            // No loop at all: nothing could ever run it; run it now rather than lose it.
            None => cb(&this),
        }
    }
}

impl<T: Clone + 'static> Future<T> {
    /// The result: an error when not done ([`Error::InvalidState`]), when cancelled
    /// ([`Error::Cancelled`]), or the error that was set.
    pub fn result(&self) -> Result<T, Error> {
        match &*self.inner.slot.borrow() {
            Slot::Pending => Err(Error::InvalidState("the result is not set yet")),
            Slot::Cancelled => Err(Error::Cancelled),
            Slot::Error(e) => {
                self.inner.retrieved.set(true);
                Err(e.clone())
            }
            Slot::Result(v) => Ok(v.clone()),
        }
    }
}

impl<T: Clone + 'static> std::future::Future for Future<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.done() {
            return Poll::Ready(self.result());
        }
        let mut wakers = self.inner.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        if let Slot::Error(e) = &*self.slot.borrow()
            && !self.retrieved.get()
        {
            let context = ExceptionContext {
                message: "a future's error was never retrieved".into(),
                error: Some(e.clone()),
            };
            match self.event_loop.upgrade() {
                Some(l) => l.call_exception_handler(context),
                None => eprintln!("ringloop: {}: {e}", context.message),
            }
        }
    }
}

impl<T> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.inner.slot.borrow() {
            Slot::Pending => "pending",
            Slot::Result(_) => "finished",
            Slot::Error(_) => "error",
            Slot::Cancelled => "cancelled",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}
