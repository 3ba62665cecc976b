//! CPython's `Lib/test/test_asyncio/test_queues.py` (3.13, with the shutdown tests),
//! ported case by case: each test is named after the CPython class and case. The join
//! and shutdown mixins run on all three queue classes, as CPython's do. Then the cases
//! that only Rust has: the item given back by a failed put, and `?` into
//! `ringloop::Error`. `asyncio.sleep(0)` is `yield_now()`; `task.cancel()` is
//! `JoinHandle::cancel`, which drops the task's future at its next step.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ringloop::queue::{
    Fifo, GenericQueue, Lifo, Priority, Store, TaskDoneTooMany, TryGetError, TryPutError,
};
use ringloop::{LifoQueue, PriorityQueue, Queue, QueueShutDown, spawn, yield_now};

// ---- QueueBasicTests ----

/// `_test_repr_or_str`: `{:?}` is asyncio's `repr`/`str` with the items, `{}` without.
async fn repr_or_str(debug: bool) {
    let fmt = |q: &Queue<i32>| {
        if debug {
            format!("{q:?}")
        } else {
            q.to_string()
        }
    };
    let q: Queue<i32> = Queue::new(0);
    assert!(fmt(&q).starts_with("<Queue"), "{}", fmt(&q));

    // getters
    let q: Queue<i32> = Queue::new(0);
    let getter = {
        let q = q.clone();
        spawn(async move { q.get().await })
    };
    yield_now().await;
    assert!(fmt(&q).contains("_getters[1]"), "{}", fmt(&q));
    q.put_nowait(0).unwrap();
    assert_eq!(getter.await.unwrap(), Ok(0));

    // putters
    let q: Queue<i32> = Queue::new(1);
    q.put_nowait(1).unwrap();
    let putter = {
        let q = q.clone();
        spawn(async move { q.put(2).await })
    };
    yield_now().await;
    assert!(fmt(&q).contains("_putters[1]"), "{}", fmt(&q));
    q.get_nowait().unwrap();
    putter.await.unwrap().unwrap();

    let q: Queue<i32> = Queue::new(0);
    q.put_nowait(1).unwrap();
    assert_eq!(fmt(&q).contains("_queue=[1]"), debug, "{}", fmt(&q));
}

#[test]
fn queue_basic_test_repr() {
    util::run(repr_or_str(true));
}

#[test]
fn queue_basic_test_str() {
    util::run(repr_or_str(false));
}

#[test]
fn queue_basic_test_empty() {
    util::run(async {
        let q = Queue::new(0);
        assert!(q.empty());
        q.put(1).await.unwrap();
        assert!(!q.empty());
        assert_eq!(q.get().await, Ok(1));
        assert!(q.empty());
    });
}

#[test]
fn queue_basic_test_full() {
    util::run(async {
        let q: Queue<i32> = Queue::new(0);
        assert!(!q.full());
        let q = Queue::new(1);
        q.put(1).await.unwrap();
        assert!(q.full());
    });
}

#[test]
fn queue_basic_test_order() {
    util::run(async {
        let q = Queue::new(0);
        for i in [1, 3, 2] {
            q.put(i).await.unwrap();
        }
        let mut items = Vec::new();
        for _ in 0..3 {
            items.push(q.get().await.unwrap());
        }
        assert_eq!(items, [1, 3, 2]);
    });
}

#[test]
fn queue_basic_test_maxsize() {
    util::run(async {
        let q = Queue::new(2);
        assert_eq!(q.maxsize(), 2);
        let have_been_put = Rc::new(RefCell::new(Vec::new()));
        let t = {
            let (q, h) = (q.clone(), have_been_put.clone());
            spawn(async move {
                for i in 0..3 {
                    q.put(i).await.unwrap();
                    h.borrow_mut().push(i);
                }
                true
            })
        };
        for _ in 0..2 {
            yield_now().await;
        }
        // The putter is blocked after putting two items.
        assert_eq!(*have_been_put.borrow(), [0, 1]);
        assert_eq!(q.get().await, Ok(0));
        // Let the putter resume and put the last item.
        yield_now().await;
        assert_eq!(*have_been_put.borrow(), [0, 1, 2]);
        assert_eq!(q.get().await, Ok(1));
        assert_eq!(q.get().await, Ok(2));
        assert!(t.is_finished());
        assert!(t.await.unwrap());
    });
}

