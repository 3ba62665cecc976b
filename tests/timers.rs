//! Timers: never early, close to on time on an idle loop, cancellation, and large heaps.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::EventLoop;
use util::LATE_TOLERANCE;

#[test]
fn call_later_fires_no_earlier_than_due_and_close_to_it() {
    let l = EventLoop::new().unwrap();
    let lateness = Rc::new(RefCell::new(Vec::new()));
    let delays = [1u64, 2, 5, 10, 25, 50];
    let start = l.time();
    for &ms in &delays {
        let due = start + Duration::from_millis(ms);
        let lateness = lateness.clone();
        l.call_at(due, move || {
            let now = Instant::now();
            assert!(now >= due, "a timer fired {:?} early", due - now);
            lateness.borrow_mut().push((ms, now - due));
        });
    }
    let l2 = l.clone();
    l.call_later(Duration::from_millis(60), move || l2.stop());
    l.run_forever().unwrap();
    let lateness = lateness.borrow();
    assert_eq!(lateness.len(), delays.len());
    for (ms, late) in lateness.iter() {
        assert!(
            *late <= LATE_TOLERANCE,
            "the {ms} ms timer was {late:?} late"
        );
    }
    let worst = lateness.iter().map(|(_, l)| *l).max().unwrap();
    eprintln!("worst lateness over {} timers: {worst:?}", lateness.len());
    l.close().unwrap();
}

#[test]
fn an_idle_loop_sleeps_in_the_kernel_until_the_timer() {
    let l = EventLoop::new().unwrap();
    let before = l.iterations();
    let fired = Rc::new(Cell::new(None));
    let due = l.time() + Duration::from_millis(30);
    let (f, l2) = (fired.clone(), l.clone());
    l.call_at(due, move || {
        f.set(Some(Instant::now()));
        l2.stop();
    });
    l.run_forever().unwrap();
    let at = fired.get().unwrap();
    assert!(at >= due);
    assert!(at - due <= LATE_TOLERANCE, "{:?} late", at - due);
    // Blocking in io_uring_enter, not spinning: a handful of iterations, not thousands.
    let iterations = l.iterations() - before;
    assert!(iterations <= 5, "{iterations} iterations for one timer");
    l.close().unwrap();
}

#[test]
fn an_earlier_timer_added_while_sleeping_on_a_later_one_fires_on_time() {
    // The loop sleeps on a 200 ms timer; a callback from another thread adds a 10 ms one.
    let l = EventLoop::new().unwrap();
    let remote = l.remote();
    let fired = Rc::new(Cell::new(None));
    let start = Instant::now();
    let l2 = l.clone();
    l.call_later(Duration::from_millis(200), move || l2.stop());
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote
            .call_soon_threadsafe(|| {
                let l = ringloop::get_running_loop().unwrap();
                let due = Instant::now() + Duration::from_millis(10);
                l.call_at(due, move || {
                    FIRED.with(|f| f.set(Some((due, Instant::now()))));
                });
            })
            .unwrap();
    });
    thread_local! {
        static FIRED: Cell<Option<(Instant, Instant)>> = const { Cell::new(None) };
    }
    l.run_forever().unwrap();
    let (due, at) = FIRED.with(|f| f.get()).expect("the added timer fired");
    assert!(at >= due);
    assert!(at - due <= LATE_TOLERANCE, "{:?} late", at - due);
    assert!(start.elapsed() >= Duration::from_millis(200));
    fired.set(Some(at));
    l.close().unwrap();
}

#[test]
fn cancelled_timers_do_not_fire_and_do_not_keep_the_loop_awake() {
    let l = EventLoop::new().unwrap();
    let fired = Rc::new(Cell::new(0));
    let mut handles = Vec::new();
    for ms in [5u64, 10, 15] {
        let f = fired.clone();
        handles.push(l.call_later(Duration::from_millis(ms), move || f.set(f.get() + 1)));
    }
    for h in &handles {
        h.cancel();
    }
    // The armed kernel timeout for a cancelled timer may wake the loop once; after that
    // the loop sleeps until the real next timer.
    let f = fired.clone();
    let l2 = l.clone();
    let start = Instant::now();
    l.call_later(Duration::from_millis(40), move || {
        f.set(f.get() + 100);
        l2.stop();
    });
    l.run_forever().unwrap();
    assert_eq!(fired.get(), 100);
    assert!(start.elapsed() >= Duration::from_millis(40));
    l.close().unwrap();
}

#[test]
fn cancelling_a_timer_from_an_earlier_timer_in_the_same_batch() {
    let l = EventLoop::new().unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let due = l.time() + Duration::from_millis(2);
    let victim: Rc<RefCell<Option<ringloop::TimerHandle>>> = Rc::new(RefCell::new(None));
    let v = victim.clone();
    l.call_at(due, move || v.borrow().as_ref().unwrap().cancel());
    let lg = log.clone();
    *victim.borrow_mut() = Some(l.call_at(due, move || lg.borrow_mut().push("victim")));
    let (lg, l2) = (log.clone(), l.clone());
    l.call_at(due + Duration::from_millis(1), move || {
        lg.borrow_mut().push("last");
        l2.stop();
    });
    l.run_forever().unwrap();
    assert_eq!(*log.borrow(), vec!["last"]);
    l.close().unwrap();
}

