//! The loop's contract, ASYNCIO_SEMANTICS.md rules 1–5: ordering of callbacks and timers,
//! the one-iteration rule, `stop`, `run_*` re-entrancy, `close`, and cancelled handles.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ringloop::{Error, EventLoop};

type Log<T> = Rc<RefCell<Vec<T>>>;

fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

fn push<T: 'static>(log: &Log<T>, v: T) -> impl FnOnce() + 'static {
    let log = log.clone();
    move || log.borrow_mut().push(v)
}

#[test]
fn call_soon_is_fifo() {
    let l = EventLoop::new().unwrap();
    let got = log();
    for i in 0..1000 {
        l.call_soon(push(&got, i));
    }
    l.stop();
    l.run_forever().unwrap();
    assert_eq!(*got.borrow(), (0..1000).collect::<Vec<_>>());
    l.close().unwrap();
}

#[test]
fn equal_deadlines_keep_insertion_order() {
    let l = EventLoop::new().unwrap();
    let got = log();
    let when = l.time() + Duration::from_millis(5);
    for i in 0..100 {
        l.call_at(when, push(&got, i));
    }
    let l2 = l.clone();
    l.call_at(when + Duration::from_millis(1), move || l2.stop());
    l.run_forever().unwrap();
    assert_eq!(*got.borrow(), (0..100).collect::<Vec<_>>());
    l.close().unwrap();
}

#[test]
fn past_deadlines_run_earliest_first() {
    let l = EventLoop::new().unwrap();
    let got = log();
    let now = l.time();
    l.call_at(now - Duration::from_secs(1), push(&got, "a"));
    l.call_at(now - Duration::from_secs(2), push(&got, "b"));
    l.stop();
    l.run_forever().unwrap();
    assert_eq!(*got.borrow(), vec!["b", "a"]);
    l.close().unwrap();
}

#[test]
fn call_later_zero_runs_in_the_next_iteration_after_call_soon() {
    let l = EventLoop::new().unwrap();
    let got = log();
    l.call_later(Duration::ZERO, push(&got, "timer"));
    l.call_soon(push(&got, "soon"));
    let l2 = l.clone();
    l.call_later(Duration::from_millis(1), move || l2.stop());
    l.run_forever().unwrap();
    // Both run in the first iteration: due timers join the batch after the ready queue.
    assert_eq!(*got.borrow(), vec!["soon", "timer"]);
    l.close().unwrap();
}

#[test]
fn a_callback_scheduled_during_an_iteration_runs_in_the_next_one() {
    let l = EventLoop::new().unwrap();
    let seen: Log<(&str, u64)> = log();
    {
        let (l2, seen2) = (l.clone(), seen.clone());
        l.call_soon(move || {
            seen2.borrow_mut().push(("outer", l2.iterations()));
            let (l3, seen3) = (l2.clone(), seen2.clone());
            l2.call_soon(move || {
                seen3.borrow_mut().push(("inner", l3.iterations()));
                l3.stop();
            });
            // A timer already due, scheduled now, also waits for the next iteration.
            let (l4, seen4) = (l2.clone(), seen2.clone());
            l2.call_later(Duration::ZERO, move || {
                seen4.borrow_mut().push(("timer", l4.iterations()));
            });
        });
        let (l2, seen2) = (l.clone(), seen.clone());
        l.call_soon(move || seen2.borrow_mut().push(("sibling", l2.iterations())));
    }
    l.run_forever().unwrap();
    let seen = seen.borrow();
    let first = seen[0].1;
    assert_eq!(
        *seen,
        vec![
            ("outer", first),
            ("sibling", first),
            ("inner", first + 1),
            ("timer", first + 1)
        ]
    );
    l.close().unwrap();
}

