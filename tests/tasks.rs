//! Tasks and their helpers, ASYNCIO_SEMANTICS.md rule 9: the first step runs through the
//! ready queue, cancellation, panics, `sleep(0)`, `gather`, `wait`, `wait_for`/`timeout`,
//! `as_completed`.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::{
    Error, EventLoop, ExceptionContext, Future, ReturnWhen, as_completed, gather, sleep, spawn,
    timeout, wait, wait_for,
};
use util::capture_reports;

/// Sets a flag when dropped: shows a future's destructor ran.
struct DropFlag(Rc<Cell<bool>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn the_first_step_runs_through_the_ready_queue_not_inside_create_task() {
    let l = EventLoop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    let h = l.create_task(async move { o.borrow_mut().push("task") });
    assert!(order.borrow().is_empty(), "create_task ran the task inline");
    assert!(!h.is_finished());
    let o = order.clone();
    l.call_soon(move || o.borrow_mut().push("callback scheduled after"));
    l.stop();
    l.run_forever().unwrap();
    // FIFO with callbacks: the task's first step was queued first.
    assert_eq!(*order.borrow(), vec!["task", "callback scheduled after"]);
    assert!(h.is_finished());
    l.close().unwrap();
}

#[test]
fn spawn_inside_a_task_does_not_run_inline() {
    let out = ringloop::run(async {
        let flag = Rc::new(Cell::new(false));
        let f = flag.clone();
        let h = spawn(async move { f.set(true) });
        let inline = flag.get();
        h.await.unwrap();
        (inline, flag.get())
    })
    .unwrap();
    assert_eq!(out, (false, true));
}

#[test]
fn cancel_gives_cancelled_and_runs_the_futures_destructor() {
    let l = EventLoop::new().unwrap();
    let dropped = Rc::new(Cell::new(false));
    let out = l
        .run_until_complete({
            let dropped = dropped.clone();
            async move {
                let guard = DropFlag(dropped.clone());
                let h = spawn(async move {
                    let _guard = guard;
                    sleep(Duration::from_secs(30)).await;
                    "finished"
                });
                sleep(Duration::from_millis(1)).await;
                assert!(!dropped.get());
                assert!(h.cancel());
                assert!(!h.cancel(), "a second cancel reports false");
                let started = Instant::now();
                let r = h.await;
                (r, started.elapsed())
            }
        })
        .unwrap();
    assert!(matches!(out.0, Err(Error::Cancelled)), "{:?}", out.0);
    assert!(
        out.1 < Duration::from_secs(5),
        "cancel must not wait the sleep out"
    );
    assert!(dropped.get(), "the cancelled future was not dropped");
    // No timer left behind by the dropped sleep keeps the loop busy.
    l.close().unwrap();
}

#[test]
fn cancel_before_the_first_step_never_polls_the_future() {
    let out = ringloop::run(async {
        let polled = Rc::new(Cell::new(false));
        let p = polled.clone();
        let h = spawn(async move { p.set(true) });
        assert!(h.cancel());
        (h.await.is_err_and(|e| e.is_cancelled()), polled.get())
    })
    .unwrap();
    assert_eq!(out, (true, false));
}

#[test]
fn cancel_after_finish_returns_false() {
    let out = ringloop::run(async {
        let h = spawn(async { 1 });
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        (h.is_finished(), h.cancel(), h.await.unwrap())
    })
    .unwrap();
    assert_eq!(out, (true, false, 1));
}

#[test]
fn a_panicking_task_gives_err_panic_and_the_loop_continues() {
    let l = EventLoop::new().unwrap();
    let reports = capture_reports(&l);
    let out = l
        .run_until_complete(async {
            let bad = spawn(async {
                sleep(Duration::from_millis(1)).await;
                panic!("task exploded");
            });
            let good = spawn(async {
                sleep(Duration::from_millis(5)).await;
                "still here"
            });
            (bad.await, good.await)
        })
        .unwrap();
    match out.0 {
        Err(Error::Panic(msg)) => assert!(msg.contains("task exploded"), "{msg}"),
        other => panic!("expected Error::Panic, got {other:?}"),
    }
    assert_eq!(out.1.unwrap(), "still here");
    assert!(
        reports.borrow().is_empty(),
        "an awaited panic is not reported twice"
    );
    l.close().unwrap();
}

#[test]
fn a_detached_panicking_task_is_reported() {
    let l = EventLoop::new().unwrap();
    let reports = capture_reports(&l);
    l.run_until_complete(async {
        drop(spawn(async { panic!("nobody listens") }));
        sleep(Duration::from_millis(2)).await;
    })
    .unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(matches!(&reports[0].error, Some(Error::Panic(m)) if m.contains("nobody listens")));
    drop(reports);
    l.close().unwrap();
}

#[test]
fn a_panicking_callback_is_reported_and_the_loop_continues() {
    let l = EventLoop::new().unwrap();
    let reports = capture_reports(&l);
    let after = Rc::new(Cell::new(0));
    l.call_soon(|| panic!("callback exploded"));
    let a = after.clone();
    l.call_soon(move || a.set(a.get() + 1));
    l.call_later(Duration::from_millis(1), || panic!("timer exploded"));
    let (a, l2) = (after.clone(), l.clone());
    l.call_later(Duration::from_millis(5), move || {
        a.set(a.get() + 1);
        l2.stop();
    });
    l.run_forever().unwrap();
    assert_eq!(after.get(), 2);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(matches!(&reports[0].error, Some(Error::Panic(m)) if m.contains("callback exploded")));
    assert!(matches!(&reports[1].error, Some(Error::Panic(m)) if m.contains("timer exploded")));
    drop(reports);
    // The loop still runs tasks afterwards.
    assert_eq!(l.run_until_complete(async { 3 }).unwrap(), 3);
    l.close().unwrap();
}

#[test]
fn a_panicking_exception_handler_does_not_kill_the_loop() {
    let l = EventLoop::new().unwrap();
    l.set_exception_handler(Some(|_: &EventLoop, _: &ExceptionContext| {
        panic!("the handler itself panics")
    }));
    let ok = Rc::new(Cell::new(false));
    l.call_soon(|| panic!("first"));
    let o = ok.clone();
    l.call_soon(move || o.set(true));
    l.stop();
    l.run_forever().unwrap();
    assert!(ok.get());
    l.close().unwrap();
}

#[test]
fn run_until_complete_resumes_the_futures_panic() {
    let l = EventLoop::new().unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        l.run_until_complete(async { panic!("main panicked") })
    }));
    assert!(caught.is_err());
    assert!(
        !l.is_running(),
        "the loop's state is restored after the panic"
    );
    assert_eq!(l.run_until_complete(async { 1 }).unwrap(), 1);
    l.close().unwrap();
}

