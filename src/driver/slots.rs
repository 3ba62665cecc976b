//! The slab of in-flight operations and each one's lifecycle.
//!
//! Every SQE the driver pushes for an operation owns one slot here, keyed by the SQE's
//! `user_data`. A slot lives until the operation's **last** CQE has been seen, whatever
//! happens to the future or transport that started it:
//!
//! ```text
//!             complete()                    poll()/take()
//! Waiting ──────────────▶ Done ──────────────────────────▶ (removed)
//!    │ abandon()               abandon(): orphan sees the result, slot removed
//!    ▼
//! Abandoned{orphan} ── last CQE ──▶ orphan.completed(), buffers freed, (removed)
//! ```
//!
//! Future-driven ops (`Op`) wait for their one CQE; handler-driven ops (transports,
//! servers, processes; single or multishot) hand each completion to their handler. A
//! `user_data` carries the slot's generation beside its index (see `tag`), so a CQE for a
//! slot that was removed and reused (a stale CQE) can never complete the newer operation.

use std::any::Any;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use super::tag::{GENERATION_MASK, OpKey};

/// One CQE's result and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Completion {
    /// The CQE's `res`: a count or fd when `>= 0`, `-errno` otherwise.
    pub result: i32,
    /// The CQE's flags (`IORING_CQE_F_MORE`, `IORING_CQE_F_BUFFER`, ...).
    pub flags: u32,
}

impl Completion {
    /// Whether more CQEs will follow for the same operation.
    pub(crate) fn more(&self) -> bool {
        io_uring::cqueue::more(self.flags)
    }

    /// The result as an `io::Result`.
    pub(crate) fn into_result(self) -> std::io::Result<u32> {
        if self.result >= 0 {
            Ok(self.result as u32)
        } else {
            Err(std::io::Error::from_raw_os_error(-self.result))
        }
    }
}

/// Receives the completions of callback-driven operations (the transports).
pub(crate) trait OpHandler {
    /// Called on the loop for each completion of an op submitted with `tag`.
    fn on_completion(self: Rc<Self>, tag: u32, completion: Completion);

    /// A completion that arrived after the loop's teardown cut this handler off
    /// ([`Slots::abandon_all`]): release what it carries (an accepted fd), call nothing.
    fn release(&self, _tag: u32, _completion: &Completion) {}
}

/// A handler's op left in flight at teardown: the handler stays alive (it owns the
/// buffers) and releases what the last completions carry.
struct TornDown {
    handler: Rc<dyn OpHandler>,
    tag: u32,
}

impl Orphan for TornDown {
    fn completed(&mut self, c: &Completion) {
        self.handler.release(self.tag, c);
    }
}

/// What is left of an operation whose owner went away before its last CQE.
///
/// It keeps the buffers (and fds) the kernel may still use alive, and sees every
/// completion that still arrives, so it can release what those carry (an accepted fd,
/// a provided buffer id).
pub(crate) trait Orphan {
    /// A completion arrived for the abandoned operation.
    fn completed(&mut self, _completion: &Completion) {}
}

impl Orphan for Box<dyn Any> {}

/// Two orphans of one op (see [`Slots::abandon`]): the first — the torn-down handler —
/// releases what completions carry; the second only keeps the op's memory (releasing
/// twice would close an accepted fd twice).
struct Both {
    releaser: Box<dyn Orphan>,
    _memory: Box<dyn Orphan>,
}

impl Orphan for Both {
    fn completed(&mut self, c: &Completion) {
        self.releaser.completed(c);
    }
}

enum State {
    /// Submitted; an async op's future waits for it.
    Waiting(Option<Waker>),
    /// The one CQE arrived; waiting for the future to take it.
    Done(Completion),
    /// Completions go to a handler (transports).
    Handler {
        handler: Rc<dyn OpHandler>,
        tag: u32,
        multishot: bool,
    },
    /// The owner is gone; the orphan keeps the buffers until the last CQE.
    Abandoned(Box<dyn Orphan>),
}

struct Entry {
    generation: u32,
    state: State,
}

/// What the loop must do with a completion.
pub(crate) enum Dispatch {
    /// Nothing (an abandoned op ended, or a stale CQE).
    Nothing,
    /// Wake the future waiting for the op.
    Wake(Waker),
    /// Deliver the completion to a handler.
    Handler(Rc<dyn OpHandler>, u32, Completion),
}