#[test]
fn stop_before_run_forever_runs_one_iteration_without_blocking() {
    let l = EventLoop::new().unwrap();
    let got = log();
    l.call_soon(push(&got, 1));
    // This timer is far away: run_forever must not wait for it.
    let far = l.call_later(Duration::from_secs(30), push(&got, 99));
    l.stop();
    let before = l.iterations();
    let started = std::time::Instant::now();
    l.run_forever().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(l.iterations(), before + 1);
    assert_eq!(*got.borrow(), vec![1]);
    // Even with nothing ready at all, a stopped loop does one zero-timeout iteration.
    l.stop();
    l.run_forever().unwrap();
    assert_eq!(l.iterations(), before + 2);
    assert!(!l.is_running());
    far.cancel();
    l.close().unwrap();
}

#[test]
fn call_soon_stop_runs_exactly_one_batch() {
    let l = EventLoop::new().unwrap();
    let got = log();
    let l2 = l.clone();
    l.call_soon(push(&got, 1));
    l.call_soon(move || l2.stop());
    {
        let (l3, got3) = (l.clone(), got.clone());
        l.call_soon(move || {
            got3.borrow_mut().push(2);
            // Scheduled during the batch: must wait for the next run.
            l3.call_soon(push(&got3, 3));
        });
    }
    let before = l.iterations();
    l.run_forever().unwrap();
    assert_eq!(l.iterations(), before + 1);
    assert_eq!(*got.borrow(), vec![1, 2]);
    // The leftover runs on the next run.
    l.stop();
    l.run_forever().unwrap();
    assert_eq!(*got.borrow(), vec![1, 2, 3]);
    l.close().unwrap();
}

#[test]
fn run_until_complete_on_a_loop_stopped_early_errors() {
    let l = EventLoop::new().unwrap();
    let l2 = l.clone();
    let r = l.run_until_complete(async move {
        l2.stop();
        ringloop::sleep(Duration::from_millis(50)).await;
        7
    });
    assert!(
        matches!(r, Err(Error::InvalidState(_))),
        "stopped early must be an error, got {r:?}"
    );
    assert!(!l.is_running());
    // The loop is usable again afterwards.
    assert_eq!(l.run_until_complete(async { 5 }).unwrap(), 5);
    l.close().unwrap();
}

#[test]
fn nested_run_forever_errors() {
    let l = EventLoop::new().unwrap();
    let result: Rc<RefCell<Option<Result<(), Error>>>> = Rc::new(RefCell::new(None));
    let (l2, r2) = (l.clone(), result.clone());
    l.call_soon(move || {
        *r2.borrow_mut() = Some(l2.run_forever());
        l2.stop();
    });
    l.run_forever().unwrap();
    assert!(matches!(
        result.borrow().as_ref(),
        Some(Err(Error::InvalidState(_)))
    ));
    l.close().unwrap();
}

#[test]
fn nested_run_until_complete_errors_and_does_not_run_the_future() {
    let l = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let result: Rc<RefCell<Option<Result<(), Error>>>> = Rc::new(RefCell::new(None));
    {
        let (l2, r2, ran2) = (l.clone(), result.clone(), ran.clone());
        l.call_soon(move || {
            *r2.borrow_mut() = Some(l2.run_until_complete(async move { ran2.set(true) }));
        });
    }
    // Let a few iterations pass: the refused future must never run.
    let l2 = l.clone();
    l.call_later(Duration::from_millis(20), move || l2.stop());
    l.run_forever().unwrap();
    assert!(matches!(
        result.borrow().as_ref(),
        Some(Err(Error::InvalidState(_)))
    ));
    assert!(
        !ran.get(),
        "run_until_complete refused the future yet it ran on the loop"
    );
    l.close().unwrap();
}