// ---- QueueGetTests ----

#[test]
fn queue_get_test_blocking_get() {
    util::run(async {
        let q = Queue::new(0);
        q.put_nowait(1).unwrap();
        assert_eq!(q.get().await, Ok(1));
    });
}

#[test]
fn queue_get_test_get_with_putters() {
    // CPython appends a bare future to `_putters`; here a real blocked putter: `get`
    // must wake it.
    util::run(async {
        let q = Queue::new(1);
        q.put(1).await.unwrap();
        let putter = {
            let q = q.clone();
            spawn(async move { q.put(2).await })
        };
        yield_now().await;
        assert!(!putter.is_finished());
        assert_eq!(q.get().await, Ok(1));
        assert_eq!(putter.await.unwrap(), Ok(()));
        assert_eq!(q.get_nowait(), Ok(2));
    });
}

#[test]
fn queue_get_test_blocking_get_wait() {
    util::run(async {
        let q = Queue::new(0);
        let started = ringloop::Event::new();
        let finished = Rc::new(Cell::new(false));
        let task = {
            let (q, s, f) = (q.clone(), started.clone(), finished.clone());
            spawn(async move {
                s.set();
                let res = q.get().await;
                f.set(true);
                res
            })
        };
        started.wait().await;
        assert!(!finished.get());
        let q2 = q.clone();
        ringloop::get_running_loop()
            .unwrap()
            .call_later(Duration::from_millis(10), move || {
                q2.put_nowait(1).unwrap();
            });
        let res = task.await.unwrap();
        assert!(finished.get());
        assert_eq!(res, Ok(1));
    });
}

#[test]
fn queue_get_test_nonblocking_get() {
    let q = Queue::new(0);
    q.put_nowait(1).unwrap();
    assert_eq!(q.get_nowait(), Ok(1));
}

#[test]
fn queue_get_test_nonblocking_get_exception() {
    let q: Queue<i32> = Queue::new(0);
    assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
}

