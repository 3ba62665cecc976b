//! asyncio's queues, loop-local: [`Queue`] (FIFO), [`LifoQueue`], [`PriorityQueue`]
//! (lowest first), all one [`GenericQueue`] over a [`Store`] that keeps the order.
//!
//! The algorithm is CPython 3.13's `Lib/asyncio/queues.py`: `put` waits while the queue
//! is full and `get` while it is empty, each in a FIFO of waiter slots
//! (`sync/waiters.rs`); `put_nowait` wakes the first waiting getter and `get_nowait` the
//! first waiting putter, popping it (asyncio's `_wakeup_next`). A woken waiter whose
//! future is dropped before it took its turn passes the wake-up on, so a cancellation
//! never strands an item or a free slot. `shutdown(immediate)` is 3.13's: later puts
//! fail; gets drain what is left (or nothing, when immediate) and then fail; every
//! blocked `put`/`get` wakes to re-check.
//!
//! Errors: `put` gives the item back in [`QueueShutDown<T>`]; `put_nowait` gives it
//! back in [`TryPutError`] (`Full` or `ShutDown`), and `get_nowait` fails with
//! [`TryGetError`] (`Empty` or `ShutDown`). asyncio raises three exception types from
//! these calls; one enum per call says which of them can happen there. See
//! `docs/sync-and-queues.md`.

mod error;
mod store;
mod wait;

pub use error::{QueueShutDown, TaskDoneTooMany, TryGetError, TryPutError};
pub use store::{Fifo, Lifo, Priority, Store};

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::sync::Event;
use crate::sync::waiters::{Waiters, wake};
use wait::{Side, Slot};

/// asyncio's `Queue`: first in, first out.
///
/// ```
/// ringloop::run(async {
///     let q = ringloop::Queue::new(1);
///     let producer = {
///         let q = q.clone();
///         ringloop::spawn(async move {
///             for i in 0..3 {
///                 q.put(i).await?; // waits while the queue is full
///             }
///             q.shutdown(false);
///             Ok::<_, ringloop::Error>(())
///         })
///     };
///     let mut got = Vec::new();
///     while let Ok(item) = q.get().await {
///         got.push(item);
///     }
///     producer.await??;
///     assert_eq!(got, [0, 1, 2]);
///     Ok::<_, ringloop::Error>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub type Queue<T> = GenericQueue<Fifo<T>>;

/// asyncio's `LifoQueue`: last in, first out.
pub type LifoQueue<T> = GenericQueue<Lifo<T>>;

/// asyncio's `PriorityQueue`: the lowest item first (wrap an item as `(priority, data)`,
/// or in [`std::cmp::Reverse`] for highest first).
pub type PriorityQueue<T> = GenericQueue<Priority<T>>;

pub(crate) struct State<S> {
    pub(crate) items: S,
    maxsize: usize,
    pub(crate) getters: Waiters,
    pub(crate) putters: Waiters,
    unfinished: usize,
    shutdown: bool,
}

impl<S: Store> State<S> {
    pub(crate) fn full(&self) -> bool {
        self.maxsize > 0 && self.items.len() >= self.maxsize
    }
}

