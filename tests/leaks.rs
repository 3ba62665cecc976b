//! Resources come back: fds after many loops, and after closing a loop with reads still in
//! the kernel. The tests here count `/proc/self/fd`, so they run one at a time.

mod util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ringloop::EventLoop;
use ringloop::fd::Fd;
use util::{fd_targets, open_fds, serial};

#[test]
fn creating_and_closing_a_thousand_loops_leaks_no_fd() {
    let _serial = serial();
    // Warm up lazily opened process resources before the baseline.
    EventLoop::new().unwrap().close().unwrap();
    let before = open_fds();
    for i in 0..1000 {
        let l = EventLoop::new().unwrap();
        if i % 2 == 0 {
            // Half of them run a little first: a timer armed, a task spawned.
            let l2 = l.clone();
            l.call_later(Duration::ZERO, move || l2.stop());
            l.create_task(async {});
            l.run_forever().unwrap();
        }
        l.close().unwrap();
    }
    let after = open_fds();
    assert_eq!(before, after, "fds leaked: {:#?}", fd_targets());
}

#[test]
fn dropping_loops_without_close_leaks_no_fd() {
    let _serial = serial();
    EventLoop::new().unwrap().close().unwrap();
    let before = open_fds();
    for _ in 0..200 {
        let l = EventLoop::new().unwrap();
        l.stop();
        l.run_forever().unwrap();
        drop(l);
    }
    for _ in 0..200 {
        ringloop::run(async { ringloop::sleep(Duration::ZERO).await }).unwrap();
    }
    assert_eq!(before, open_fds(), "fds leaked: {:#?}", fd_targets());
}

/// Counts drops, to show every buffer held by an in-flight read is freed.
struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn closing_a_loop_with_reads_in_flight_cancels_them_promptly() {
    const PIPES: usize = 50;
    let _serial = serial();
    EventLoop::new().unwrap().close().unwrap();
    let before = open_fds();
    let dropped = Arc::new(AtomicUsize::new(0));
    let l = EventLoop::new().unwrap();
    let baseline = l.ops_in_flight();
    let mut writers = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..PIPES {
        let (r, w) = util::pipe();
        writers.push(w);
        let r = Fd::from(r);
        let counted = Counted(dropped.clone());
        handles.push(l.create_task(async move {
            let _counted = counted;
            r.read(Vec::with_capacity(1024)).await.0
        }));
    }
    for _ in 0..3 {
        l.stop();
        l.run_forever().unwrap();
    }
    assert_eq!(
        l.ops_in_flight(),
        baseline + PIPES,
        "all reads in the kernel"
    );
    let started = Instant::now();
    l.close().unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "close took {took:?}: it waited out its bound instead of cancelling"
    );
    assert_eq!(l.ops_in_flight(), 0, "close left operations in the kernel");
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        PIPES,
        "every task was dropped"
    );
    for h in &handles {
        assert!(h.is_finished());
    }
    drop(handles);
    drop(writers);
    drop(l);
    assert_eq!(before, open_fds(), "fds leaked: {:#?}", fd_targets());
}

#[test]
fn closing_a_loop_with_a_pending_timer_and_remote_wakers() {
    let _serial = serial();
    EventLoop::new().unwrap().close().unwrap();
    let before = open_fds();
    let l = EventLoop::new().unwrap();
    l.call_later(Duration::from_secs(60), || {});
    let remote = l.remote();
    l.create_task(ringloop::sleep(Duration::from_secs(60)));
    // Put the kernel timeout in flight: the loop blocks on it until a remote stop.
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote
            .call_soon_threadsafe(|| ringloop::get_running_loop().unwrap().stop())
            .unwrap();
        remote
    });
    l.run_forever().unwrap();
    let remote = t.join().unwrap();
    let started = Instant::now();
    l.close().unwrap();
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert_eq!(l.ops_in_flight(), 0);
    // A RemoteHandle outliving the loop holds its eventfd until dropped.
    drop(remote);
    drop(l);
    assert_eq!(before, open_fds(), "fds leaked: {:#?}", fd_targets());
}