/// The slab of in-flight operations.
#[derive(Default)]
pub(crate) struct Slots {
    entries: Slab<Entry>,
    next_generation: u32,
    /// CQEs whose key named no live slot (must stay zero; counted for tests).
    pub(crate) stale_cqes: u64,
    /// Handler-driven CQEs that reported `ENOBUFS` (the provided-buffer ring ran dry).
    pub(crate) enobufs: u64,
    /// Handler-driven multishot ops the kernel ended on its own: a last CQE (no `F_MORE`)
    /// that was neither a cancel nor a zero result (end of stream).
    pub(crate) multishot_ended: u64,
}

/// How an op is driven.
pub(crate) enum Driven {
    /// By a future (single CQE).
    Future,
    /// By a handler (single or multishot).
    Handler {
        handler: Rc<dyn OpHandler>,
        tag: u32,
        multishot: bool,
    },
}

impl Slots {
    /// Number of operations still in flight (including abandoned ones).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Opens a slot for an op about to be pushed.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, driven: Driven) -> OpKey {
        self.insert_as(driven, false)
    }

    /// Opens a slot; a quiet one's key carries `tag::QUIET_BIT`.
    pub(crate) fn insert_as(&mut self, driven: Driven, quiet: bool) -> OpKey {
        self.next_generation = (self.next_generation.wrapping_add(1)) & GENERATION_MASK;
        if self.next_generation == 0 {
            self.next_generation = 1;
        }
        let generation = OpKey::new(0, self.next_generation, quiet).generation();
        let state = match driven {
            Driven::Future => State::Waiting(None),
            Driven::Handler {
                handler,
                tag,
                multishot,
            } => State::Handler {
                handler,
                tag,
                multishot,
            },
        };
        let index = self.entries.insert(Entry { generation, state });
        OpKey::new(index as u32, self.next_generation, quiet)
    }

    /// Removes a slot whose SQE never reached the ring (the push failed).
    pub(crate) fn remove_unsubmitted(&mut self, key: OpKey) {
        if self.live(key) {
            self.entries.remove(key.index());
        }
    }

    /// Whether `key` names a slot still open (its op not past its last CQE).
    pub(crate) fn live(&self, key: OpKey) -> bool {
        self.entries
            .get(key.index())
            .is_some_and(|e| e.generation == key.generation())
    }

    fn get_mut(&mut self, key: OpKey) -> Option<&mut Entry> {
        self.entries
            .get_mut(key.index())
            .filter(|e| e.generation == key.generation())
    }

    /// Records a CQE and says what to do about it.
    pub(crate) fn complete(&mut self, key: OpKey, c: Completion) -> Dispatch {
        // The slab alone is borrowed (not `self`): the counters stay writable below.
        let Some(entry) = self
            .entries
            .get_mut(key.index())
            .filter(|e| e.generation == key.generation())
        else {
            self.stale_cqes += 1;
            return Dispatch::Nothing;
        };
        let last = !c.more();
        match &mut entry.state {
            State::Waiting(waker) => {
                let waker = waker.take();
                if last {
                    entry.state = State::Done(c);
                }
                waker.map_or(Dispatch::Nothing, Dispatch::Wake)
            }
            State::Done(_) => {
                // A single-shot op never gets two CQEs; count it rather than overwrite.
                self.stale_cqes += 1;
                Dispatch::Nothing
            }
            State::Handler {
                handler,
                tag,
                multishot,
            } => {
                if c.result == -libc::ENOBUFS {
                    self.enobufs += 1;
                }
                if *multishot && last && c.result != 0 && c.result != -libc::ECANCELED {
                    self.multishot_ended += 1;
                }
                let dispatch = Dispatch::Handler(handler.clone(), *tag, c);
                if last || !*multishot {
                    self.entries.remove(key.index());
                }
                dispatch
            }
            State::Abandoned(orphan) => {
                orphan.completed(&c);
                if last {
                    self.entries.remove(key.index());
                }
                Dispatch::Nothing
            }
        }
    }

    /// Polls a single-shot op: its completion once it arrived (the slot is then removed).
    pub(crate) fn poll(&mut self, key: OpKey, cx: &mut Context<'_>) -> Poll<Completion> {
        let Some(entry) = self.get_mut(key) else {
            // Only reachable through a bug: a future polled again after completing.
            return Poll::Ready(Completion {
                result: -libc::ECANCELED,
                flags: 0,
            });
        };
        match &mut entry.state {
            State::Done(c) => {
                let c = *c;
                self.entries.remove(key.index());
                Poll::Ready(c)
            }
            State::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            _ => unreachable!("poll on a slot that is not a single-shot future"),
        }
    }

    /// The owner of an op went away. Returns true when the op is still in the kernel
    /// (the caller then submits a cancel); the orphan keeps its buffers until the last CQE.
    pub(crate) fn abandon(&mut self, key: OpKey, mut orphan: Box<dyn Orphan>) -> bool {
        let Some(entry) = self.get_mut(key) else {
            return false;
        };
        match &mut entry.state {
            State::Done(c) => {
                orphan.completed(c);
                self.entries.remove(key.index());
                false
            }
            State::Waiting(_) | State::Handler { .. } => {
                entry.state = State::Abandoned(orphan);
                true
            }
            State::Abandoned(earlier) => {
                // Torn down already (the handler's orphan keeps it and releases what comes),
                // and now the op's own owner went too: keep both until the last CQE. No
                // new cancel.
                let earlier = std::mem::replace(earlier, Box::new(Box::new(()) as Box<dyn Any>));
                entry.state = State::Abandoned(Box::new(Both {
                    releaser: earlier,
                    _memory: orphan,
                }));
                false
            }
        }
    }

    /// Drops every waker and handler (loop teardown) and turns their slots into plain
    /// abandoned ones, so only the last CQEs remain to be awaited.
    pub(crate) fn abandon_all(&mut self) {
        for (_, entry) in self.entries.iter_mut() {
            let orphan: Box<dyn Orphan> = match &entry.state {
                State::Abandoned(_) => continue,
                // A handler owns the op's buffers: keep it alive until the last CQE, and
                // let it release what that carries.
                State::Handler { handler, tag, .. } => Box::new(TornDown {
                    handler: handler.clone(),
                    tag: *tag,
                }),
                // A future owns its buffers; dropping it later abandons them properly.
                _ => Box::new(Box::new(()) as Box<dyn Any>),
            };
            entry.state = State::Abandoned(orphan);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::sync::Arc;
    use std::task::Wake;

    const MORE: u32 = 1 << 1; // IORING_CQE_F_MORE

    struct CountWake(std::sync::atomic::AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Arc<CountWake>, Waker) {
        let w = Arc::new(CountWake(0.into()));
        (w.clone(), Waker::from(w))
    }

    fn done(result: i32) -> Completion {
        Completion { result, flags: 0 }
    }

    struct Recorder(Rc<RefCell<Vec<i32>>>);
    impl Orphan for Recorder {
        fn completed(&mut self, c: &Completion) {
            self.0.borrow_mut().push(c.result);
        }
    }
    impl Orphan for (Recorder, Rc<()>) {
        fn completed(&mut self, c: &Completion) {
            self.0.completed(c);
        }
    }

    /// A handler that records what it is given.
    #[derive(Default)]
    struct Seen {
        delivered: RefCell<Vec<i32>>,
        released: RefCell<Vec<(u32, i32)>>,
    }
    impl OpHandler for Seen {
        fn on_completion(self: Rc<Self>, _tag: u32, c: Completion) {
            self.delivered.borrow_mut().push(c.result);
        }
        fn release(&self, tag: u32, c: &Completion) {
            self.released.borrow_mut().push((tag, c.result));
        }
    }

    #[test]
    fn teardown_hands_late_handler_completions_to_release() {
        let mut slots = Slots::default();
        let seen = Rc::new(Seen::default());
        let key = slots.insert(Driven::Handler {
            handler: seen.clone(),
            tag: 7,
            multishot: true,
        });
        slots.abandon_all();
        // A multishot accept's fd arriving during teardown, then its end.
        assert!(matches!(
            slots.complete(
                key,
                Completion {
                    result: 42,
                    flags: MORE
                }
            ),
            Dispatch::Nothing
        ));
        assert!(matches!(
            slots.complete(key, done(-libc::ECANCELED)),
            Dispatch::Nothing
        ));
        assert_eq!(*seen.released.borrow(), [(7, 42), (7, -libc::ECANCELED)]);
        assert!(
            seen.delivered.borrow().is_empty(),
            "no callback after teardown"
        );
        assert_eq!(slots.len(), 0);
    }

    #[test]
    fn complete_before_poll() {
        let mut slots = Slots::default();
        let key = slots.insert(Driven::Future);
        assert!(matches!(slots.complete(key, done(5)), Dispatch::Nothing));
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(slots.poll(key, &mut cx), Poll::Ready(done(5)));
        assert_eq!(slots.len(), 0);
    }

    #[test]
    fn complete_after_poll_wakes() {
        let mut slots = Slots::default();
        let key = slots.insert(Driven::Future);
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(slots.poll(key, &mut cx).is_pending());
        match slots.complete(key, done(1)) {
            Dispatch::Wake(w) => w.wake(),
            _ => panic!("expected a wake"),
        }
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(slots.poll(key, &mut cx), Poll::Ready(done(1)));
    }

    #[test]
    fn op_stays_in_slab_on_drop_until_its_cqe() {
        let mut slots = Slots::default();
        let key = slots.insert(Driven::Future);
        let seen = Rc::new(RefCell::new(Vec::new()));
        assert!(slots.abandon(key, Box::new(Recorder(seen.clone()))));
        assert_eq!(slots.len(), 1, "the buffer must outlive the dropped future");
        slots.complete(key, done(-libc::ECANCELED));
        assert_eq!(slots.len(), 0);
        assert_eq!(*seen.borrow(), vec![-libc::ECANCELED]);
    }

    #[test]
    fn complete_after_drop_releases_what_the_cqe_carries() {
        let mut slots = Slots::default();
        let key = slots.insert(Driven::Future);
        slots.complete(key, done(42));
        let seen = Rc::new(RefCell::new(Vec::new()));
        assert!(!slots.abandon(key, Box::new(Recorder(seen.clone()))));
        assert_eq!(
            *seen.borrow(),
            vec![42],
            "an accepted fd must reach the orphan"
        );
        assert_eq!(slots.len(), 0);
    }

    #[test]
    fn stale_cqe_never_completes_a_reused_slot() {
        let mut slots = Slots::default();
        let old = slots.insert(Driven::Future);
        slots.complete(old, done(1));
        let (_, waker) = counting_waker();
        let _ = slots.poll(old, &mut Context::from_waker(&waker));
        let new = slots.insert(Driven::Future);
        assert_ne!(old.user_data(), new.user_data());
        slots.complete(old, done(99));
        assert_eq!(slots.stale_cqes, 1);
        assert!(
            slots
                .poll(new, &mut Context::from_waker(&waker))
                .is_pending()
        );
    }

    #[test]
    fn abandoned_multishot_waits_for_its_last_cqe() {
        let mut slots = Slots::default();
        let seen_by_handler = Rc::new(Seen::default());
        let key = slots.insert(Driven::Handler {
            handler: seen_by_handler.clone(),
            tag: 1,
            multishot: true,
        });
        assert!(matches!(
            slots.complete(
                key,
                Completion {
                    result: 7,
                    flags: MORE,
                },
            ),
            Dispatch::Handler(_, 1, _)
        ));
        let seen = Rc::new(RefCell::new(Vec::new()));
        assert!(slots.abandon(key, Box::new(Recorder(seen.clone()))));
        slots.complete(
            key,
            Completion {
                result: 8,
                flags: MORE,
            },
        );
        assert_eq!(slots.len(), 1);
        slots.complete(key, done(-libc::ECANCELED));
        assert_eq!(slots.len(), 0);
        assert_eq!(*seen.borrow(), vec![8, -libc::ECANCELED]);
    }

    #[test]
    fn an_owner_dropped_after_teardown_keeps_its_op_until_the_last_cqe() {
        let mut slots = Slots::default();
        let handler = Rc::new(Seen::default());
        let key = slots.insert(Driven::Handler {
            handler: handler.clone(),
            tag: 3,
            multishot: false,
        });
        slots.abandon_all();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let memory = Rc::new(());
        assert!(
            !slots.abandon(key, Box::new((Recorder(seen.clone()), memory.clone()))),
            "teardown already cancelled it"
        );
        assert_eq!(slots.len(), 1);
        assert_eq!(
            Rc::strong_count(&memory),
            2,
            "the op's memory stays until its CQE"
        );
        slots.complete(key, done(42));
        assert_eq!(slots.len(), 0);
        assert_eq!(Rc::strong_count(&memory), 1, "freed after the last CQE");
        assert_eq!(
            *handler.released.borrow(),
            [(3, 42)],
            "released once, by the handler"
        );
        assert!(seen.borrow().is_empty());
    }

    #[test]
    fn internal_user_data_is_never_a_slot() {
        assert_eq!(
            OpKey::from_user_data(crate::driver::tag::INTERNAL_BIT | 3),
            None
        );
        let mut slots = Slots::default();
        let key = slots.insert(Driven::Future);
        assert_eq!(OpKey::from_user_data(key.user_data()), Some(key));
    }
}
