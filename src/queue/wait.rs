//! The waiter slot a blocked `put` or `get` sits in until `get_nowait`/`put_nowait`
//! (or `shutdown`) pops and wakes it: asyncio's `putter`/`getter` future.
//!
//! A slot dropped after it was woken, before its task took its turn, passes the wake-up
//! to the next waiter of its side if the queue still has room (putters) or items
//! (getters): CPython's `if not self.full() and not putter.cancelled():
//! self._wakeup_next(self._putters)`.

use std::future::Future as StdFuture;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{GenericQueue, State, Store};
use crate::sync::waiters::{Waiters, wake};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Get,
    Put,
}

impl Side {
    fn list<S>(self, st: &mut State<S>) -> &mut Waiters {
        match self {
            Side::Get => &mut st.getters,
            Side::Put => &mut st.putters,
        }
    }
}

/// Resolves once this waiter was woken (popped from its side's FIFO).
pub(super) struct Slot<'a, S: Store> {
    queue: &'a GenericQueue<S>,
    side: Side,
    key: Option<usize>,
}

impl<'a, S: Store> Slot<'a, S> {
    pub(super) fn new(queue: &'a GenericQueue<S>, side: Side) -> Self {
        Slot {
            queue,
            side,
            key: None,
        }
    }
}

impl<S: Store> StdFuture for Slot<'_, S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut st = this.queue.state().borrow_mut();
        let list = this.side.list(&mut st);
        match this.key {
            None => {
                this.key = Some(list.push_back(cx.waker()));
                Poll::Pending
            }
            Some(key) if list.is_notified(key) => {
                list.remove(key);
                this.key = None;
                Poll::Ready(())
            }
            Some(key) => {
                list.update_waker(key, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl<S: Store> Drop for Slot<'_, S> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let waker = {
            let mut st = self.queue.state().borrow_mut();
            let notified = self.side.list(&mut st).remove(key);
            let can_proceed = match self.side {
                Side::Get => !st.items.is_empty(),
                Side::Put => !st.full(),
            };
            if notified && can_proceed {
                self.side.list(&mut st).notify_next(true).flatten()
            } else {
                None
            }
        };
        wake(waker);
    }
}
