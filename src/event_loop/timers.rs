//! The timer heap: callbacks keyed by (deadline, sequence), so equal deadlines keep the
//! order they were scheduled in.
//!
//! Cancelled timers stay in the heap until they reach its head (cheap cancel), unless
//! more than half of the heap is cancelled, in which case it is rebuilt without them, so
//! memory returns to baseline after mass cancellation.
//!
//! Only the nearest deadline reaches the kernel, as one io_uring timeout op armed by the
//! loop when it is about to sleep (see `EventLoop::run_once`).

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::handle::{Runnable, TimerHandle};

struct Entry {
    when: Instant,
    seq: u64,
    cell: Rc<dyn Runnable>,
    in_heap: Rc<Cell<bool>>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.when == other.when && self.seq == other.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest (deadline, seq) on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.when, other.seq).cmp(&(self.when, self.seq))
    }
}

/// How far away "never" is: a delay too large for `Instant` (`Duration::MAX` as "forever")
/// becomes a deadline this far in the future instead of an overflow panic.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// The deadline `delay` from now, saturating at [`FAR_FUTURE`] for huge delays.
pub(crate) fn deadline_after(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .unwrap_or_else(|| now + FAR_FUTURE.min(delay))
}

/// Below this size the heap is never rebuilt (cancelled entries just wait their turn).
const PURGE_MIN: usize = 64;

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Entry>,
    seq: u64,
    cancelled: Rc<Cell<usize>>,
}

impl Timers {
    /// Schedules `cell` at `when`.
    pub(crate) fn insert(&mut self, when: Instant, cell: Rc<dyn Runnable>) -> TimerHandle {
        self.seq += 1;
        let in_heap = Rc::new(Cell::new(true));
        self.heap.push(Entry {
            when,
            seq: self.seq,
            cell: cell.clone(),
            in_heap: in_heap.clone(),
        });
        TimerHandle {
            cell,
            when,
            cancelled_in_heap: self.cancelled.clone(),
            in_heap,
        }
    }

    /// Number of timers in the heap, cancelled ones included.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest live deadline, after dropping cancelled timers at the head.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(head) = self.heap.peek() {
            if !head.cell.is_cancelled() {
                return Some(head.when);
            }
            self.pop();
        }
        None
    }

    /// Moves every timer due at `now` into `out`, in (deadline, sequence) order.
    pub(crate) fn take_due(&mut self, now: Instant, mut out: impl FnMut(Rc<dyn Runnable>)) {
        while self.heap.peek().is_some_and(|head| head.when <= now) {
            if let Some(cell) = self.pop()
                && !cell.is_cancelled()
            {
                out(cell);
            }
        }
        self.maybe_purge();
    }

    fn pop(&mut self) -> Option<Rc<dyn Runnable>> {
        let entry = self.heap.pop()?;
        entry.in_heap.set(false);
        if entry.cell.is_cancelled() {
            self.cancelled.set(self.cancelled.get().saturating_sub(1));
        }
        Some(entry.cell)
    }

    /// Rebuilds the heap without cancelled entries when they are the majority.
    pub(crate) fn maybe_purge(&mut self) {
        let cancelled = self.cancelled.get();
        if self.heap.len() >= PURGE_MIN && cancelled * 2 > self.heap.len() {
            let entries = std::mem::take(&mut self.heap).into_vec();
            let live: Vec<Entry> = entries
                .into_iter()
                .filter(|e| {
                    let keep = !e.cell.is_cancelled();
                    if !keep {
                        e.in_heap.set(false);
                    }
                    keep
                })
                .collect();
            self.heap = BinaryHeap::from(live);
            self.heap.shrink_to_fit();
            self.cancelled.set(0);
        }
    }

    /// Empties the heap (loop close) and returns its callbacks: the caller drops them
    /// once the heap is no longer borrowed, since their destructors may schedule again.
    pub(crate) fn clear(&mut self) -> Vec<Rc<dyn Runnable>> {
        self.cancelled.set(0);
        self.heap
            .drain()
            .map(|e| {
                e.in_heap.set(false);
                e.cell
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_loop::handle::CallbackCell;
    use std::cell::RefCell;

    fn recorder(log: &Rc<RefCell<Vec<u32>>>, n: u32) -> Rc<dyn Runnable> {
        let log = log.clone();
        CallbackCell::new_runnable(move || log.borrow_mut().push(n))
    }

    #[test]
    fn equal_deadlines_keep_insertion_order_and_earlier_runs_first() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut t = Timers::default();
        let base = Instant::now();
        t.insert(base + Duration::from_millis(5), recorder(&log, 3));
        t.insert(base, recorder(&log, 1));
        t.insert(base, recorder(&log, 2));
        t.take_due(base + Duration::from_millis(10), |c| c.run());
        assert_eq!(*log.borrow(), vec![1, 2, 3]);
    }

    #[test]
    fn cancelled_timers_never_run_and_mass_cancel_purges() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut t = Timers::default();
        let base = Instant::now() + Duration::from_secs(60);
        let handles: Vec<_> = (0..1000)
            .map(|i| t.insert(base, recorder(&log, i)))
            .collect();
        for h in handles
            .iter()
            .filter(|h| h.when == base)
            .step_by(1)
            .take(600)
        {
            h.cancel();
            h.cancel();
        }
        t.maybe_purge();
        assert_eq!(
            t.len(),
            400,
            "the heap is rebuilt without the cancelled majority"
        );
        t.take_due(base, |c| c.run());
        assert_eq!(log.borrow().len(), 400);
        assert_eq!(log.borrow()[0], 600);
    }

    #[test]
    fn next_deadline_skips_cancelled_head() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut t = Timers::default();
        let base = Instant::now();
        let first = t.insert(base, recorder(&log, 1));
        t.insert(base + Duration::from_secs(1), recorder(&log, 2));
        first.cancel();
        assert_eq!(t.next_deadline(), Some(base + Duration::from_secs(1)));
        assert_eq!(t.len(), 1);
    }
}
