//! CPython's `Lib/test/test_asyncio/test_locks.py`, ported case by case (each test is
//! named after the CPython class and case). Task cancellation is `JoinHandle::cancel`,
//! which drops the task's future at its next step, as asyncio raises `CancelledError`
//! at the next `await`.

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use std::cell::Cell;
use std::time::Duration;

use ringloop::{
    Barrier, BoundedSemaphore, BrokenBarrier, Condition, Event, Lock, LockGuard, Semaphore, spawn,
    timeout, wait_for, yield_now,
};

fn push(v: &Rc<RefCell<Vec<i32>>>, x: i32) {
    v.borrow_mut().push(x);
}

#[test]
fn lock_test_repr() {
    util::run(async {
        let lock = Lock::new();
        assert!(lock.to_string().ends_with("[unlocked]>"));
        let g = lock.acquire().await;
        assert!(lock.to_string().ends_with("[locked]>"));
        drop(g);
    });
}

#[test]
fn lock_test_acquire() {
    util::run(async {
        let lock = Lock::new();
        let result = Rc::new(RefCell::new(Vec::new()));
        lock.acquire().await.forget();
        let task = |n| {
            let (l, r) = (lock.clone(), result.clone());
            spawn(async move {
                l.acquire().await.forget();
                push(&r, n);
                true
            })
        };
        let t1 = task(1);
        let t2 = task(2);
        yield_now().await;
        assert!(result.borrow().is_empty());
        lock.release().unwrap();
        yield_now().await;
        assert_eq!(*result.borrow(), [1]);
        yield_now().await;
        assert_eq!(*result.borrow(), [1]);
        let t3 = task(3);
        lock.release().unwrap();
        yield_now().await;
        assert_eq!(*result.borrow(), [1, 2]);
        lock.release().unwrap();
        yield_now().await;
        assert_eq!(*result.borrow(), [1, 2, 3]);
        assert!(t1.await.unwrap() && t2.await.unwrap() && t3.await.unwrap());
    });
}

#[test]
fn lock_test_acquire_cancel() {
    util::run(async {
        let lock = Lock::new();
        let _g = lock.acquire().await;
        let l = lock.clone();
        let task = spawn(async move { drop(l.acquire().await) });
        yield_now().await;
        assert_eq!(lock.waiters(), 1);
        task.cancel();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(lock.waiters(), 0);
    });
}

