//! Unit tests of the loop core: the iteration's batch rule, stop, close, and the service
//! registry's get-or-create and shutdown order.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::services::{Phase, Service};
use super::*;
use crate::error::Error;

thread_local! {
    /// What happened, in order (each test runs on its own thread).
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(event: impl Into<String>) {
    LOG.with(|l| l.borrow_mut().push(event.into()));
}

fn take_log() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// A test service `ID` in `phase`, recording its close (and, if asked, whether the
/// loop's cross-thread queue still took a callback then).
struct Probe<const ID: u8> {
    phase: Phase,
    remote: Option<RemoteHandle>,
    closes: Cell<u32>,
}

impl<const ID: u8> Probe<ID> {
    fn new(phase: Phase) -> Self {
        Probe {
            phase,
            remote: None,
            closes: Cell::new(0),
        }
    }
}

impl<const ID: u8> Service for Probe<ID> {
    fn phase(&self) -> Phase {
        self.phase
    }

    fn close(&self) {
        self.closes.set(self.closes.get() + 1);
        let mut event = format!("close {ID}");
        if let Some(remote) = &self.remote {
            let open = remote.call_soon_threadsafe(|| {}).is_ok();
            event += if open {
                " (remote open)"
            } else {
                " (remote closed)"
            };
        }
        log(event);
    }
}

#[derive(Default)]
struct Counted {
    closes: Cell<u32>,
}

thread_local! {
    static CREATED: Cell<u32> = const { Cell::new(0) };
}

impl Service for Counted {
    fn phase(&self) -> Phase {
        Phase::Executor
    }

    fn close(&self) {
        self.closes.set(self.closes.get() + 1);
    }
}

fn counted(event_loop: &EventLoop) -> Rc<Counted> {
    event_loop.service_with(|| {
        CREATED.with(|c| c.set(c.get() + 1));
        Counted::default()
    })
}

#[test]
fn callbacks_scheduled_while_running_wait_for_the_next_iteration() {
    let event_loop = EventLoop::new().unwrap();
    let (l, seen) = (event_loop.clone(), Rc::new(RefCell::new(Vec::new())));
    let s = seen.clone();
    event_loop.call_soon(move || {
        s.borrow_mut().push(("first", l.iterations()));
        let (l2, s2) = (l.clone(), s.clone());
        l.call_soon(move || {
            s2.borrow_mut()
                .push(("scheduled by first", l2.iterations()));
            l2.stop();
        });
    });
    let s = seen.clone();
    let l = event_loop.clone();
    event_loop.call_soon(move || s.borrow_mut().push(("second", l.iterations())));
    event_loop.run_forever().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen[0].0, "first");
    assert_eq!(seen[1], ("second", seen[0].1), "one batch");
    assert_eq!(
        seen[2],
        ("scheduled by first", seen[0].1 + 1),
        "what a callback schedules runs in the next iteration, after the batch"
    );
    event_loop.close().unwrap();
}

#[test]
fn stop_before_running_runs_one_iteration() {
    let event_loop = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let l = event_loop.clone();
    event_loop.call_soon(move || {
        r.set(r.get() + 1);
        let r = r.clone();
        l.call_soon(move || r.set(r.get() + 1));
    });
    event_loop.stop();
    let before = event_loop.iterations();
    event_loop.run_forever().unwrap();
    assert_eq!(event_loop.iterations(), before + 1);
    assert_eq!(
        ran.get(),
        1,
        "only the batch present when the iteration began"
    );
    assert!(!event_loop.is_running());
    // The stop was consumed: the next run goes on until stopped again.
    let l = event_loop.clone();
    event_loop.call_soon(move || l.stop());
    event_loop.run_forever().unwrap();
    assert_eq!(ran.get(), 2);
    event_loop.close().unwrap();
}

#[test]
fn stop_inside_a_batch_lets_the_batch_finish() {
    let event_loop = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let l = event_loop.clone();
    event_loop.call_soon(move || l.stop());
    let r = ran.clone();
    event_loop.call_soon(move || r.set(true));
    event_loop.run_forever().unwrap();
    assert!(ran.get(), "the rest of the iteration still runs");
    event_loop.close().unwrap();
}

#[test]
fn run_until_complete_stopped_early_is_an_error() {
    let event_loop = EventLoop::new().unwrap();
    let l = event_loop.clone();
    let result = event_loop.run_until_complete(async move {
        l.stop();
        std::future::pending::<()>().await;
    });
    assert!(matches!(result, Err(Error::InvalidState(_))), "{result:?}");
    event_loop.close().unwrap();
}