#[test]
fn queue_get_test_get_cancelled_race() {
    util::run(async {
        let q = Queue::new(0);
        let get = |q: &Queue<&'static str>| {
            let q = q.clone();
            spawn(async move { q.get().await })
        };
        let (t1, t2) = (get(&q), get(&q));
        yield_now().await;
        t1.cancel();
        yield_now().await;
        assert!(t1.is_finished());
        q.put("a").await.unwrap();
        yield_now().await;
        assert_eq!(t2.await.unwrap(), Ok("a"));
        assert!(t1.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn queue_get_test_get_with_waiting_putters() {
    util::run(async {
        let q = Queue::new(1);
        for item in ["a", "b"] {
            let q = q.clone();
            spawn(async move { q.put(item).await.unwrap() });
        }
        assert_eq!(q.get().await, Ok("a"));
        assert_eq!(q.get().await, Ok("b"));
    });
}

#[test]
fn queue_get_test_why_are_getters_waiting() {
    util::run(async {
        let n = 5;
        let q = Queue::new(1);
        let producer = {
            let q = q.clone();
            spawn(async move {
                for i in 0..n {
                    q.put(i).await.unwrap();
                }
            })
        };
        let consumer = {
            let q = q.clone();
            spawn(async move {
                let mut got = Vec::new();
                for _ in 0..n {
                    got.push(q.get().await.unwrap());
                }
                got
            })
        };
        producer.await.unwrap();
        assert_eq!(consumer.await.unwrap(), [0, 1, 2, 3, 4]);
    });
}

#[test]
fn queue_get_test_cancelled_getters_not_being_held_in_self_getters() {
    util::run(async {
        let q: Queue<i32> = Queue::new(5);
        let r = ringloop::wait_for(q.get(), Duration::from_millis(20)).await;
        assert!(r.unwrap_err().is_timeout());
        assert!(!q.to_string().contains("_getters"), "{q}");
    });
}

// ---- QueuePutTests ----

#[test]
fn queue_put_test_blocking_put() {
    util::run(async {
        let q = Queue::new(0);
        // No maxsize: does not block.
        q.put(1).await.unwrap();
        assert_eq!(q.get().await, Ok(1));
    });
}

#[test]
fn queue_put_test_blocking_put_wait() {
    util::run(async {
        let q = Queue::new(1);
        let started = ringloop::Event::new();
        let finished = Rc::new(Cell::new(false));
        let q2 = q.clone();
        ringloop::get_running_loop()
            .unwrap()
            .call_later(Duration::from_millis(10), move || {
                q2.get_nowait().unwrap();
            });
        let task = {
            let (q, s, f) = (q.clone(), started.clone(), finished.clone());
            spawn(async move {
                s.set();
                q.put(1).await.unwrap();
                q.put(2).await.unwrap();
                f.set(true);
            })
        };
        started.wait().await;
        assert!(!finished.get());
        task.await.unwrap();
        assert!(finished.get());
        assert_eq!(q.get_nowait(), Ok(2));
    });
}

#[test]
fn queue_put_test_nonblocking_put() {
    let q = Queue::new(0);
    q.put_nowait(1).unwrap();
    assert_eq!(q.get_nowait(), Ok(1));
}

#[test]
fn queue_put_test_get_cancel_drop_one_pending_reader() {
    util::run(async {
        let q = Queue::new(0);
        let reader = {
            let q = q.clone();
            spawn(async move { q.get().await })
        };
        yield_now().await;
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        reader.cancel();
        let result = match reader.await {
            Ok(r) => r,
            Err(e) => {
                assert!(e.is_cancelled());
                // Try again.
                let q = q.clone();
                spawn(async move { q.get().await }).await.unwrap()
            }
        };
        // 2 would mean 1 got dropped.
        assert_eq!(result, Ok(1));
    });
}

#[test]
fn queue_put_test_get_cancel_drop_many_pending_readers() {
    util::run(async {
        let q = Queue::new(0);
        let reader = || {
            let q = q.clone();
            spawn(async move { q.get().await.unwrap() })
        };
        let (reader1, reader2, reader3) = (reader(), reader(), reader());
        yield_now().await;
        q.put_nowait(1).unwrap();
        q.put_nowait(2).unwrap();
        reader1.cancel();
        assert!(reader1.await.unwrap_err().is_cancelled());
        let r3 = reader3.await.unwrap();
        let r2 = reader2.await.unwrap();
        // Which concurrent reader gets which item is not defined.
        let mut got = [r2, r3];
        got.sort();
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn queue_put_test_put_cancel_drop() {
    util::run(async {
        let q = Queue::new(1);
        q.put_nowait(1).unwrap();
        // A second put has to block (qsize 1).
        let writer = {
            let q = q.clone();
            spawn(async move { q.put(2).await })
        };
        yield_now().await;
        assert_eq!(q.get_nowait(), Ok(1));
        writer.cancel();
        if let Err(e) = writer.await {
            assert!(e.is_cancelled());
            // Try again.
            let q = q.clone();
            spawn(async move { q.put(2).await }).await.unwrap().unwrap();
        }
        assert_eq!(q.get_nowait(), Ok(2));
        assert_eq!(q.qsize(), 0);
    });
}

#[test]
fn queue_put_test_nonblocking_put_exception() {
    let q = Queue::new(1);
    q.put_nowait(1).unwrap();
    assert_eq!(q.put_nowait(2), Err(TryPutError::Full(2)));
}

#[test]
fn queue_put_test_put_cancelled() {
    util::run(async {
        let q = Queue::new(0);
        let t = {
            let q = q.clone();
            spawn(async move {
                q.put(1).await.unwrap();
                true
            })
        };
        assert_eq!(q.get().await, Ok(1));
        assert!(t.is_finished());
        assert!(t.await.unwrap());
    });
}

#[test]
fn queue_put_test_put_cancelled_race() {
    util::run(async {
        let q = Queue::new(1);
        let put = |item| {
            let q = q.clone();
            spawn(async move { q.put(item).await })
        };
        let (put_a, put_b, put_c) = (put("a"), put("b"), put("X"));
        yield_now().await;
        assert!(put_a.is_finished());
        assert!(!put_b.is_finished());
        put_c.cancel();
        yield_now().await;
        assert!(put_c.is_finished());
        assert_eq!(q.get_nowait(), Ok("a"));
        yield_now().await;
        assert_eq!(q.get_nowait(), Ok("b"));
        put_b.await.unwrap().unwrap();
        assert!(put_c.await.unwrap_err().is_cancelled());
        assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
    });
}

#[test]
fn queue_put_test_put_with_waiting_getters() {
    util::run(async {
        let q = Queue::new(0);
        let t = {
            let q = q.clone();
            spawn(async move { q.get().await })
        };
        yield_now().await;
        q.put("a").await.unwrap();
        assert_eq!(t.await.unwrap(), Ok("a"));
    });
}

#[test]
fn queue_put_test_why_are_putters_waiting() {
    util::run(async {
        let q = Queue::new(2);
        let getter = {
            let q = q.clone();
            spawn(async move {
                yield_now().await;
                for _ in 0..q.qsize() {
                    q.get_nowait().unwrap();
                }
            })
        };
        let putters: Vec<_> = (0..4)
            .map(|i| {
                let q = q.clone();
                spawn(async move { q.put(i).await.unwrap() })
            })
            .collect();
        getter.await.unwrap();
        for p in putters {
            p.await.unwrap();
        }
        assert_eq!(q.qsize(), 2);
    });
}

#[test]
fn queue_put_test_cancelled_puts_not_being_held_in_self_putters() {
    util::run(async {
        let q = Queue::new(1);
        q.put_nowait(1).unwrap();
        let put_task = {
            let q = q.clone();
            spawn(async move { q.put(1).await })
        };
        yield_now().await;
        assert!(q.to_string().contains("_putters[1]"), "{q}");
        put_task.cancel();
        assert!(put_task.await.unwrap_err().is_cancelled());
        assert!(!q.to_string().contains("_putters"), "{q}");
    });
}

#[test]
fn queue_put_test_cancelled_put_silence_value_error_exception() {
    util::run(async {
        let q = Queue::new(1);
        q.put_nowait(1).unwrap();
        let put_task = {
            let q = q.clone();
            spawn(async move { q.put(1).await })
        };
        yield_now().await;
        // get_nowait pops the putter; its cancel then finds nothing to remove.
        q.get_nowait().unwrap();
        put_task.cancel();
        assert!(put_task.await.unwrap_err().is_cancelled());
        assert!(q.empty());
    });
}

// ---- LifoQueueTests, PriorityQueueTests ----

#[test]
fn lifo_queue_test_order() {
    util::run(async {
        let q = LifoQueue::new(0);
        for i in [1, 3, 2] {
            q.put(i).await.unwrap();
        }
        let mut items = Vec::new();
        for _ in 0..3 {
            items.push(q.get().await.unwrap());
        }
        assert_eq!(items, [2, 3, 1]);
    });
}

#[test]
fn priority_queue_test_order() {
    util::run(async {
        let q = PriorityQueue::new(0);
        for i in [1, 3, 2] {
            q.put(i).await.unwrap();
        }
        let mut items = Vec::new();
        for _ in 0..3 {
            items.push(q.get().await.unwrap());
        }
        assert_eq!(items, [1, 2, 3]);
    });
}

// ---- _QueueJoinTestMixin (Queue, LifoQueue, PriorityQueue) ----

async fn test_task_done_underflow<S: Store<Item = i64>>() {
    let q = GenericQueue::<S>::new(0);
    assert_eq!(q.task_done(), Err(TaskDoneTooMany));
}

async fn test_task_done<S: Store<Item = i64> + 'static>() {
    let q = GenericQueue::<S>::new(0);
    for i in 0..100 {
        q.put_nowait(i).unwrap();
    }
    let accumulator = Rc::new(Cell::new(0));
    let running = Rc::new(Cell::new(true));
    // Two workers get items and call task_done after each; join waits for all.
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (q, acc, running) = (q.clone(), accumulator.clone(), running.clone());
            spawn(async move {
                while running.get() {
                    let item = q.get().await.unwrap();
                    acc.set(acc.get() + item);
                    q.task_done().unwrap();
                }
            })
        })
        .collect();
    q.join().await;
    assert_eq!(accumulator.get(), (0..100).sum::<i64>());
    // Stop the workers.
    running.set(false);
    for _ in 0..workers.len() {
        q.put_nowait(0).unwrap();
    }
    for w in workers {
        w.await.unwrap();
    }
}

async fn test_join_empty_queue<S: Store<Item = i64>>() {
    let q = GenericQueue::<S>::new(0);
    // join returns at once, twice.
    q.join().await;
    q.join().await;
}

async fn test_format<S: Store<Item = i64>>() {
    let q = GenericQueue::<S>::new(0);
    assert_eq!(q.to_string(), format!("<{} maxsize=0>", S::NAME));
    // CPython sets `_unfinished_tasks = 2`; here two items are put and taken.
    q.put_nowait(1).unwrap();
    q.put_nowait(2).unwrap();
    q.get_nowait().unwrap();
    q.get_nowait().unwrap();
    assert_eq!(q.to_string(), format!("<{} maxsize=0 tasks=2>", S::NAME));
}

macro_rules! mixin {
    ($module:ident, $store:ty, [$($case:ident),* $(,)?]) => {
        mod $module {
            use super::*;
            $(
                #[test]
                fn $case() {
                    util::run(super::$case::<$store>());
                }
            )*
        }
    };
}

mixin!(
    queue_join_tests,
    Fifo<i64>,
    [
        test_task_done_underflow,
        test_task_done,
        test_join_empty_queue,
        test_format
    ]
);
mixin!(
    lifo_queue_join_tests,
    Lifo<i64>,
    [
        test_task_done_underflow,
        test_task_done,
        test_join_empty_queue,
        test_format
    ]
);
mixin!(
    priority_queue_join_tests,
    Priority<i64>,
    [
        test_task_done_underflow,
        test_task_done,
        test_join_empty_queue,
        test_format
    ]
);

// ---- _QueueShutdownTestMixin (Queue, LifoQueue, PriorityQueue) ----

type Data = &'static str;

/// Every put and get fails as on a shut-down, empty queue.
async fn assert_shut_down<S: Store<Item = Data>>(q: &GenericQueue<S>) {
    assert_eq!(q.put("data").await, Err(QueueShutDown("data")));
    assert_eq!(q.put_nowait("data"), Err(TryPutError::ShutDown("data")));
    assert_eq!(q.get().await, Err(QueueShutDown(())));
    assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
}

async fn test_shutdown_format<S: Store<Item = Data>>() {
    let q = GenericQueue::<S>::new(0);
    q.shutdown(false);
    assert_eq!(q.to_string(), format!("<{} maxsize=0 shutdown>", S::NAME));
}

async fn test_shutdown_empty<S: Store<Item = Data> + 'static>() {
    let q = GenericQueue::<S>::new(0);
    let get_task = {
        let q = q.clone();
        spawn(async move { q.get().await })
    };
    yield_now().await; // the get is pending before the shutdown
    q.shutdown(false); // unfinished tasks: 0 -> 0
    assert_eq!(q.qsize(), 0);
    q.join().await;
    yield_now().await;
    assert!(get_task.is_finished());
    assert_eq!(get_task.await.unwrap(), Err(QueueShutDown(())));
    assert_shut_down(&q).await;
}

async fn test_shutdown_nonempty<S: Store<Item = Data> + 'static>() {
    let q = GenericQueue::<S>::new(1);
    q.put_nowait("data").unwrap();
    let join_task = {
        let q = q.clone();
        spawn(async move { q.join().await })
    };
    let put_task = {
        let q = q.clone();
        spawn(async move { q.put("data2").await })
    };
    yield_now().await;
    assert!(!put_task.is_finished());
    q.shutdown(false); // unfinished tasks: 1 -> 1
    assert_eq!(q.qsize(), 1);
    yield_now().await;
    assert!(put_task.is_finished());
    // The blocked put fails, giving its item back.
    assert_eq!(put_task.await.unwrap(), Err(QueueShutDown("data2")));
    // A get still takes the queued item.
    assert_eq!(q.get().await, Ok("data"));
    yield_now().await;
    assert!(!join_task.is_finished());
    assert_shut_down(&q).await;
    // One unfinished task: marking it done ends the join.
    q.task_done().unwrap();
    yield_now().await;
    assert!(join_task.is_finished());
    join_task.await.unwrap();
    assert_eq!(q.task_done(), Err(TaskDoneTooMany));
}

async fn test_shutdown_immediate<S: Store<Item = Data> + 'static>() {
    let q = GenericQueue::<S>::new(0);
    q.put_nowait("data").unwrap();
    let join_task = {
        let q = q.clone();
        spawn(async move { q.join().await })
    };
    q.shutdown(true); // unfinished tasks: 1 -> 0
    assert_eq!(q.qsize(), 0);
    yield_now().await;
    assert!(join_task.is_finished());
    join_task.await.unwrap();
    assert_shut_down(&q).await;
    assert_eq!(q.task_done(), Err(TaskDoneTooMany));
}

