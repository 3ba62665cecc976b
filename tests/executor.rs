//! `run_in_executor`: many jobs, panics, waking a sleeping loop, the thread bound,
//! cancellation, shutdown and close.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringloop::{Error, EventLoop, Executor, get_running_loop};

#[test]
fn a_thousand_jobs_all_deliver_their_results() {
    let total = ringloop::run(async {
        let event_loop = get_running_loop().unwrap();
        event_loop.set_default_executor_threads(4).unwrap();
        let futures: Vec<_> = (0..1000u64)
            .map(|i| event_loop.run_in_executor(move || (i, i * i)))
            .collect();
        let mut total = 0;
        for (i, fut) in futures.into_iter().enumerate() {
            let (j, square) = fut.await.unwrap();
            assert_eq!(j, i as u64);
            assert_eq!(square, j * j);
            total += square;
        }
        event_loop.shutdown_default_executor().await.unwrap();
        total
    })
    .unwrap();
    assert_eq!(total, (0..1000u64).map(|i| i * i).sum::<u64>());
}

#[test]
fn a_panicking_job_gives_error_panic_and_the_loop_goes_on() {
    ringloop::run(async {
        let event_loop = get_running_loop().unwrap();
        let bad = event_loop.run_in_executor(|| -> u32 { panic!("job exploded") });
        let good = event_loop.run_in_executor(|| 41 + 1);
        match bad.await {
            Err(Error::Panic(msg)) => assert!(msg.contains("job exploded"), "{msg}"),
            other => panic!("expected Error::Panic, got {other:?}"),
        }
        assert_eq!(good.await.unwrap(), 42);
        // The thread that ran the panicking job still serves jobs.
        let after = event_loop.run_in_executor(|| "still here");
        assert_eq!(after.await.unwrap(), "still here");
    })
    .unwrap();
}

#[test]
fn a_result_wakes_a_loop_sleeping_in_the_ring() {
    let event_loop = EventLoop::new().unwrap();
    let fut = event_loop.run_in_executor(|| {
        std::thread::sleep(Duration::from_millis(200));
        7
    });
    let start = Instant::now();
    let got = event_loop.run_until_complete(fut).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(got.unwrap(), 7);
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // Nothing else to do: it slept in the kernel until the eventfd woke it.
    assert!(event_loop.iterations() < 50, "{}", event_loop.iterations());
    event_loop.close().unwrap();
}

#[test]
fn the_pool_is_lazy_and_bounded() {
    let executor = Executor::new(3).unwrap();
    assert_eq!(executor.max_threads(), 3);
    assert_eq!(executor.thread_count(), 0, "no thread before the first job");
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let event_loop = EventLoop::new().unwrap();
    let futures: Vec<_> = (0..12)
        .map(|_| {
            let (running, peak) = (running.clone(), peak.clone());
            event_loop.run_in_executor_with(&executor, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    assert!(executor.thread_count() <= 3);
    for fut in futures {
        event_loop.run_until_complete(fut).unwrap().unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "peak {peak}");
    executor.shutdown(true);
    assert_eq!(
        executor.thread_count(),
        0,
        "shutdown(true) joined every thread"
    );
    assert!(executor.is_shutdown());
    let refused = event_loop.run_in_executor_with(&executor, || 1);
    let err = event_loop.run_until_complete(refused).unwrap().unwrap_err();
    assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
    event_loop.close().unwrap();
}

#[test]
fn a_job_cancelled_before_it_starts_does_not_run() {
    let executor = Executor::new(1).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let event_loop = EventLoop::new().unwrap();
    let blocker = event_loop.run_in_executor_with(&executor, || {
        std::thread::sleep(Duration::from_millis(100));
    });
    let r = ran.clone();
    let victim =
        event_loop.run_in_executor_with(&executor, move || r.store(true, Ordering::SeqCst));
    assert!(victim.cancel());
    event_loop.run_until_complete(blocker).unwrap().unwrap();
    executor.shutdown(true);
    assert!(!ran.load(Ordering::SeqCst));
    assert!(victim.cancelled());
    event_loop.close().unwrap();
}

#[test]
fn shutdown_default_executor_waits_for_queued_jobs_and_then_refuses() {
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    ringloop::run(async move {
        let event_loop = get_running_loop().unwrap();
        event_loop.set_default_executor_threads(1).unwrap();
        for _ in 0..3 {
            let f = f.clone();
            // Not awaited: shutdown still lets them run.
            drop(event_loop.run_in_executor(move || {
                std::thread::sleep(Duration::from_millis(30));
                f.fetch_add(1, Ordering::SeqCst);
            }));
        }
        event_loop.shutdown_default_executor().await.unwrap();
        assert_eq!(f.load(Ordering::SeqCst), 3);
        let err = event_loop.run_in_executor(|| 1).await.unwrap_err();
        assert!(matches!(err, Error::InvalidState(_)), "{err:?}");
        // A second call is fine.
        event_loop.shutdown_default_executor().await.unwrap();
    })
    .unwrap();
    assert_eq!(finished.load(Ordering::SeqCst), 3);
}

#[test]
fn close_does_not_wait_for_running_jobs() {
    let event_loop = EventLoop::new().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let fut = event_loop.run_in_executor(move || {
        std::thread::sleep(Duration::from_millis(300));
        d.store(true, Ordering::SeqCst);
    });
    // Let the job start.
    event_loop
        .run_until_complete(ringloop::sleep(Duration::from_millis(20)))
        .unwrap();
    let start = Instant::now();
    event_loop.close().unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    assert!(
        !fut.done(),
        "the result of a closed loop is never delivered"
    );
    let err = event_loop
        .run_in_executor(|| 1)
        .exception()
        .unwrap()
        .unwrap();
    assert!(
        matches!(err, Error::InvalidState(_) | Error::Closed),
        "{err:?}"
    );
    // The job itself still finishes on its thread.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn bad_thread_counts_are_errors() {
    assert!(Executor::new(0).is_err());
    let event_loop = EventLoop::new().unwrap();
    let err = event_loop.set_default_executor_threads(0).unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    assert!(Executor::default_size() >= 1);
    event_loop.close().unwrap();
}

#[test]
fn a_given_default_executor_is_used() {
    let executor = Executor::new(2).unwrap();
    let event_loop = EventLoop::new().unwrap();
    event_loop.set_default_executor(executor.clone());
    let name = event_loop.run_in_executor(|| std::thread::current().name().map(String::from));
    let name = event_loop.run_until_complete(name).unwrap().unwrap();
    assert_eq!(name.as_deref(), Some("ringloop-executor"));
    assert_eq!(executor.thread_count(), 1);
    event_loop.close().unwrap();
    // The loop's close shut its default down.
    assert!(executor.is_shutdown());
    executor.shutdown(true);
}
