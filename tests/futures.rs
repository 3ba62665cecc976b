//! asyncio's Future contract, ASYNCIO_SEMANTICS.md rules 6–8.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ringloop::{Error, EventLoop, Future};
use util::{capture_reports, iterate};

#[derive(Debug)]
struct Boom;
impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}
impl std::error::Error for Boom {}

#[test]
fn result_before_done_is_invalid_state() {
    let l = EventLoop::new().unwrap();
    let f: Future<u32> = Future::with_loop(Some(&l));
    assert!(!f.done());
    assert!(matches!(f.result(), Err(Error::InvalidState(_))));
    assert!(matches!(f.exception(), Err(Error::InvalidState(_))));
    f.set_result(3).unwrap();
    assert!(f.done());
    assert_eq!(f.result().unwrap(), 3);
    assert!(matches!(f.exception(), Ok(None)));
    l.close().unwrap();
}

#[test]
fn a_second_outcome_is_invalid_state() {
    let l = EventLoop::new().unwrap();
    let f: Future<u32> = Future::with_loop(Some(&l));
    f.set_result(1).unwrap();
    assert!(matches!(f.set_result(2), Err(Error::InvalidState(_))));
    assert!(matches!(
        f.set_exception(Error::other(Boom)),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(f.result().unwrap(), 1, "the first result stays");

    let g: Future<u32> = Future::with_loop(Some(&l));
    g.set_exception(Error::other(Boom)).unwrap();
    assert!(matches!(g.set_result(2), Err(Error::InvalidState(_))));
    assert!(matches!(
        g.set_exception(Error::Timeout),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(g.result().unwrap_err().to_string(), "boom");
    l.close().unwrap();
}

#[test]
fn cancel_on_a_done_future_returns_false() {
    let l = EventLoop::new().unwrap();
    let f: Future<u32> = Future::with_loop(Some(&l));
    f.set_result(1).unwrap();
    assert!(!f.cancel());
    assert!(!f.cancelled());

    let g: Future<u32> = Future::with_loop(Some(&l));
    assert!(g.cancel());
    assert!(g.cancelled());
    assert!(g.done());
    assert!(!g.cancel(), "cancelling twice: the second is a no-op");
    assert!(matches!(g.result(), Err(Error::Cancelled)));
    assert!(matches!(g.set_result(1), Err(Error::InvalidState(_))));
    l.close().unwrap();
}

#[test]
fn done_callbacks_run_through_call_soon_in_order_added() {
    let l = EventLoop::new().unwrap();
    let f: Future<u32> = Future::with_loop(Some(&l));
    let got = Rc::new(RefCell::new(Vec::new()));
    for i in 0..5 {
        let got = got.clone();
        f.add_done_callback(move |fut| got.borrow_mut().push((i, fut.result().unwrap())));
    }
    f.set_result(9).unwrap();
    assert!(
        got.borrow().is_empty(),
        "done-callbacks must not run inside set_result"
    );
    // Added after done: still scheduled, not called inline, and after the earlier ones.
    {
        let got = got.clone();
        f.add_done_callback(move |fut| got.borrow_mut().push((5, fut.result().unwrap())));
    }
    assert!(got.borrow().is_empty(), "nor inside add_done_callback");
    l.stop();
    l.run_forever().unwrap();
    assert_eq!(
        *got.borrow(),
        (0..6).map(|i| (i, 9)).collect::<Vec<_>>(),
        "all in one iteration, in the order added"
    );
    l.close().unwrap();
}

#[test]
fn done_callbacks_also_run_for_errors_and_cancellation() {
    let l = EventLoop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let a: Future<u32> = Future::with_loop(Some(&l));
    let b: Future<u32> = Future::with_loop(Some(&l));
    for (name, fut) in [("a", &a), ("b", &b)] {
        let seen = seen.clone();
        fut.add_done_callback(move |f| {
            let what = match f.result() {
                Ok(_) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            seen.borrow_mut().push(format!("{name}:{what}"));
        });
    }
    b.cancel();
    a.set_exception(Error::other(Boom)).unwrap();
    iterate(&l, 3);
    assert_eq!(*seen.borrow(), vec!["b:cancelled", "a:boom"]);
    l.close().unwrap();
}

#[test]
fn remove_done_callback_returns_how_many_it_removed() {
    let l = EventLoop::new().unwrap();
    let f: Future<u32> = Future::with_loop(Some(&l));
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let keep = f.add_done_callback(move |_| r.set(r.get() + 1));
    let r = ran.clone();
    let gone = f.add_done_callback(move |_| r.set(r.get() + 100));
    assert_eq!(f.remove_done_callback(gone), 1);
    assert_eq!(f.remove_done_callback(gone), 0);
    f.set_result(1).unwrap();
    // Already scheduled: nothing left to remove.
    assert_eq!(f.remove_done_callback(keep), 0);
    iterate(&l, 3);
    assert_eq!(ran.get(), 1);
    l.close().unwrap();
}

#[test]
fn awaiting_a_future_gives_its_outcome() {
    let l = EventLoop::new().unwrap();
    let out = l
        .run_until_complete(async {
            let ok: Future<&str> = Future::new();
            let err: Future<&str> = Future::new();
            let cancelled: Future<&str> = Future::new();
            let (a, b, c) = (ok.clone(), err.clone(), cancelled.clone());
            let l = ringloop::get_running_loop().unwrap();
            l.call_later(Duration::from_millis(2), move || {
                a.set_result("yes").unwrap();
                b.set_exception(Error::other(Boom)).unwrap();
                c.cancel();
            });
            (ok.await, err.await, cancelled.await)
        })
        .unwrap();
    assert_eq!(out.0.unwrap(), "yes");
    assert_eq!(out.1.unwrap_err().to_string(), "boom");
    assert!(matches!(out.2, Err(Error::Cancelled)));
    l.close().unwrap();
}

#[test]
fn many_tasks_waiting_on_one_future_all_wake() {
    let out = ringloop::run(async {
        let f: Future<u32> = Future::new();
        let waiters: Vec<_> = (0..10)
            .map(|i| {
                let f = f.clone();
                ringloop::spawn(async move { f.await.unwrap() + i })
            })
            .collect();
        ringloop::sleep(Duration::ZERO).await;
        f.set_result(100).unwrap();
        let mut sum = 0;
        for w in waiters {
            sum += w.await.unwrap();
        }
        sum
    })
    .unwrap();
    assert_eq!(out, 1000 + 45);
}

#[test]
fn an_error_never_retrieved_is_reported_when_the_future_is_dropped() {
    let l = EventLoop::new().unwrap();
    let reports = capture_reports(&l);
    let f: Future<u32> = Future::with_loop(Some(&l));
    let clone = f.clone();
    f.set_exception(Error::other(Boom)).unwrap();
    drop(f);
    assert!(reports.borrow().is_empty(), "a clone still holds it");
    drop(clone);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].message.contains("never retrieved"));
    assert_eq!(reports[0].error.as_ref().unwrap().to_string(), "boom");
    drop(reports);
    l.close().unwrap();
}

#[test]
fn a_retrieved_error_is_not_reported() {
    let l = EventLoop::new().unwrap();
    let reports = capture_reports(&l);
    let a: Future<u32> = Future::with_loop(Some(&l));
    a.set_exception(Error::other(Boom)).unwrap();
    assert!(a.result().is_err());
    drop(a);
    let b: Future<u32> = Future::with_loop(Some(&l));
    b.set_exception(Error::other(Boom)).unwrap();
    assert!(b.exception().unwrap().is_some());
    drop(b);
    // Cancellation and results are never "unretrieved errors".
    let c: Future<u32> = Future::with_loop(Some(&l));
    c.cancel();
    drop(c);
    let awaited = l
        .run_until_complete(async {
            let d: Future<u32> = Future::new();
            d.set_exception(Error::other(Boom)).unwrap();
            d.await.is_err()
        })
        .unwrap();
    assert!(awaited);
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    l.close().unwrap();
}