async fn test_shutdown_immediate_with_unfinished<S: Store<Item = Data> + 'static>() {
    let q = GenericQueue::<S>::new(0);
    q.put_nowait("data").unwrap();
    q.put_nowait("data").unwrap();
    let join_task = {
        let q = q.clone();
        spawn(async move { q.join().await })
    };
    assert_eq!(q.get().await, Ok("data"));
    q.shutdown(true); // unfinished tasks: 2 -> 1
    assert_eq!(q.qsize(), 0);
    yield_now().await;
    assert!(!join_task.is_finished());
    assert_shut_down(&q).await;
    q.task_done().unwrap();
    assert_eq!(q.task_done(), Err(TaskDoneTooMany));
    yield_now().await;
    assert!(join_task.is_finished());
    join_task.await.unwrap();
}

mixin!(
    queue_shutdown_tests,
    Fifo<Data>,
    [
        test_shutdown_format,
        test_shutdown_empty,
        test_shutdown_nonempty,
        test_shutdown_immediate,
        test_shutdown_immediate_with_unfinished,
    ]
);
mixin!(
    lifo_queue_shutdown_tests,
    Lifo<Data>,
    [
        test_shutdown_format,
        test_shutdown_empty,
        test_shutdown_nonempty,
        test_shutdown_immediate,
        test_shutdown_immediate_with_unfinished,
    ]
);
mixin!(
    priority_queue_shutdown_tests,
    Priority<Data>,
    [
        test_shutdown_format,
        test_shutdown_empty,
        test_shutdown_nonempty,
        test_shutdown_immediate,
        test_shutdown_immediate_with_unfinished,
    ]
);