#[test]
fn sleep_zero_yields_exactly_one_iteration() {
    let l = EventLoop::new().unwrap();
    let out = l
        .run_until_complete(async {
            let l = ringloop::get_running_loop().unwrap();
            let mut steps = Vec::new();
            for _ in 0..5 {
                let before = l.iterations();
                sleep(Duration::ZERO).await;
                steps.push(l.iterations() - before);
            }
            steps
        })
        .unwrap();
    assert_eq!(out, vec![1; 5]);
    l.close().unwrap();
}

#[test]
fn sleep_zero_lets_other_tasks_interleave() {
    let out = ringloop::run(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mk = |name: &'static str| {
            let log = log.clone();
            spawn(async move {
                for i in 0..3 {
                    log.borrow_mut().push(format!("{name}{i}"));
                    sleep(Duration::ZERO).await;
                }
            })
        };
        let (a, b) = (mk("a"), mk("b"));
        a.await.unwrap();
        b.await.unwrap();
        log.take()
    })
    .unwrap();
    assert_eq!(out, vec!["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn sleep_never_returns_early() {
    ringloop::run(async {
        for ms in [1u64, 3, 10, 20] {
            let d = Duration::from_millis(ms);
            let started = Instant::now();
            sleep(d).await;
            let took = started.elapsed();
            assert!(took >= d, "sleep({d:?}) returned after {took:?}");
        }
    })
    .unwrap();
}

#[test]
fn gather_keeps_argument_order() {
    let out = ringloop::run(async {
        // Finishing order is the reverse of argument order.
        gather((0..10u64).map(|i| async move {
            sleep(Duration::from_millis(2 * (10 - i))).await;
            i
        }))
        .await
    })
    .unwrap()
    .unwrap();
    assert_eq!(out, (0..10).collect::<Vec<_>>());
}

#[test]
fn gather_reports_a_failure_after_all_finished() {
    let out = ringloop::run(async {
        let finished = Rc::new(Cell::new(0));
        let futs = (0..4u32).map(|i| {
            let finished = finished.clone();
            async move {
                sleep(Duration::from_millis(u64::from(i))).await;
                finished.set(finished.get() + 1);
                if i == 1 {
                    panic!("one of them fails");
                }
                i
            }
        });
        let r = gather(futs).await;
        (r, finished.get())
    })
    .unwrap();
    assert!(matches!(out.0, Err(Error::Panic(_))), "{:?}", out.0);
    assert_eq!(out.1, 4);
}

#[test]
fn wait_never_errors_on_timeout_and_returns_the_pending_set() {
    let out = ringloop::run(async {
        let handles = vec![
            spawn(async {
                sleep(Duration::from_millis(1)).await;
                1
            }),
            spawn(async {
                sleep(Duration::from_secs(30)).await;
                2
            }),
            spawn(async {
                sleep(Duration::from_secs(30)).await;
                3
            }),
        ];
        let started = Instant::now();
        let (done, pending) = wait(
            handles,
            Some(Duration::from_millis(30)),
            ReturnWhen::AllCompleted,
        )
        .await;
        let took = started.elapsed();
        let pending_alive = pending.iter().all(|h| !h.is_finished());
        for h in &pending {
            h.cancel();
        }
        let mut done_values = Vec::new();
        for h in done {
            done_values.push(h.await.unwrap());
        }
        (done_values, pending.len(), pending_alive, took)
    })
    .unwrap();
    assert_eq!(out.0, vec![1]);
    assert_eq!(out.1, 2);
    assert!(out.2, "wait must not cancel the pending tasks");
    assert!(out.3 >= Duration::from_millis(30), "{:?}", out.3);
}

#[test]
fn wait_first_completed_and_first_exception() {
    ringloop::run(async {
        let mk = |ms: u64, fail: bool| {
            spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                if fail {
                    panic!("fails at {ms}");
                }
                ms
            })
        };
        let (done, pending) = wait(
            vec![mk(30_000, false), mk(2, false), mk(30_000, false)],
            None,
            ReturnWhen::FirstCompleted,
        )
        .await;
        assert_eq!(done.len(), 1);
        assert_eq!(pending.len(), 2);
        for h in pending {
            assert!(h.cancel());
        }
        let (done, pending) = wait(
            vec![mk(30_000, false), mk(2, true), mk(1, false)],
            None,
            ReturnWhen::FirstException,
        )
        .await;
        assert_eq!(done.len(), 2, "the failure and the one finished before it");
        assert!(done.iter().any(|h| h.failed()));
        assert_eq!(pending.len(), 1);
        assert!(pending[0].cancel());
        let (done, pending) = wait(
            vec![mk(3, false), mk(1, false)],
            None,
            ReturnWhen::AllCompleted,
        )
        .await;
        assert_eq!((done.len(), pending.len()), (2, 0));
    })
    .unwrap();
}