#[test]
fn close_while_running_is_an_error() {
    let event_loop = EventLoop::new().unwrap();
    let got = Rc::new(RefCell::new(None));
    let (l, g) = (event_loop.clone(), got.clone());
    event_loop.call_soon(move || {
        *g.borrow_mut() = Some(l.close());
        l.stop();
    });
    event_loop.run_forever().unwrap();
    assert!(matches!(
        got.borrow_mut().take(),
        Some(Err(Error::InvalidState(_)))
    ));
    assert!(!event_loop.is_closed());
    event_loop.close().unwrap();
    assert!(event_loop.is_closed());
}

#[test]
fn close_twice_closes_services_once() {
    let event_loop = EventLoop::new().unwrap();
    let service = counted(&event_loop);
    event_loop.close().unwrap();
    event_loop.close().unwrap();
    assert_eq!(service.closes.get(), 1);
    assert!(matches!(event_loop.run_forever(), Err(Error::Closed)));
}

#[test]
fn a_service_is_created_once_on_first_use() {
    let event_loop = EventLoop::new().unwrap();
    let before = event_loop.inner.services.len();
    assert!(event_loop.existing_service::<Counted>().is_none());
    let a = counted(&event_loop);
    let b = counted(&event_loop);
    let c = event_loop.service::<Counted>();
    assert!(Rc::ptr_eq(&a, &b) && Rc::ptr_eq(&a, &c));
    assert!(Rc::ptr_eq(&a, &event_loop.existing_service().unwrap()));
    assert_eq!(CREATED.with(Cell::get), 1);
    assert_eq!(event_loop.inner.services.len(), before + 1);
    // Another loop has its own.
    let other = EventLoop::new().unwrap();
    assert!(other.existing_service::<Counted>().is_none());
    other.close().unwrap();
    event_loop.close().unwrap();
}

#[test]
fn a_service_created_on_a_closed_loop_is_closed_at_once() {
    let event_loop = EventLoop::new().unwrap();
    event_loop.close().unwrap();
    let service = event_loop.service::<Counted>();
    assert_eq!(service.closes.get(), 1);
    event_loop.close().unwrap();
    assert_eq!(service.closes.get(), 1);
}

#[test]
fn close_cancels_tasks_then_closes_services_by_phase() {
    let event_loop = EventLoop::new().unwrap();
    let remote = Some(event_loop.remote());
    // Created out of phase order; two share a phase (creation order then).
    event_loop.service_with(|| Probe::<5> {
        remote: remote.clone(),
        ..Probe::new(Phase::Buffers)
    });
    event_loop.service_with(|| Probe::<3>::new(Phase::Executor));
    event_loop.service_with(|| Probe::<4> {
        remote: remote.clone(),
        ..Probe::new(Phase::Processes)
    });
    event_loop.service_with(|| Probe::<1>::new(Phase::Transports));
    event_loop.service_with(|| Probe::<2>::new(Phase::Signals));
    event_loop.service_with(|| Probe::<6>::new(Phase::Signals));

    struct OnDrop(&'static str);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            log(self.0);
        }
    }
    let guard = OnDrop("task dropped");
    let task = event_loop.create_task(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    });
    event_loop.call_soon(|| {}).cancel();
    let timer_guard = OnDrop("timer dropped");
    event_loop.call_later(std::time::Duration::from_secs(60), move || {
        drop(timer_guard);
    });

    event_loop.close().unwrap();
    assert_eq!(
        take_log(),
        [
            "task dropped",
            "timer dropped",
            "close 1",
            "close 2",
            "close 6",
            "close 3",
            "close 4 (remote open)",
            "close 5 (remote closed)",
        ]
    );
    assert!(task.is_finished());
}

#[test]
fn a_service_a_task_destructor_creates_during_close_is_closed_once() {
    let event_loop = EventLoop::new().unwrap();
    struct MakeOnDrop(EventLoop);
    impl Drop for MakeOnDrop {
        fn drop(&mut self) {
            counted(&self.0);
        }
    }
    let guard = MakeOnDrop(event_loop.clone());
    let _task = event_loop.create_task(async move {
        let _guard = guard;
        std::future::pending::<()>().await;
    });
    event_loop.close().unwrap();
    let service = event_loop.existing_service::<Counted>().unwrap();
    assert_eq!(service.closes.get(), 1);
}
