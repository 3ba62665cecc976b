//! CPython's `Lib/test/test_asyncio/test_locks.py`, ported case by case (each test is
//! named after the CPython class and case). Task cancellation is `JoinHandle::cancel`,
//! which drops the task's future at its next step, as asyncio raises `CancelledError`
//! at the next `await`.

mod util;

use std::cell::RefCell;
use std::rc::Rc;

use ringloop::{BoundedSemaphore, Event, Lock, Semaphore, spawn, yield_now};

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