// ---- Rust only ----

#[test]
fn put_nowait_full_gives_the_item_back() {
    let q = Queue::new(1);
    q.put_nowait(vec![1u8, 2, 3]).unwrap();
    let err = q.put_nowait(vec![4, 5]).unwrap_err();
    assert!(err.is_full() && !err.is_shut_down());
    assert_eq!(err.into_inner(), [4, 5]);
    q.shutdown(false);
    let err = q.put_nowait(vec![6]).unwrap_err();
    assert!(err.is_shut_down());
    assert_eq!(err.into_inner(), [6]);
    // The queued item still comes out after a non-immediate shutdown.
    assert_eq!(q.get_nowait(), Ok(vec![1, 2, 3]));
    assert_eq!(q.get_nowait(), Err(TryGetError::ShutDown));
}

#[test]
fn errors_convert_into_ringloop_error() {
    fn put_full(q: &Queue<Rc<i32>>) -> Result<(), ringloop::Error> {
        // The item is not Send; `?` still converts (dropping the item).
        q.put_nowait(Rc::new(2))?;
        Ok(())
    }
    fn get_empty(q: &Queue<Rc<i32>>) -> Result<Rc<i32>, ringloop::Error> {
        Ok(q.get_nowait()?)
    }
    let q = Queue::new(1);
    q.put_nowait(Rc::new(1)).unwrap();
    let e = put_full(&q).unwrap_err();
    assert_eq!(e.to_string(), "the queue is full", "{e:?}");
    q.get_nowait().unwrap();
    let e = get_empty(&q).unwrap_err();
    assert_eq!(e.to_string(), "the queue is empty");
    assert!(q.task_done().is_ok());
    let e: ringloop::Error = q.task_done().unwrap_err().into();
    assert_eq!(e.to_string(), "task_done() called too many times");
    q.shutdown(false);
    let r = util::run({
        let q = q.clone();
        async move {
            q.put(Rc::new(3)).await?;
            Ok::<_, ringloop::Error>(())
        }
    });
    assert_eq!(r.unwrap_err().to_string(), "the queue is shut down");
}