#[test]
fn wait_for_drops_the_inner_future_on_timeout() {
    let out = ringloop::run(async {
        let dropped = Rc::new(Cell::new(false));
        let guard = DropFlag(dropped.clone());
        let started = Instant::now();
        let r = wait_for(
            async move {
                let _guard = guard;
                sleep(Duration::from_secs(30)).await;
                1
            },
            Duration::from_millis(10),
        )
        .await;
        (r, dropped.get(), started.elapsed())
    })
    .unwrap();
    assert!(matches!(out.0, Err(Error::Timeout)), "{:?}", out.0);
    assert!(
        out.1,
        "the inner future must be dropped by the time the timeout returns"
    );
    assert!(out.2 >= Duration::from_millis(10));
}

#[test]
fn timeout_passes_a_result_that_arrives_in_time() {
    let out = ringloop::run(async {
        let quick = timeout(Duration::from_secs(10), async {
            sleep(Duration::from_millis(1)).await;
            5
        })
        .await;
        // A ready result wins over an expired deadline.
        let ready = timeout(Duration::ZERO, async { 6 }).await;
        (quick, ready)
    })
    .unwrap();
    assert_eq!(out.0.unwrap(), 5);
    assert_eq!(out.1.unwrap(), 6);
}

#[test]
fn wait_for_a_task_cancelled_by_hand_on_timeout() {
    // With a JoinHandle, the Rust shape of asyncio's "wait_for cancels the task" is
    // explicit: cancel on timeout, then await the handle to let it finish.
    let out = ringloop::run(async {
        let dropped = Rc::new(Cell::new(false));
        let guard = DropFlag(dropped.clone());
        let h = spawn(async move {
            let _guard = guard;
            sleep(Duration::from_secs(30)).await;
        });
        let r = timeout(Duration::from_millis(5), async {
            while !h.is_finished() {
                sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(r.is_err());
        h.cancel();
        (h.await, dropped.get())
    })
    .unwrap();
    assert!(matches!(out.0, Err(Error::Cancelled)));
    assert!(out.1);
}

#[test]
fn as_completed_yields_in_finishing_order() {
    let out = ringloop::run(async {
        let delays = [30u64, 5, 20, 1, 10];
        let handles = delays
            .iter()
            .map(|&ms| {
                spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    ms
                })
            })
            .collect();
        let mut it = as_completed(handles);
        let mut got = Vec::new();
        while let Some(r) = it.next().await {
            got.push(r.unwrap());
            assert_eq!(it.remaining(), delays.len() - got.len());
        }
        got
    })
    .unwrap();
    assert_eq!(out, vec![1, 5, 10, 20, 30]);
}

#[test]
fn ensure_future_and_create_task_are_spawn() {
    let out = ringloop::run(async {
        let a = ringloop::create_task(async { 1 });
        let b = ringloop::ensure_future(async { 2 });
        a.await.unwrap() + b.await.unwrap()
    })
    .unwrap();
    assert_eq!(out, 3);
}

#[test]
fn run_cancels_leftover_tasks_and_closes_its_loop() {
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let leftover_loop = ringloop::run(async move {
        let guard = DropFlag(d);
        spawn(async move {
            let _guard = guard;
            sleep(Duration::from_secs(30)).await;
        });
        ringloop::get_running_loop().unwrap()
    })
    .unwrap();
    assert!(dropped.get(), "run() left a task alive");
    assert!(leftover_loop.is_closed());
}

#[test]
fn tasks_awaiting_futures_set_from_callbacks() {
    let out = ringloop::run(async {
        let l = ringloop::get_running_loop().unwrap();
        let futs: Vec<Future<usize>> = (0..50).map(|_| Future::new()).collect();
        for (i, f) in futs.iter().enumerate().rev() {
            let f = f.clone();
            l.call_later(Duration::from_millis((i % 7) as u64), move || {
                f.set_result(i).unwrap()
            });
        }
        let handles: Vec<_> = futs
            .into_iter()
            .map(|f| spawn(async move { f.await.unwrap() }))
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    })
    .unwrap();
    assert_eq!(out, (0..50).sum::<usize>());
}

/// Spawns a clean-up task on its loop when dropped.
struct SpawnOnDrop(EventLoop, Rc<Cell<u32>>);
impl Drop for SpawnOnDrop {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
        let h = self.0.create_task(async {});
        drop(h);
    }
}

