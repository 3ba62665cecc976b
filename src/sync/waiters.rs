//! The waiter slots every primitive queues its blocked futures in: a slab of nodes
//! linked in FIFO order by index (O(1) push, pop and removal of a cancelled waiter).
//!
//! A node belongs to the future that pushed it: only that future frees it (when it
//! completes or is dropped), so its key never names another waiter. A primitive marks a
//! node *notified* (and wakes its waker) to hand it the wake-up; a notified node may
//! stay linked (asyncio's Lock and Semaphore keep a woken waiter in their deque until
//! it runs) or be unlinked (asyncio's Condition and Queue pop it).

use std::task::Waker;

use slab::Slab;

const NIL: usize = usize::MAX;

struct Node {
    waker: Option<Waker>,
    notified: bool,
    linked: bool,
    prev: usize,
    next: usize,
}

/// A FIFO of waiter slots.
pub(crate) struct Waiters {
    slab: Slab<Node>,
    head: usize,
    tail: usize,
    linked: usize,
}

impl Waiters {
    pub(crate) fn new() -> Self {
        Waiters {
            slab: Slab::new(),
            head: NIL,
            tail: NIL,
            linked: 0,
        }
    }

    /// How many waiters are linked (asyncio's `len(_waiters)`).
    pub(crate) fn len(&self) -> usize {
        self.linked
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.linked == 0
    }

    /// Appends a waiter; the key is the caller's until it calls [`Waiters::remove`].
    pub(crate) fn push_back(&mut self, waker: &Waker) -> usize {
        let key = self.slab.insert(Node {
            waker: Some(waker.clone()),
            notified: false,
            linked: true,
            prev: self.tail,
            next: NIL,
        });
        if self.tail == NIL {
            self.head = key;
        } else {
            self.slab[self.tail].next = key;
        }
        self.tail = key;
        self.linked += 1;
        key
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next) = {
            let n = &mut self.slab[key];
            if !n.linked {
                return;
            }
            n.linked = false;
            (n.prev, n.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slab[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slab[next].prev = prev;
        }
        self.linked -= 1;
    }

    /// Frees the caller's slot; returns whether it had been notified.
    pub(crate) fn remove(&mut self, key: usize) -> bool {
        self.unlink(key);
        self.slab.remove(key).notified
    }

    pub(crate) fn is_notified(&self, key: usize) -> bool {
        self.slab[key].notified
    }

    /// Stores the latest waker of a still-waiting slot.
    pub(crate) fn update_waker(&mut self, key: usize, waker: &Waker) {
        let n = &mut self.slab[key];
        match &n.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => n.waker = Some(waker.clone()),
        }
    }

    /// Whether the first linked waiter has been notified (asyncio's `fut.done()`).
    pub(crate) fn first_notified(&self) -> Option<bool> {
        (self.head != NIL).then(|| self.slab[self.head].notified)
    }

    /// Marks `key` notified and returns its waker, to be woken once no borrow is held.
    fn notify_key(&mut self, key: usize, unlink: bool) -> Option<Waker> {
        if unlink {
            self.unlink(key);
        }
        let n = &mut self.slab[key];
        n.notified = true;
        n.waker.take()
    }

    /// Notifies the first linked waiter unless it is already notified (asyncio's
    /// `Lock._wake_up_first`).
    #[must_use]
    pub(crate) fn notify_first(&mut self) -> Option<Waker> {
        match self.first_notified() {
            Some(false) => self.notify_key(self.head, false),
            _ => None,
        }
    }

    /// Notifies the first linked waiter not yet notified; `None` if there is none.
    /// `unlink` pops it (Condition, Queue); otherwise it stays linked (Semaphore).
    #[must_use]
    pub(crate) fn notify_next(&mut self, unlink: bool) -> Option<Option<Waker>> {
        let mut key = self.head;
        while key != NIL {
            if !self.slab[key].notified {
                return Some(self.notify_key(key, unlink));
            }
            key = self.slab[key].next;
        }
        None
    }
}

impl Waiters {
    /// Notifies every linked waiter not yet notified, leaving them linked; returns
    /// their wakers.
    pub(crate) fn notify_all_linked(&mut self) -> Vec<Waker> {
        let mut out = Vec::new();
        let mut key = self.head;
        while key != NIL {
            let next = self.slab[key].next;
            if !self.slab[key].notified
                && let Some(w) = self.notify_key(key, false)
            {
                out.push(w);
            }
            key = next;
        }
        out
    }
}

/// Wakes what a notification returned (outside any borrow of the primitive's state).
pub(crate) fn wake(waker: Option<Waker>) {
    if let Some(w) = waker {
        w.wake();
    }
}