#[test]
fn lock_test_cancel_release_race() {
    util::run(async {
        let lock = Lock::new();
        let count = Rc::new(RefCell::new(0));
        lock.acquire().await.forget();
        let lockit = || {
            let (l, c) = (lock.clone(), count.clone());
            spawn(async move {
                l.acquire().await.forget();
                *c.borrow_mut() += 1;
            })
        };
        let (t1, t2, t3) = (lockit(), lockit(), lockit());
        yield_now().await;
        t1.cancel();
        lock.release().unwrap();
        assert!(t1.await.unwrap_err().is_cancelled());
        yield_now().await;
        assert_eq!(*count.borrow(), 1);
        assert!(t2.is_finished());
        t3.cancel();
        assert!(t3.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn lock_test_finished_waiter_cancelled() {
    util::run(async {
        let lock = Lock::new();
        lock.acquire().await.forget();
        let acq = |l: &Lock| {
            let l = l.clone();
            spawn(async move { l.acquire().await.forget() })
        };
        let tb = acq(&lock);
        yield_now().await;
        assert_eq!(lock.waiters(), 1);
        let tc = acq(&lock);
        tb.cancel();
        lock.release().unwrap();
        yield_now().await;
        yield_now().await;
        assert!(lock.locked());
        assert!(tb.await.unwrap_err().is_cancelled());
        tc.await.unwrap();
    });
}

#[test]
fn lock_test_release_not_acquired() {
    assert!(Lock::new().release().is_err());
}

#[test]
fn lock_test_release_no_waiters() {
    util::run(async {
        let lock = Lock::new();
        lock.acquire().await.forget();
        assert!(lock.locked());
        lock.release().unwrap();
        assert!(!lock.locked());
    });
}

#[test]
fn lock_test_context_manager() {
    util::run(async {
        let lock = Lock::new();
        {
            let _g = lock.acquire().await;
            assert!(lock.locked());
        }
        assert!(!lock.locked());
    });
}

#[test]
fn event_test_wait() {
    util::run(async {
        let ev = Event::new();
        let result = Rc::new(RefCell::new(Vec::new()));
        let task = |n| {
            let (e, r) = (ev.clone(), result.clone());
            spawn(async move {
                e.wait().await;
                push(&r, n);
            })
        };
        let t1 = task(1);
        let t2 = task(2);
        yield_now().await;
        assert!(result.borrow().is_empty());
        let t3 = task(3);
        ev.set();
        yield_now().await;
        assert_eq!(*result.borrow(), [3, 1, 2]);
        t1.await.unwrap();
        t2.await.unwrap();
        t3.await.unwrap();
    });
}

#[test]
fn event_test_wait_cancel() {
    util::run(async {
        let ev = Event::new();
        let e = ev.clone();
        let w = spawn(async move { e.wait().await });
        yield_now().await;
        w.cancel();
        assert!(w.await.unwrap_err().is_cancelled());
        assert_eq!(ev.waiters(), 0);
    });
}

#[test]
fn event_test_clear_with_waiters() {
    util::run(async {
        let ev = Event::new();
        let e = ev.clone();
        let t = spawn(async move { e.wait().await });
        yield_now().await;
        ev.set();
        ev.clear();
        assert!(!ev.is_set());
        ev.set();
        ev.set();
        assert_eq!(ev.waiters(), 1);
        yield_now().await;
        assert_eq!(ev.waiters(), 0);
        assert!(t.is_finished());
        t.await.unwrap();
    });
}

#[test]
fn semaphore_test_initial_value_zero() {
    assert!(Semaphore::new(0).locked());
}

#[test]
fn semaphore_test_acquire_cancel_before_awoken() {
    util::run(async {
        let sem = Semaphore::new(0);
        let acq = || {
            let s = sem.clone();
            spawn(async move { s.acquire().await.forget() })
        };
        let (t1, t2, t3, t4) = (acq(), acq(), acq(), acq());
        yield_now().await;
        t1.cancel();
        t2.cancel();
        sem.release().unwrap();
        yield_now().await;
        yield_now().await;
        assert!(t3.is_finished());
        assert!(!t4.is_finished());
        t4.cancel();
        yield_now().await;
        assert!(t1.await.is_err() && t2.await.is_err() && t4.await.is_err());
    });
}

#[test]
fn semaphore_test_acquire_hang() {
    util::run(async {
        let sem = Semaphore::new(0);
        let acq = || {
            let s = sem.clone();
            spawn(async move { s.acquire().await.forget() })
        };
        let (t1, t2) = (acq(), acq());
        yield_now().await;
        t1.cancel();
        sem.release().unwrap();
        yield_now().await;
        yield_now().await;
        assert!(sem.locked());
        assert!(t2.is_finished());
    });
}

#[test]
fn semaphore_test_release_not_acquired() {
    assert!(BoundedSemaphore::new(1).release().is_err());
}

#[test]
fn semaphore_test_acquire_fifo_order_3() {
    util::run(async {
        let sem = Semaphore::new(0);
        let result = Rc::new(RefCell::new(Vec::new()));
        let task = |n| {
            let (s, r) = (sem.clone(), result.clone());
            spawn(async move {
                s.acquire().await.forget();
                push(&r, n);
            })
        };
        let (t1, t2, t3) = (task(1), task(2), task(3));
        yield_now().await;
        t1.cancel();
        yield_now().await;
        sem.release().unwrap();
        sem.release().unwrap();
        let _ = t1.await;
        t2.await.unwrap();
        t3.await.unwrap();
        assert_eq!(*result.borrow(), [2, 3]);
    });
}

// ---------------------------------------------------------------------------------------
// ConditionTests. A Rust `wait` takes the guard and gives it back; a task that returns
// "holding the lock" as asyncio's do keeps it with `LockGuard::forget`.

/// A task that acquires `cond`, waits once, records `n` and keeps the lock.
fn cond_waiter(
    cond: &Condition,
    result: &Rc<RefCell<Vec<i32>>>,
    n: i32,
    release: bool,
) -> ringloop::JoinHandle<bool> {
    let (c, r) = (cond.clone(), result.clone());
    spawn(async move {
        let g = c.acquire().await;
        let g = c.wait(g).await.unwrap();
        push(&r, n);
        if release {
            drop(g);
        } else {
            g.forget();
        }
        true
    })
}

#[test]
fn condition_test_wait() {
    util::run(async {
        let cond = Condition::new();
        let result = Rc::new(RefCell::new(Vec::new()));
        let t1 = cond_waiter(&cond, &result, 1, false);
        let t2 = cond_waiter(&cond, &result, 2, false);
        let t3 = cond_waiter(&cond, &result, 3, false);
        yield_now().await;
        assert!(result.borrow().is_empty());
        assert!(!cond.locked());

        cond.acquire().await.forget();
        cond.notify(1).unwrap();
        yield_now().await;
        assert!(result.borrow().is_empty());
        assert!(cond.locked());

        cond.release().unwrap();
        yield_now().await;
        assert_eq!(*result.borrow(), [1]);
        assert!(cond.locked());

        cond.notify(2).unwrap();
        yield_now().await;
        assert_eq!(*result.borrow(), [1]);
        assert!(cond.locked());

        cond.release().unwrap();
        yield_now().await;
        assert_eq!(*result.borrow(), [1, 2]);
        assert!(cond.locked());

        cond.release().unwrap();
        yield_now().await;
        assert_eq!(*result.borrow(), [1, 2, 3]);
        assert!(cond.locked());
        assert!(t1.await.unwrap() && t2.await.unwrap() && t3.await.unwrap());
    });
}

#[test]
fn condition_test_wait_cancel() {
    util::run(async {
        let cond = Condition::new();
        let g = cond.acquire().await;
        let c = cond.clone();
        let wait = spawn(async move { c.wait(g).await.map(drop) });
        yield_now().await;
        assert_eq!(cond.waiters(), 1);
        wait.cancel();
        assert!(wait.await.unwrap_err().is_cancelled());
        assert_eq!(cond.waiters(), 0);
        // asyncio's cancelled wait re-acquires the lock; a dropped Rust future cannot
        // await, and the guard it took went with it: the lock is free.
        assert!(!cond.locked());
    });
}

#[test]
fn condition_test_wait_cancel_contested() {
    util::run(async {
        let cond = Condition::new();
        let g = cond.acquire().await;
        assert!(cond.locked());
        let c = cond.clone();
        let wait_task = spawn(async move { c.wait(g).await.map(LockGuard::forget) });
        yield_now().await;
        assert!(!cond.locked());

        // Notify, but contest the lock before cancelling.
        cond.acquire().await.forget();
        assert!(cond.locked());
        cond.notify(1).unwrap();
        let l = ringloop::get_running_loop().unwrap();
        let (w, c) = (wait_task.task(), cond.clone());
        l.call_soon(move || {
            w.cancel();
        });
        l.call_soon(move || c.release().unwrap());
        // asyncio lets the woken task finish its wait (holding the lock) and then raise;
        // ringloop drops a cancelled task's future at its next step, re-acquire and all.
        let r = wait_task.await;
        match r {
            Ok(Ok(())) => assert!(cond.locked()),
            Err(e) => {
                assert!(e.is_cancelled());
                assert!(!cond.locked());
            }
            Ok(Err(e)) => panic!("wait refused: {e}"),
        }
        assert_eq!(cond.waiters(), 0);
    });
}

#[test]
fn condition_test_wait_cancel_after_notify() {
    // bpo-32841
    util::run(async {
        let cond = Condition::new();
        let waited = Rc::new(Cell::new(false));
        let (c, w) = (cond.clone(), waited.clone());
        let waiter = spawn(async move {
            let g = c.acquire().await;
            w.set(true);
            drop(c.wait(g).await);
        });
        yield_now().await; // start waiting
        cond.acquire().await.forget();
        cond.notify(1).unwrap();
        yield_now().await; // get to acquire()
        waiter.cancel();
        yield_now().await; // activate cancellation
        cond.release().unwrap();
        yield_now().await; // cancellation should occur
        assert!(waiter.cancelled());
        assert!(waited.get());
        assert!(!cond.locked());
        assert_eq!(cond.lock().waiters(), 0);
    });
}

#[test]
fn condition_test_wait_unacquired() {
    util::run(async {
        let cond = Condition::new();
        // A guard whose hold ended (unguarded release) does not prove the lock is held.
        let g = cond.acquire().await;
        cond.release().unwrap();
        assert!(cond.wait(g).await.is_err());
        // Nor does a guard of another lock.
        let other = Lock::new();
        let g = other.acquire().await;
        assert!(cond.wait(g).await.is_err());
        assert!(!cond.locked());
        assert_eq!(cond.waiters(), 0);
    });
}

#[test]
fn condition_test_wait_for() {
    util::run(async {
        let cond = Condition::new();
        let presult = Rc::new(Cell::new(false));
        let result = Rc::new(RefCell::new(Vec::new()));
        let (c, p, r) = (cond.clone(), presult.clone(), result.clone());
        let t = spawn(async move {
            let g = c.acquire().await;
            let g = c.wait_for(g, || p.get()).await.unwrap();
            push(&r, 1);
            drop(g);
            true
        });
        yield_now().await;
        assert!(result.borrow().is_empty());

        let g = cond.acquire().await;
        cond.notify(1).unwrap();
        drop(g);
        yield_now().await;
        assert!(result.borrow().is_empty());

        presult.set(true);
        let g = cond.acquire().await;
        cond.notify(1).unwrap();
        drop(g);
        yield_now().await;
        assert_eq!(*result.borrow(), [1]);
        assert!(t.is_finished());
        assert!(t.await.unwrap());
    });
}

#[test]
fn condition_test_wait_for_unacquired() {
    util::run(async {
        let cond = Condition::new();
        let g = cond.acquire().await;
        cond.release().unwrap();
        // asyncio returns a true predicate without looking at the lock; here the guard
        // is checked first (a stale guard given back would prove nothing).
        assert!(cond.wait_for(g, || true).await.is_err());
        let g = cond.acquire().await;
        let g = cond.wait_for(g, || true).await.unwrap();
        assert!(g.is_current());
    });
}

#[test]
fn condition_test_notify() {
    util::run(async {
        let cond = Condition::new();
        let result = Rc::new(RefCell::new(Vec::new()));
        let t1 = cond_waiter(&cond, &result, 1, true);
        let t2 = cond_waiter(&cond, &result, 2, true);
        let t3 = cond_waiter(&cond, &result, 3, true);
        yield_now().await;
        assert!(result.borrow().is_empty());

        let g = cond.acquire().await;
        cond.notify(1).unwrap();
        drop(g);
        yield_now().await;
        assert_eq!(*result.borrow(), [1]);

        let g = cond.acquire().await;
        cond.notify(1).unwrap();
        cond.notify(2048).unwrap();
        drop(g);
        yield_now().await;
        assert_eq!(*result.borrow(), [1, 2, 3]);
        assert!(t1.await.unwrap() && t2.await.unwrap() && t3.await.unwrap());
    });
}

#[test]
fn condition_test_notify_all() {
    util::run(async {
        let cond = Condition::new();
        let result = Rc::new(RefCell::new(Vec::new()));
        let t1 = cond_waiter(&cond, &result, 1, true);
        let t2 = cond_waiter(&cond, &result, 2, true);
        yield_now().await;
        assert!(result.borrow().is_empty());
        let g = cond.acquire().await;
        cond.notify_all().unwrap();
        drop(g);
        yield_now().await;
        assert_eq!(*result.borrow(), [1, 2]);
        assert!(t1.await.unwrap() && t2.await.unwrap());
    });
}

#[test]
fn condition_test_notify_unacquired() {
    assert!(Condition::new().notify(1).is_err());
}

#[test]
fn condition_test_notify_all_unacquired() {
    assert!(Condition::new().notify_all().is_err());
}

#[test]
fn condition_test_repr() {
    util::run(async {
        let cond = Condition::new();
        assert!(cond.to_string().ends_with("[unlocked]>"));
        let g = cond.acquire().await;
        assert!(cond.to_string().ends_with("[locked]>"));
        let c = cond.clone();
        let t = spawn(async move { c.wait(g).await.map(drop) });
        yield_now().await;
        assert!(
            cond.to_string().ends_with("[unlocked, waiters:1]>"),
            "{cond}"
        );
        t.cancel();
        let _ = t.await;
        assert!(cond.to_string().ends_with("[unlocked]>"));
    });
}

#[test]
fn condition_test_context_manager() {
    util::run(async {
        let cond = Condition::new();
        assert!(!cond.locked());
        {
            let _g = cond.acquire().await;
            assert!(cond.locked());
        }
        assert!(!cond.locked());
    });
}

#[test]
fn condition_test_explicit_lock() {
    util::run(async {
        async fn f(lock: Option<Lock>, cond: Option<Condition>) {
            let lock = lock.unwrap_or_default();
            let cond = cond.unwrap_or_else(|| Condition::with_lock(lock.clone()));
            assert!(cond.lock().to_string() == lock.to_string());
            assert!(!lock.locked() && !cond.locked());
            {
                let _g = cond.acquire().await;
                assert!(lock.locked() && cond.locked());
            }
            assert!(!lock.locked() && !cond.locked());
            {
                let _g = lock.acquire().await;
                assert!(lock.locked() && cond.locked());
            }
            assert!(!lock.locked() && !cond.locked());
        }
        f(None, None).await;
        f(Some(Lock::new()), None).await;
        let lock = Lock::new();
        f(Some(lock.clone()), Some(Condition::with_lock(lock))).await;
    });
}

#[test]
fn condition_test_timeout_in_block() {
    util::run(async {
        let cond = Condition::new();
        let g = cond.acquire().await;
        let r = wait_for(cond.wait(g), Duration::from_millis(50)).await;
        assert!(r.unwrap_err().is_timeout());
        assert_eq!(cond.waiters(), 0);
    });
}

#[test]
fn condition_test_cancelled_error_wakeup() {
    // The concept in Rust: a task cancelled while it waits for the wake-up ends cancelled
    // and leaves neither a waiter slot nor the lock behind.
    util::run(async {
        let cond = Condition::new();
        let c = cond.clone();
        let task = spawn(async move {
            let g = c.acquire().await;
            drop(c.wait_for(g, || false).await);
        });
        yield_now().await;
        assert_eq!(cond.waiters(), 1);
        task.cancel();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(cond.waiters(), 0);
        assert!(!cond.locked());
    });
}

#[test]
fn condition_test_cancelled_error_re_aquire() {
    // Cancelled while re-acquiring the lock: the task ends cancelled, its lock waiter is
    // gone, and the lock is free once the notifier releases it.
    util::run(async {
        let cond = Condition::new();
        let wake = Rc::new(Cell::new(false));
        let (c, w) = (cond.clone(), wake.clone());
        let task = spawn(async move {
            let g = c.acquire().await;
            drop(c.wait_for(g, || w.get()).await);
        });
        yield_now().await;
        cond.acquire().await.forget();
        wake.set(true);
        cond.notify(1).unwrap();
        yield_now().await;
        assert_eq!(cond.lock().waiters(), 1);
        task.cancel();
        cond.release().unwrap();
        assert!(task.await.unwrap_err().is_cancelled());
        assert!(!cond.locked());
        assert_eq!(cond.lock().waiters(), 0);
    });
}

/// The consumers of `test_cancelled_wakeup{,_relock}`: wait for `state != 0`, consume
/// one unit, until `state < 0`.
fn consumer(cond: &Condition, state: &Rc<Cell<i32>>) -> ringloop::JoinHandle<()> {
    let (c, s) = (cond.clone(), state.clone());
    spawn(async move {
        let mut g = c.acquire().await;
        loop {
            g = c.wait_for(g, || s.get() != 0).await.unwrap();
            if s.get() < 0 {
                return;
            }
            s.set(s.get() - 1);
        }
    })
}

async fn cancelled_wakeup(relock: bool) {
    let cond = Condition::new();
    let state = Rc::new(Cell::new(0));
    let c = [consumer(&cond, &state), consumer(&cond, &state)];
    yield_now().await;
    let g = cond.acquire().await;
    // Produce one item and wake up one consumer.
    state.set(state.get() + 1);
    cond.notify(1).unwrap();
    if relock {
        // Let it wake and queue to re-acquire the lock, then cancel it there.
        yield_now().await;
        assert_eq!(cond.lock().waiters(), 1);
    }
    c[0].cancel();
    // If the item is not consumed, the notify was lost to the cancellation.
    let s = state.clone();
    let g = match timeout(Duration::from_millis(10), cond.wait_for(g, || s.get() == 0)).await {
        Ok(g) => g.unwrap(),
        // The timed-out wait took the guard with it: take the lock again.
        Err(_) => cond.acquire().await,
    };
    assert_eq!(state.get(), 0);
    state.set(-1);
    cond.notify_all().unwrap();
    drop(g);
    let [c0, c1] = c;
    assert!(c0.await.unwrap_err().is_cancelled());
    c1.await.unwrap();
}

#[test]
fn condition_test_cancelled_wakeup() {
    util::run(cancelled_wakeup(false));
}

#[test]
fn condition_test_cancelled_wakeup_relock() {
    util::run(cancelled_wakeup(true));
}

// ---------------------------------------------------------------------------------------
// BarrierTests (N = 5 unless the case sets it).

const N: usize = 5;

/// Spawns `n` tasks running `f()`.
fn make_tasks<F, Fut>(n: usize, f: F) -> Vec<ringloop::JoinHandle<Fut::Output>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future + 'static,
    Fut::Output: 'static,
{
    (0..n).map(|_| spawn(f())).collect()
}

/// Spawns `n` tasks running `f()` and awaits them all (asyncio's `gather`).
async fn gather_tasks<F, Fut>(n: usize, f: F) -> Vec<Fut::Output>
where
    F: Fn() -> Fut,
    Fut: std::future::Future + 'static,
    Fut::Output: 'static,
{
    let mut out = Vec::new();
    for t in make_tasks(n, f) {
        out.push(t.await.unwrap());
    }
    out
}

fn counter() -> Rc<Cell<usize>> {
    Rc::new(Cell::new(0))
}

fn bump(c: &Cell<usize>) -> usize {
    c.set(c.get() + 1);
    c.get()
}

#[test]
fn barrier_test_barrier() {
    let barrier = Barrier::new(N).unwrap();
    assert!(barrier.to_string().contains("filling"));
}

#[test]
fn barrier_test_repr() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        assert_eq!(barrier.to_string(), "<Barrier [filling, waiters:0/5]>");
        let mut waiters = Vec::new();
        let wait = |b: &Barrier| {
            let b = b.clone();
            spawn(async move { b.wait().await })
        };
        let incr = 2;
        for _ in 0..incr {
            waiters.push(wait(&barrier));
        }
        yield_now().await;
        assert!(barrier.to_string().contains(&format!("waiters:{incr}/{N}")));
        assert!(barrier.to_string().contains("filling"));

        // Create the missing waiters.
        for _ in 0..barrier.parties() - barrier.n_waiting() {
            waiters.push(wait(&barrier));
        }
        yield_now().await;
        assert!(barrier.to_string().contains("draining"), "{barrier}");

        // Add a part of waiters, and reset.
        for _ in 0..incr {
            waiters.push(wait(&barrier));
        }
        yield_now().await;
        barrier.reset().await;
        assert!(barrier.to_string().contains("resetting"), "{barrier}");

        // Add a part of waiters again, and abort.
        for _ in 0..incr {
            waiters.push(wait(&barrier));
        }
        yield_now().await;
        barrier.abort().await;
        assert_eq!(barrier.to_string(), "<Barrier [broken]>");
        assert!(barrier.broken());
        for w in waiters {
            let _ = w.await.unwrap();
        }
    });
}

#[test]
fn barrier_test_barrier_parties() {
    assert_eq!(Barrier::new(0).unwrap_err(), ringloop::sync::ZeroParties);
    assert_eq!(Barrier::new(N).unwrap().parties(), N);
}

#[test]
fn barrier_test_context_manager() {
    util::run(async {
        let n = 3;
        let barrier = Barrier::new(n).unwrap();
        let b = barrier.clone();
        let mut results = gather_tasks(n, || {
            let b = b.clone();
            async move { b.wait().await.unwrap() }
        })
        .await;
        results.sort();
        assert_eq!(results, [0, 1, 2]);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_filling_one_task() {
    util::run(async {
        let barrier = Barrier::new(1).unwrap();
        assert_eq!(barrier.wait().await, Ok(0));
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_filling_one_task_twice() {
    util::run(async {
        let barrier = Barrier::new(1).unwrap();
        let b = barrier.clone();
        let t1 = spawn(async move { b.wait().await });
        yield_now().await;
        assert_eq!(barrier.n_waiting(), 0);
        let b = barrier.clone();
        let t2 = spawn(async move { b.wait().await });
        yield_now().await;
        assert!(t1.is_finished() && t2.is_finished());
        assert_eq!(t1.await.unwrap(), t2.await.unwrap());
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_filling_task_by_task() {
    util::run(async {
        let barrier = Barrier::new(3).unwrap();
        let wait = || {
            let b = barrier.clone();
            spawn(async move { b.wait().await })
        };
        let t1 = wait();
        yield_now().await;
        assert_eq!(barrier.n_waiting(), 1);
        assert!(barrier.to_string().contains("filling"));
        let t2 = wait();
        yield_now().await;
        assert_eq!(barrier.n_waiting(), 2);
        assert!(barrier.to_string().contains("filling"));
        let t3 = wait();
        yield_now().await;
        for t in [t1, t2, t3] {
            t.await.unwrap().unwrap();
        }
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_filling_tasks_wait_twice() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let results = Rc::new(RefCell::new(Vec::new()));
        let (b, r) = (barrier.clone(), results.clone());
        gather_tasks(N, || {
            let (b, r) = (b.clone(), r.clone());
            async move {
                b.wait().await.unwrap();
                r.borrow_mut().push(true);
                b.wait().await.unwrap();
                r.borrow_mut().push(false);
            }
        })
        .await;
        let results = results.borrow();
        assert_eq!(results.len(), N * 2);
        assert_eq!(results.iter().filter(|x| **x).count(), N);
        assert!(results[..N].iter().all(|x| *x));
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_filling_tasks_check_return_value() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let (r1, r2) = (counter(), counter());
        let (b, c1, c2) = (barrier.clone(), r1.clone(), r2.clone());
        let mut res = gather_tasks(N, || {
            let (b, c1, c2) = (b.clone(), c1.clone(), c2.clone());
            async move {
                b.wait().await.unwrap();
                bump(&c1);
                let i = b.wait().await.unwrap();
                bump(&c2);
                i
            }
        })
        .await;
        assert_eq!((r1.get(), r2.get()), (N, N));
        res.sort();
        assert_eq!(res, (0..N).collect::<Vec<_>>());
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_draining_state() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let results = Rc::new(RefCell::new(Vec::new()));
        let (b, r) = (barrier.clone(), results.clone());
        gather_tasks(N, || {
            let (b, r) = (b.clone(), r.clone());
            async move {
                b.wait().await.unwrap();
                // The barrier is back to filling for the last task out.
                r.borrow_mut().push(b.to_string().contains("draining"));
            }
        })
        .await;
        let results = results.borrow();
        assert_eq!(results.len(), N);
        assert!(!results[N - 1]);
        assert!(results[..N - 1].iter().all(|x| *x));
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_blocking_tasks_while_draining() {
    util::run(async {
        let rewait = 2;
        let barrier = Barrier::new(N).unwrap();
        let barrier_nowaiting = Barrier::new(N - rewait).unwrap();
        let rewait_n = Rc::new(Cell::new(rewait));
        let (b, bn, rn) = (barrier.clone(), barrier_nowaiting.clone(), rewait_n.clone());
        // Success means barrier_nowaiting was waited for exactly N - rewait times.
        gather_tasks(N, || {
            let (b, bn, rn) = (b.clone(), bn.clone(), rn.clone());
            async move {
                b.wait().await.unwrap();
                if rn.get() > 0 {
                    rn.set(rn.get() - 1);
                    b.wait().await.unwrap();
                } else {
                    bn.wait().await.unwrap();
                    b.wait().await.unwrap();
                }
            }
        })
        .await;
        assert_eq!(barrier.n_waiting(), 0);
    });
}

#[test]
fn barrier_test_filling_tasks_cancel_one() {
    util::run(async {
        let barrier = Barrier::new(3).unwrap();
        let results = counter();
        let coro = || {
            let (b, r) = (barrier.clone(), results.clone());
            spawn(async move {
                b.wait().await.unwrap();
                bump(&r);
            })
        };
        let t1 = coro();
        yield_now().await;
        assert_eq!(barrier.n_waiting(), 1);
        let t2 = coro();
        yield_now().await;
        assert_eq!(barrier.n_waiting(), 2);
        t1.cancel();
        yield_now().await;
        assert_eq!(barrier.n_waiting(), 1);
        assert!(t1.await.unwrap_err().is_cancelled());
        let t3 = coro();
        yield_now().await;
        assert_eq!(barrier.n_waiting(), 2);
        let t4 = coro();
        for t in [t2, t3, t4] {
            t.await.unwrap();
        }
        assert_eq!(results.get(), 3);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_reset_barrier() {
    util::run(async {
        let barrier = Barrier::new(1).unwrap();
        let b = barrier.clone();
        let t = spawn(async move { b.reset().await });
        yield_now().await;
        assert!(t.is_finished());
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_reset_barrier_while_tasks_waiting() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let results = counter();
        let (b, r) = (barrier.clone(), results.clone());
        let tasks = make_tasks(N - 1, || {
            let (b, r) = (b.clone(), r.clone());
            async move {
                if b.wait().await == Err(BrokenBarrier) {
                    bump(&r);
                }
            }
        });
        yield_now().await;
        let b = barrier.clone();
        let _reset = spawn(async move { b.reset().await });
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(results.get(), N - 1);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.to_string().contains("resetting"));
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_reset_barrier_when_tasks_half_draining() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let results1 = counter();
        let rest_of_tasks = N / 2;
        // asyncio reads `barrier._count` (tasks still inside): N minus those out.
        let out = counter();
        let (b, r1, o) = (barrier.clone(), results1.clone(), out.clone());
        gather_tasks(N, || {
            let (b, r1, o) = (b.clone(), r1.clone(), o.clone());
            async move {
                match b.wait().await {
                    Err(BrokenBarrier) => {
                        bump(&r1);
                    }
                    Ok(_) => {
                        if N - bump(&o) == rest_of_tasks {
                            b.reset().await;
                        }
                    }
                }
            }
        })
        .await;
        assert_eq!(results1.get(), rest_of_tasks);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.to_string().contains("resetting"));
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_reset_barrier_when_tasks_half_draining_half_blocking() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let (results1, results2) = (counter(), counter());
        let blocking_tasks = N / 2;
        let count = counter();
        let (b, r1, r2, c) = (
            barrier.clone(),
            results1.clone(),
            results2.clone(),
            count.clone(),
        );
        gather_tasks(N, || {
            let (b, r1, r2, c) = (b.clone(), r1.clone(), r2.clone(), c.clone());
            async move {
                match b.wait().await {
                    Err(BrokenBarrier) => {
                        // The tasks still waiting: wait again to reach the parties.
                        bump(&r1);
                        b.wait().await.unwrap();
                    }
                    Ok(_) => {
                        if bump(&c) > blocking_tasks {
                            // Reset now: the waiting tasks get BrokenBarrier.
                            b.reset().await;
                            b.wait().await.unwrap();
                        } else if b.wait().await.is_err() {
                            // Never: blocked tasks wait through the reset.
                            bump(&r2);
                        }
                    }
                }
            }
        })
        .await;
        assert_eq!(results1.get(), blocking_tasks);
        assert_eq!(results2.get(), 0);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.to_string().contains("resetting"));
        assert!(!barrier.broken());
    });
}

#[test]
fn barrier_test_reset_barrier_while_tasks_waiting_and_waiting_again() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let (results1, results2) = (counter(), counter());
        let (b, r1, r2) = (barrier.clone(), results1.clone(), results2.clone());
        let tasks = make_tasks(N - 1, || {
            let (b, r1, r2) = (b.clone(), r1.clone(), r2.clone());
            async move {
                if b.wait().await.is_err() {
                    bump(&r1);
                }
                b.wait().await.unwrap();
                bump(&r2);
            }
        });
        // Reset the barrier: the N-1 waiting tasks get BrokenBarrier.
        let b = barrier.clone();
        let _reset = spawn(async move { b.reset().await });
        yield_now().await;
        // Complete the waiting tasks' second wait.
        let (b, r2) = (barrier.clone(), results2.clone());
        let last = spawn(async move {
            b.wait().await.unwrap();
            bump(&r2);
        });
        for t in tasks {
            t.await.unwrap();
        }
        last.await.unwrap();
        assert!(!barrier.broken());
        assert_eq!(results1.get(), N - 1);
        assert_eq!(results2.get(), N);
        assert_eq!(barrier.n_waiting(), 0);
    });
}

#[test]
fn barrier_test_reset_barrier_while_tasks_draining() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let (results1, results2, results3) = (counter(), counter(), counter());
        let count = counter();
        let (b, r1, r2, r3, c) = (
            barrier.clone(),
            results1.clone(),
            results2.clone(),
            results3.clone(),
            count.clone(),
        );
        gather_tasks(N, || {
            let (b, r1, r2, r3, c) = (b.clone(), r1.clone(), r2.clone(), r3.clone(), c.clone());
            async move {
                b.wait().await.unwrap();
                if bump(&c) == N {
                    // The last task out of the barrier resets it, then waits.
                    b.reset().await;
                    b.wait().await.unwrap();
                } else {
                    match b.wait().await {
                        Ok(_) => bump(&r1),
                        Err(_) => bump(&r2),
                    };
                }
                // Pass the barrier once more.
                b.wait().await.unwrap();
                bump(&r3);
            }
        })
        .await;
        assert!(!barrier.broken());
        assert_eq!(results1.get(), N - 1);
        assert_eq!(results2.get(), 0);
        assert_eq!(results3.get(), N);
        assert_eq!(barrier.n_waiting(), 0);
    });
}

#[test]
fn barrier_test_abort_barrier() {
    util::run(async {
        let barrier = Barrier::new(1).unwrap();
        let b = barrier.clone();
        let _t = spawn(async move { b.abort().await });
        yield_now().await;
        assert_eq!(barrier.n_waiting(), 0);
        assert!(barrier.broken());
        assert_eq!(barrier.wait().await, Err(BrokenBarrier));
    });
}

#[test]
fn barrier_test_abort_barrier_when_tasks_half_draining_half_blocking() {
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let (results1, results2) = (counter(), counter());
        let blocking_tasks = N / 2;
        let count = counter();
        let (b, r1, r2, c) = (
            barrier.clone(),
            results1.clone(),
            results2.clone(),
            count.clone(),
        );
        gather_tasks(N, || {
            let (b, r1, r2, c) = (b.clone(), r1.clone(), r2.clone(), c.clone());
            async move {
                match b.wait().await {
                    Err(BrokenBarrier) => {
                        bump(&r1);
                    }
                    Ok(_) => {
                        if bump(&c) > blocking_tasks {
                            // Abort now: every task gets BrokenBarrier.
                            b.abort().await;
                        } else if b.wait().await.is_err() {
                            // The blocked tasks (already drained).
                            bump(&r2);
                        }
                    }
                }
            }
        })
        .await;
        assert!(barrier.broken());
        assert_eq!(results1.get(), blocking_tasks);
        assert_eq!(results2.get(), N - blocking_tasks - 1);
        assert_eq!(barrier.n_waiting(), 0);
        assert!(!barrier.to_string().contains("resetting"));
    });
}

#[test]
fn barrier_test_abort_barrier_when_exception() {
    // threading's lock_tests.test_reset: one task fails between two waits and aborts.
    util::run(async {
        let barrier = Barrier::new(N).unwrap();
        let (results1, results2) = (counter(), counter());
        let (b, r1, r2) = (barrier.clone(), results1.clone(), results2.clone());
        gather_tasks(N, || {
            let (b, r1, r2) = (b.clone(), r1.clone(), r2.clone());
            async move {
                let step = async {
                    let i = b.wait().await?;
                    if i == N / 2 {
                        return Ok(false); // asyncio's RuntimeError
                    }
                    b.wait().await?;
                    bump(&r1);
                    Ok::<_, BrokenBarrier>(true)
                };
                match step.await {
                    Err(BrokenBarrier) => {
                        bump(&r2);
                    }
                    Ok(false) => b.abort().await,
                    Ok(true) => {}
                }
            }
        })
        .await;
        assert!(barrier.broken());
        assert_eq!(results1.get(), 0);
        assert_eq!(results2.get(), N - 1);
        assert_eq!(barrier.n_waiting(), 0);
    });
}

#[test]
fn barrier_test_abort_barrier_when_exception_then_resetting() {
    // threading's lock_tests.test_abort_and_reset.
    util::run(async {
        let barrier1 = Barrier::new(N).unwrap();
        let barrier2 = Barrier::new(N).unwrap();
        let (results1, results2, results3) = (counter(), counter(), counter());
        let (b1, b2, r1, r2, r3) = (
            barrier1.clone(),
            barrier2.clone(),
            results1.clone(),
            results2.clone(),
            results3.clone(),
        );
        gather_tasks(N, || {
            let (b1, b2, r1, r2, r3) = (b1.clone(), b2.clone(), r1.clone(), r2.clone(), r3.clone());
            async move {
                let step = async {
                    let i = b1.wait().await?;
                    if i == N / 2 {
                        return Ok(false);
                    }
                    b1.wait().await?;
                    bump(&r1);
                    Ok::<_, BrokenBarrier>(true)
                };
                match step.await {
                    Err(BrokenBarrier) => {
                        bump(&r2);
                    }
                    Ok(false) => b1.abort().await,
                    Ok(true) => {}
                }
                // Synchronize and reset barrier1: everyone has left it when it is
                // reset, and no one enters it before.
                if b2.wait().await.unwrap() == N / 2 {
                    b1.reset().await;
                }
                b2.wait().await.unwrap();
                b1.wait().await.unwrap();
                bump(&r3);
            }
        })
        .await;
        assert!(!barrier1.broken());
        assert_eq!(results1.get(), 0);
        assert_eq!(results2.get(), N - 1);
        assert_eq!(results3.get(), N);
        assert_eq!(barrier1.n_waiting(), 0);
    });
}

#[test]
fn semaphore_test_release_no_waiters() {
    util::run(async {
        let sem = Semaphore::new(1);
        sem.acquire().await.forget();
        assert!(sem.locked());
        sem.release().unwrap();
        assert!(!sem.locked());
    });
}

#[test]
fn semaphore_test_acquire_fifo_order() {
    util::run(async {
        let sem = Semaphore::new(1);
        let result = Rc::new(RefCell::new(Vec::new()));
        let coro = |tag: &'static str| {
            let (sem, result) = (sem.clone(), result.clone());
            spawn(async move {
                for round in 1..=2 {
                    sem.acquire().await.forget();
                    result.borrow_mut().push(format!("{tag}_{round}"));
                    ringloop::sleep(Duration::from_millis(10)).await;
                    sem.release().unwrap();
                }
            })
        };
        let tasks = [coro("c1"), coro("c2"), coro("c3")];
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *result.borrow(),
            ["c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"]
        );
    });
}

#[test]
fn semaphore_test_acquire_fifo_order_2() {
    util::run(async {
        let sem = Semaphore::new(1);
        let result = Rc::new(RefCell::new(Vec::new()));
        let (s, r) = (sem.clone(), result.clone());
        let t1 = spawn(async move {
            s.acquire().await.forget();
            push(&r, 1);
        });
        let (s, r) = (sem.clone(), result.clone());
        let t2 = spawn(async move {
            s.acquire().await.forget();
            push(&r, 2);
            s.release().unwrap();
            s.acquire().await.forget();
            push(&r, 4);
        });
        let (s, r) = (sem.clone(), result.clone());
        let t3 = spawn(async move {
            s.acquire().await.forget();
            push(&r, 3);
        });
        yield_now().await;
        sem.release().unwrap();
        sem.release().unwrap();
        for t in [t1, t2, t3] {
            t.await.unwrap();
        }
        assert_eq!(*result.borrow(), [1, 2, 3, 4]);
    });
}

#[test]
fn semaphore_test_acquire() {
    util::run(async {
        let sem = Semaphore::new(3);
        let result = Rc::new(RefCell::new(Vec::new()));
        sem.acquire().await.forget();
        sem.acquire().await.forget();
        assert!(!sem.locked());
        let c = |n| {
            let (s, r) = (sem.clone(), result.clone());
            spawn(async move {
                s.acquire().await.forget();
                push(&r, n);
                true
            })
        };
        let (t1, t2, t3) = (c(1), c(2), c(3));
        yield_now().await;
        assert_eq!(*result.borrow(), [1]);
        assert!(sem.locked());
        assert_eq!(sem.waiters(), 2);
        assert_eq!(sem.value(), 0);
        let t4 = c(4);
        sem.release().unwrap();
        sem.release().unwrap();
        assert_eq!(sem.value(), 0);
        yield_now().await;
        assert_eq!(sem.value(), 0);
        assert_eq!(result.borrow().len(), 3);
        assert!(sem.locked());
        assert_eq!(sem.waiters(), 1);
        assert!(t1.is_finished());
        let done = [&t2, &t3, &t4].iter().filter(|t| t.is_finished()).count();
        assert_eq!(done, 2);
        // Clean up the locked semaphore.
        sem.release().unwrap();
        assert!(t1.await.unwrap());
        for t in [t2, t3, t4] {
            assert!(t.await.unwrap());
        }
    });
}

#[test]
fn semaphore_test_acquire_cancel() {
    util::run(async {
        let sem = Semaphore::new(1);
        sem.acquire().await.forget();
        let s = sem.clone();
        let acquire = spawn(async move { s.acquire().await.forget() });
        let a = acquire.task();
        ringloop::get_running_loop().unwrap().call_soon(move || {
            a.cancel();
        });
        assert!(acquire.await.unwrap_err().is_cancelled());
        assert_eq!(sem.waiters(), 0);
    });
}

#[test]
fn semaphore_test_acquire_no_hang() {
    util::run(async {
        let sem = Semaphore::new(1);
        let t2_slot: Rc<RefCell<Option<ringloop::Task>>> = Rc::new(RefCell::new(None));
        let (s, slot) = (sem.clone(), t2_slot.clone());
        let t1 = spawn(async move {
            {
                let _g = s.acquire().await;
                yield_now().await;
            }
            // Released: t2 was woken; cancel it before it runs.
            slot.borrow().as_ref().unwrap().cancel();
        });
        let s = sem.clone();
        let t2 = spawn(async move {
            let _g = s.acquire().await;
            panic!("t2 must not acquire");
        });
        *t2_slot.borrow_mut() = Some(t2.task());
        t1.await.unwrap();
        assert!(t2.await.unwrap_err().is_cancelled());
        // The woken-then-cancelled waiter gave its unit back.
        let g = ringloop::wait_for(sem.acquire(), Duration::from_secs(1)).await;
        assert!(g.is_ok());
    });
}

#[test]
fn event_test_wait_on_set() {
    util::run(async {
        let ev = Event::new();
        ev.set();
        // Returns at once (asyncio's `True`), without queueing.
        ev.wait().await;
        assert_eq!(ev.waiters(), 0);
    });
}

#[test]
fn event_test_clear() {
    let ev = Event::new();
    assert!(!ev.is_set());
    ev.set();
    assert!(ev.is_set());
    ev.clear();
    assert!(!ev.is_set());
}

#[test]
fn event_test_repr() {
    util::run(async {
        let ev = Event::new();
        assert!(ev.to_string().ends_with("[unset]>"), "{ev}");
        ev.set();
        assert!(ev.to_string().ends_with("[set]>"), "{ev}");
        ev.clear();
        let e = ev.clone();
        let waiter = spawn(async move { e.wait().await });
        yield_now().await;
        assert!(ev.to_string().contains("waiters:1"), "{ev}");
        ev.set();
        waiter.await.unwrap();
    });
}