/// Writes a store's items for `Debug`.
type WriteItems<S> = dyn Fn(&S, &mut fmt::Formatter<'_>) -> fmt::Result;

struct Shared<S> {
    state: RefCell<State<S>>,
    /// Set while no task is unfinished (asyncio's `_finished`).
    finished: Event,
}

/// A queue whose order `S` keeps; use it as [`Queue`], [`LifoQueue`] or
/// [`PriorityQueue`]. Cloning gives another handle to the same queue.
pub struct GenericQueue<S> {
    shared: Rc<Shared<S>>,
}

impl<S> Clone for GenericQueue<S> {
    fn clone(&self) -> Self {
        GenericQueue {
            shared: self.shared.clone(),
        }
    }
}

impl<S: Store> GenericQueue<S> {
    /// A queue holding at most `maxsize` items; `0` means unbounded.
    pub fn new(maxsize: usize) -> Self {
        let finished = Event::new();
        finished.set();
        GenericQueue {
            shared: Rc::new(Shared {
                state: RefCell::new(State {
                    items: S::new(),
                    maxsize,
                    getters: Waiters::new(),
                    putters: Waiters::new(),
                    unfinished: 0,
                    shutdown: false,
                }),
                finished,
            }),
        }
    }

    pub(crate) fn state(&self) -> &RefCell<State<S>> {
        &self.shared.state
    }

    /// How many items are queued.
    pub fn qsize(&self) -> usize {
        self.shared.state.borrow().items.len()
    }

    /// The most items the queue holds (`0`: unbounded).
    pub fn maxsize(&self) -> usize {
        self.shared.state.borrow().maxsize
    }

    /// Whether no item is queued.
    pub fn empty(&self) -> bool {
        self.shared.state.borrow().items.is_empty()
    }

    /// Whether `maxsize` items are queued (never, for an unbounded queue).
    pub fn full(&self) -> bool {
        self.shared.state.borrow().full()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.shared.state.borrow().shutdown
    }

    /// Puts `item`, waiting while the queue is full. Fails, giving the item back, if the
    /// queue is shut down (before, or while this waits).
    ///
    /// Dropping the future before it completes drops the item; a wake-up it had
    /// received passes to the next waiting putter.
    pub async fn put(&self, item: S::Item) -> Result<(), QueueShutDown<S::Item>> {
        loop {
            {
                let st = self.shared.state.borrow();
                if !st.full() {
                    break;
                }
                if st.shutdown {
                    return Err(QueueShutDown(item));
                }
            }
            Slot::new(self, Side::Put).await;
        }
        self.put_nowait(item)
            .map_err(|e| QueueShutDown(e.into_inner()))
    }

    /// Puts `item` if there is room at once; otherwise gives it back in the error.
    pub fn put_nowait(&self, item: S::Item) -> Result<(), TryPutError<S::Item>> {
        let waker = {
            let mut st = self.shared.state.borrow_mut();
            if st.shutdown {
                return Err(TryPutError::ShutDown(item));
            }
            if st.full() {
                return Err(TryPutError::Full(item));
            }
            st.items.push(item);
            st.unfinished += 1;
            st.getters.notify_next(true).flatten()
        };
        self.shared.finished.clear();
        wake(waker);
        Ok(())
    }

    /// Takes the next item, waiting while the queue is empty. Fails once the queue is
    /// shut down and empty.
    ///
    /// Dropping the future before it completes takes nothing; a wake-up it had received
    /// passes to the next waiting getter.
    pub async fn get(&self) -> Result<S::Item, QueueShutDown> {
        loop {
            {
                let st = self.shared.state.borrow();
                if !st.items.is_empty() {
                    break;
                }
                if st.shutdown {
                    return Err(QueueShutDown(()));
                }
            }
            Slot::new(self, Side::Get).await;
        }
        self.get_nowait().map_err(|_| QueueShutDown(()))
    }

    /// Takes the next item if one is queued.
    pub fn get_nowait(&self) -> Result<S::Item, TryGetError> {
        let (item, waker) = {
            let mut st = self.shared.state.borrow_mut();
            let Some(item) = st.items.pop() else {
                return Err(if st.shutdown {
                    TryGetError::ShutDown
                } else {
                    TryGetError::Empty
                });
            };
            (item, st.putters.notify_next(true).flatten())
        };
        wake(waker);
        Ok(item)
    }

    /// Marks one item taken by a `get` as processed; when every item put so far is,
    /// [`join`](Self::join) returns. Errors if called more times than items were put.
    pub fn task_done(&self) -> Result<(), TaskDoneTooMany> {
        let done = {
            let mut st = self.shared.state.borrow_mut();
            if st.unfinished == 0 {
                return Err(TaskDoneTooMany);
            }
            st.unfinished -= 1;
            st.unfinished == 0
        };
        if done {
            self.shared.finished.set();
        }
        Ok(())
    }

    /// Waits until every item put has been marked done with [`task_done`](Self::task_done).
    pub async fn join(&self) {
        if self.shared.state.borrow().unfinished > 0 {
            self.shared.finished.wait().await;
        }
    }

    /// Shuts the queue down (Python 3.13): `put`s fail from now on, and blocked ones
    /// wake and fail; `get`s take what is left, then fail, and blocked ones wake to
    /// re-check. With `immediate`, the queued items are dropped at once (each counting
    /// as done for [`join`](Self::join)), so `get`s fail at once.
    pub fn shutdown(&self, immediate: bool) {
        let mut dropped = Vec::new();
        let (wakers, finished) = {
            let mut st = self.shared.state.borrow_mut();
            st.shutdown = true;
            let mut finished = false;
            if immediate {
                while let Some(item) = st.items.pop() {
                    dropped.push(item);
                    st.unfinished = st.unfinished.saturating_sub(1);
                }
                finished = st.unfinished == 0;
            }
            let mut wakers = Vec::new();
            let st = &mut *st;
            for list in [&mut st.getters, &mut st.putters] {
                while let Some(w) = list.notify_next(true) {
                    wakers.extend(w);
                }
            }
            (wakers, finished)
        };
        // The items' destructors run with no borrow of the queue held.
        drop(dropped);
        if finished {
            self.shared.finished.set();
        }
        for w in wakers {
            w.wake();
        }
    }

    fn format_with(
        &self,
        f: &mut fmt::Formatter<'_>,
        items: Option<&WriteItems<S>>,
    ) -> fmt::Result {
        let st = self.shared.state.borrow();
        write!(f, "<{} maxsize={}", S::NAME, st.maxsize)?;
        if let Some(items) = items
            && !st.items.is_empty()
        {
            items(&st.items, f)?;
        }
        if !st.getters.is_empty() {
            write!(f, " _getters[{}]", st.getters.len())?;
        }
        if !st.putters.is_empty() {
            write!(f, " _putters[{}]", st.putters.len())?;
        }
        if st.unfinished > 0 {
            write!(f, " tasks={}", st.unfinished)?;
        }
        if st.shutdown {
            f.write_str(" shutdown")?;
        }
        f.write_str(">")
    }
}

impl<S: Store> fmt::Display for GenericQueue<S> {
    /// asyncio's `str()` without the items: `<Queue maxsize=1 _getters[1] tasks=2>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.format_with(f, None)
    }
}

impl<S: Store> fmt::Debug for GenericQueue<S>
where
    S::Item: fmt::Debug,
{
    /// asyncio's `str()` with the items: `<Queue maxsize=0 _queue=[1, 2] tasks=2>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.format_with(
            f,
            Some(&|items: &S, f: &mut fmt::Formatter<'_>| write!(f, " _queue={:?}", items.items())),
        )
    }
}