#[test]
fn shutdown_immediate_drops_the_items() {
    let item = Rc::new(7);
    let q = PriorityQueue::new(0);
    for _ in 0..3 {
        q.put_nowait(item.clone()).unwrap();
    }
    assert_eq!(Rc::strong_count(&item), 4);
    q.shutdown(true);
    assert_eq!(Rc::strong_count(&item), 1);
    assert!(q.empty());
}

#[test]
fn woken_putter_dropped_passes_the_wakeup_on() {
    // A putter woken by get_nowait and then cancelled before it ran: the free slot goes
    // to the next putter (CPython's `_wakeup_next(self._putters)` in put's except).
    util::run(async {
        let q = Queue::new(1);
        q.put_nowait(0).unwrap();
        let put = |i| {
            let q = q.clone();
            spawn(async move { q.put(i).await })
        };
        let (a, b) = (put(1), put(2));
        yield_now().await;
        assert_eq!(q.get_nowait(), Ok(0)); // wakes a
        a.cancel();
        assert!(a.await.unwrap_err().is_cancelled());
        b.await.unwrap().unwrap();
        assert_eq!(q.get_nowait(), Ok(2));
        assert!(q.empty());
    });
}

#[test]
fn shutdown_wakes_every_blocked_putter_and_getter() {
    util::run(async {
        let full = Queue::new(1);
        full.put_nowait(0).unwrap();
        let putters: Vec<_> = (1..=3)
            .map(|i| {
                let q = full.clone();
                spawn(async move { q.put(i).await })
            })
            .collect();
        let empty: Queue<i32> = Queue::new(0);
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let q = empty.clone();
                spawn(async move { q.get().await })
            })
            .collect();
        yield_now().await;
        full.shutdown(false);
        empty.shutdown(false);
        for (i, p) in putters.into_iter().enumerate() {
            assert_eq!(p.await.unwrap(), Err(QueueShutDown(i as i32 + 1)));
        }
        for g in getters {
            assert_eq!(g.await.unwrap(), Err(QueueShutDown(())));
        }
        assert_eq!(full.get_nowait(), Ok(0));
    });
}
