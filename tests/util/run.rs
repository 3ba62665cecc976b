//! Running a test's loop: a bounded run with the driver's health checked after, loop
//! iterations, bounded waits for a condition, the exception handler's reports, and the
//! knobs for timing bounds and counts.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::{EventLoop, ExceptionContext, LoopBuilder};

/// Runs `fut` on a new loop built by `builder`, failing the test after `limit`; then
/// closes the loop and checks the driver saw no stale CQE and no CQ overflow.
pub fn run_on<F, T>(builder: LoopBuilder, limit: Duration, fut: F) -> T
where
    F: std::future::Future<Output = T> + 'static,
    T: 'static,
{
    let event_loop = builder.build().expect("an io_uring event loop");
    ringloop::set_event_loop(Some(event_loop.clone()));
    let out = event_loop
        .run_until_complete(ringloop::timeout(limit, fut))
        .expect("run_until_complete");
    let stats = event_loop.driver_stats();
    event_loop.close().expect("close the loop");
    ringloop::set_event_loop(None);
    let out = match out {
        Ok(v) => v,
        Err(e) => panic!("the test did not finish within {limit:?}: {e}"),
    };
    assert_eq!(stats.stale_cqes, 0, "stale CQEs: {stats:?}");
    assert_eq!(stats.cq_overflow, 0, "CQ overflow: {stats:?}");
    out
}

/// [`run_on`] with a default loop and a 20 s limit.
pub fn run<F, T>(fut: F) -> T
where
    F: std::future::Future<Output = T> + 'static,
    T: 'static,
{
    run_on(EventLoop::builder(), Duration::from_secs(20), fut)
}

/// Waits (yielding to the loop) until `cond` holds; panics with `what` after `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        ringloop::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs `n` iterations of the loop.
pub fn iterate(l: &EventLoop, n: usize) {
    for _ in 0..n {
        l.stop();
        l.run_forever().unwrap();
    }
}

/// Blocks the calling thread until `cond` holds, polling every millisecond; fails with
/// `what` after `limit`. For conditions another thread (or the kernel) makes true: in
/// place of a sleep that only hopes it has.
pub fn block_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Collects every report that reaches `l`'s exception handler.
pub fn capture_reports(l: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    l.set_exception_handler(Some(move |_: &EventLoop, ctx: &ExceptionContext| {
        r.borrow_mut().push(ctx.clone());
    }));
    reports
}

/// Counts reports reaching the running loop's exception handler; returns the messages.
pub fn count_exceptions() -> Rc<RefCell<Vec<String>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    ringloop::get_running_loop()
        .expect("a running loop")
        .set_exception_handler(Some(
            move |_: &EventLoop, ctx: &ringloop::ExceptionContext| {
                s2.borrow_mut()
                    .push(format!("{}: {:?}", ctx.message, ctx.error));
            },
        ));
    seen
}

/// How late a timer may fire on a machine shared with compilers; never how early.
pub const LATE_TOLERANCE: Duration = Duration::from_millis(50);

/// Whether the test runs under valgrind (timing bounds are then meaningless).
pub fn under_valgrind() -> bool {
    std::env::var_os("RINGLOOP_UNDER_VALGRIND").is_some()
}

/// A count from the environment variable `name`, else `default` (for shorter runs under
/// valgrind, or longer ones by hand).
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}