#[test]
fn running_a_second_loop_inside_a_running_loop_errors() {
    let outer = EventLoop::new().unwrap();
    let inner = EventLoop::new().unwrap();
    let result = Rc::new(RefCell::new(None));
    let ran = Rc::new(Cell::new(false));
    {
        let (outer2, inner2, r2, ran2) =
            (outer.clone(), inner.clone(), result.clone(), ran.clone());
        outer.call_soon(move || {
            *r2.borrow_mut() = Some(inner2.run_until_complete(async move { ran2.set(true) }));
            outer2.stop();
        });
    }
    outer.run_forever().unwrap();
    assert!(matches!(
        result.borrow().as_ref(),
        Some(Err(Error::InvalidState(_)))
    ));
    // Nor does the other loop keep the refused future for later.
    inner.stop();
    inner.run_forever().unwrap();
    assert!(!ran.get());
    inner.close().unwrap();
    outer.close().unwrap();
}

#[test]
fn close_on_a_running_loop_errors_and_close_twice_is_fine() {
    let l = EventLoop::new().unwrap();
    let result = Rc::new(RefCell::new(None));
    let (l2, r2) = (l.clone(), result.clone());
    l.call_soon(move || {
        *r2.borrow_mut() = Some(l2.close());
        l2.stop();
    });
    l.run_forever().unwrap();
    assert!(matches!(
        result.borrow().as_ref(),
        Some(Err(Error::InvalidState(_)))
    ));
    assert!(!l.is_closed());
    l.close().unwrap();
    assert!(l.is_closed());
    l.close().unwrap();
    assert!(matches!(l.run_forever(), Err(Error::Closed)));
    assert!(matches!(l.run_until_complete(async {}), Err(Error::Closed)));
}

#[test]
fn cancelled_handles_never_run_and_cancelling_twice_is_fine() {
    let l = EventLoop::new().unwrap();
    let got = log();
    let a = l.call_soon(push(&got, "a"));
    l.call_soon(push(&got, "b"));
    let t = l.call_later(Duration::from_millis(1), push(&got, "t"));
    l.call_later(Duration::from_millis(2), push(&got, "u"));
    a.cancel();
    a.cancel();
    assert!(a.cancelled());
    t.cancel();
    t.cancel();
    assert!(t.cancelled());
    let l2 = l.clone();
    l.call_later(Duration::from_millis(20), move || l2.stop());
    l.run_forever().unwrap();
    assert_eq!(*got.borrow(), vec!["b", "u"]);
    l.close().unwrap();
}

#[test]
fn a_handle_cancelled_by_an_earlier_callback_in_the_same_batch_does_not_run() {
    let l = EventLoop::new().unwrap();
    let got = log();
    let victim: Rc<RefCell<Option<ringloop::Handle>>> = Rc::new(RefCell::new(None));
    let v2 = victim.clone();
    l.call_soon(move || v2.borrow().as_ref().unwrap().cancel());
    *victim.borrow_mut() = Some(l.call_soon(push(&got, "victim")));
    l.call_soon(push(&got, "after"));
    l.stop();
    l.run_forever().unwrap();
    assert_eq!(*got.borrow(), vec!["after"]);
    l.close().unwrap();
}

#[test]
fn callbacks_on_a_closed_loop_are_dropped() {
    let l = EventLoop::new().unwrap();
    l.close().unwrap();
    let h = l.call_soon(|| panic!("must not run"));
    assert!(h.cancelled());
    let t = l.call_later(Duration::ZERO, || panic!("must not run"));
    assert!(t.cancelled());
}

#[test]
fn the_running_loop_is_visible_inside_and_not_outside() {
    assert!(ringloop::get_running_loop().is_err());
    let l = EventLoop::new().unwrap();
    let same = Rc::new(Cell::new(false));
    let (l2, same2) = (l.clone(), same.clone());
    l.call_soon(move || {
        let running = ringloop::get_running_loop().unwrap();
        same2.set(running.same_loop(&l2) && running.is_running());
        running.stop();
    });
    l.run_forever().unwrap();
    assert!(same.get());
    assert!(ringloop::get_running_loop().is_err());
    l.close().unwrap();
}