#[test]
fn two_hundred_thousand_timers_half_cancelled_fire_in_order() {
    const N: u64 = 200_000;
    let l = EventLoop::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::with_capacity(N as usize / 2)));
    let base = l.time() + Duration::from_millis(20);
    let mut handles = Vec::with_capacity(N as usize);
    // Scheduled in a scrambled order; deadlines spread over ~100 ms, many equal.
    for k in 0..N {
        let i = (k * 7919) % N; // 7919 is prime and does not divide N: a permutation
        let due = base + Duration::from_micros(i / 2);
        let f = fired.clone();
        handles.push((i, l.call_at(due, move || f.borrow_mut().push(i))));
    }
    for (i, h) in &handles {
        if i % 2 == 1 {
            h.cancel();
        }
    }
    let l2 = l.clone();
    l.call_at(base + Duration::from_micros(N / 2 + 1000), move || {
        l2.stop()
    });
    let started = Instant::now();
    l.run_forever().unwrap();
    let fired = fired.borrow();
    assert_eq!(fired.len(), N as usize / 2);
    // By deadline; equal deadlines (i and i+1 share i/2, but only even i live) in order.
    let mut expected: Vec<u64> = (0..N).filter(|i| i % 2 == 0).collect();
    expected.sort_by_key(|&i| i / 2);
    assert!(*fired == expected, "timers fired out of order");
    eprintln!("200k timers: {:?}", started.elapsed());
    drop(handles);
    l.close().unwrap();
}

#[test]
fn equal_deadlines_keep_scheduling_order_with_cancellations() {
    let l = EventLoop::new().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let due = l.time() + Duration::from_millis(3);
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            let f = fired.clone();
            l.call_at(due, move || f.borrow_mut().push(i))
        })
        .collect();
    for h in handles.iter().skip(1).step_by(3) {
        h.cancel();
    }
    let l2 = l.clone();
    l.call_at(due, move || l2.stop());
    l.run_forever().unwrap();
    let expected: Vec<i32> = (0..1000).filter(|i| i % 3 != 1).collect();
    assert_eq!(*fired.borrow(), expected);
    l.close().unwrap();
}

#[test]
fn timer_handle_reports_its_deadline() {
    let l = EventLoop::new().unwrap();
    let when = l.time() + Duration::from_secs(5);
    let h = l.call_at(when, || {});
    assert_eq!(h.when(), when);
    assert!(!h.cancelled());
    h.cancel();
    assert!(h.cancelled());
    l.close().unwrap();
}

#[test]
fn huge_delays_mean_never_and_do_not_panic() {
    let l = EventLoop::new().unwrap();
    let far = l.call_later(Duration::MAX, || panic!("must not fire"));
    assert!(far.when() > l.time() + Duration::from_secs(365 * 24 * 3600));
    let out = l.run_until_complete(async {
        let quick = ringloop::timeout(Duration::MAX, async { 1 }).await;
        let forever = ringloop::spawn(ringloop::sleep(Duration::MAX));
        let (done, pending) = ringloop::wait(
            vec![forever],
            Some(Duration::from_millis(5)),
            ringloop::ReturnWhen::AllCompleted,
        )
        .await;
        assert_eq!(pending.len(), 1);
        // wait() with a huge timeout waits (here: until an outer timeout gives up).
        let gave_up = ringloop::timeout(
            Duration::from_millis(5),
            ringloop::wait(
                pending,
                Some(Duration::MAX),
                ringloop::ReturnWhen::FirstCompleted,
            ),
        )
        .await
        .is_err();
        (quick.unwrap(), done.len(), gave_up)
    });
    far.cancel();
    let (quick, done, still) = out.unwrap();
    assert_eq!((quick, done, still), (1, 0, true));
    l.close().unwrap();
}

/// Schedules more work on its loop when dropped.
struct ScheduleOnDrop(EventLoop, Rc<Cell<u32>>);
impl Drop for ScheduleOnDrop {
    fn drop(&mut self) {
        self.1.set(self.1.get() + 1);
        self.0.call_later(Duration::from_millis(1), || {});
        self.0.call_soon(|| {});
    }
}

#[test]
fn closing_drops_pending_callbacks_whose_destructors_schedule_more() {
    let l = EventLoop::new().unwrap();
    let drops = Rc::new(Cell::new(0));
    let guard = ScheduleOnDrop(l.clone(), drops.clone());
    l.call_later(Duration::from_secs(30), move || drop(guard));
    let guard = ScheduleOnDrop(l.clone(), drops.clone());
    l.call_soon(move || drop(guard));
    // A cancelled timer drops its callback at once, outside the loop's bookkeeping.
    let guard = ScheduleOnDrop(l.clone(), drops.clone());
    l.call_later(Duration::from_secs(30), move || drop(guard))
        .cancel();
    assert_eq!(drops.get(), 1);
    l.close().unwrap();
    assert_eq!(drops.get(), 3);
}