#[test]
fn a_future_whose_destructor_spawns_can_be_dropped_by_the_loop() {
    // Dropped by cancellation, by close, and by create_task on a closed loop.
    let l = EventLoop::new().unwrap();
    let drops = Rc::new(Cell::new(0));
    let guard = SpawnOnDrop(l.clone(), drops.clone());
    let cancelled = l.create_task(async move {
        let _guard = guard;
        sleep(Duration::from_secs(30)).await;
    });
    let guard = SpawnOnDrop(l.clone(), drops.clone());
    l.create_task(async move {
        let _guard = guard;
        sleep(Duration::from_secs(30)).await;
    });
    l.stop();
    l.run_forever().unwrap();
    cancelled.cancel();
    l.stop();
    l.run_forever().unwrap();
    assert_eq!(drops.get(), 1);
    l.close().unwrap();
    assert_eq!(drops.get(), 2);
    let guard = SpawnOnDrop(l.clone(), drops.clone());
    let h = l.create_task(async move {
        let _guard = guard;
    });
    assert_eq!(drops.get(), 3);
    assert!(
        h.is_finished() && h.failed(),
        "a task on a closed loop is cancelled"
    );
}

#[test]
fn as_completed_keeps_finishing_order_of_tasks_that_finished_before_it_looked() {
    let out = ringloop::run(async {
        // Argument order: slow, quick. Both finish before as_completed is first polled.
        let slow = spawn(async {
            for _ in 0..3 {
                sleep(Duration::ZERO).await;
            }
            "slow"
        });
        let quick = spawn(async { "quick" });
        for _ in 0..6 {
            sleep(Duration::ZERO).await;
        }
        assert!(slow.is_finished() && quick.is_finished());
        let mut it = as_completed(vec![slow, quick]);
        let mut got = Vec::new();
        while let Some(r) = it.next().await {
            got.push(r.unwrap());
        }
        got
    })
    .unwrap();
    assert_eq!(out, vec!["quick", "slow"]);
}
