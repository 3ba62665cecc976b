//! Signal handlers on the loop: delivery while the loop sleeps in the ring, coalescing and
//! queueing, removal, bad signal numbers, masks and fds restored.
//!
//! The tests of this file run in threads of one process, so: each takes `serial()` (fd
//! counts stay exact), and signals are sent to the loop's *thread* (`pthread_kill`) — a
//! signal sent to the process could go to another test thread, which does not block it.
//! `tests/signals_process.rs` covers process-directed signals in a program of its own.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::{Error, EventLoop};
use util::{open_fds, serial};

fn blocked(sig: i32) -> bool {
    // SAFETY: sigset_t is plain data; pthread_sigmask initializes `old`.
    unsafe {
        let mut empty = std::mem::zeroed::<libc::sigset_t>();
        let mut old = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut empty);
        assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &empty, &mut old), 0);
        libc::sigismember(&old, sig) == 1
    }
}

fn pending(sig: i32) -> bool {
    // SAFETY: sigpending initializes the set.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        assert_eq!(libc::sigpending(&mut set), 0);
        libc::sigismember(&set, sig) == 1
    }
}

fn kill_thread(thread: libc::pthread_t, sig: i32) {
    // SAFETY: `thread` is a live thread of this process (the test's loop thread).
    assert_eq!(unsafe { libc::pthread_kill(thread, sig) }, 0);
}

fn this_thread() -> libc::pthread_t {
    // SAFETY: no preconditions.
    unsafe { libc::pthread_self() }
}

/// Runs the loop until `done` says so (or 5 s pass, which fails the test).
fn run_until(event_loop: &EventLoop, done: impl Fn() -> bool + 'static) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let result = event_loop.run_until_complete(async move {
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for signals");
            ringloop::sleep(Duration::from_millis(1)).await;
        }
    });
    result.unwrap();
}

#[test]
fn a_signal_wakes_the_loop_sleeping_in_the_ring() {
    let _serial = serial();
    let sig = libc::SIGUSR1;
    let event_loop = EventLoop::new().unwrap();
    let ran_on = Rc::new(Cell::new(None));
    let (r, l) = (ran_on.clone(), event_loop.clone());
    event_loop
        .add_signal_handler(sig, move || {
            // A normal callback: on the loop's thread, inside the running loop.
            assert!(ringloop::get_running_loop().is_ok());
            r.set(Some(std::thread::current().id()));
            l.stop();
        })
        .unwrap();
    assert!(blocked(sig));
    let l = event_loop.clone();
    let watchdog = event_loop.call_later(Duration::from_secs(10), move || l.stop());

    let target = this_thread();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        kill_thread(target, sig);
    });
    let start = Instant::now();
    event_loop.run_forever().unwrap();
    let elapsed = start.elapsed();
    sender.join().unwrap();
    watchdog.cancel();

    assert_eq!(ran_on.get(), Some(std::thread::current().id()));
    assert!(elapsed >= Duration::from_millis(140), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // It slept in the kernel instead of spinning.
    assert!(event_loop.iterations() < 50, "{}", event_loop.iterations());

    assert!(event_loop.remove_signal_handler(sig).unwrap());
    assert!(!blocked(sig));
    event_loop.close().unwrap();
}

#[test]
fn standard_signals_coalesce_and_realtime_signals_queue() {
    let _serial = serial();
    let rt = libc::SIGRTMIN() + 2;
    let usr2 = libc::SIGUSR2;
    let event_loop = EventLoop::new().unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    event_loop
        .add_signal_handler(usr2, move || s.borrow_mut().push(usr2))
        .unwrap();
    let s = seen.clone();
    event_loop
        .add_signal_handler(rt, move || s.borrow_mut().push(rt))
        .unwrap();

    // Sent before the loop runs: they wait, blocked, in the thread's pending set.
    for _ in 0..3 {
        kill_thread(this_thread(), usr2);
        kill_thread(this_thread(), rt);
    }
    let s = seen.clone();
    run_until(&event_loop, move || s.borrow().len() >= 4);
    // One more iteration: nothing else trickles in.
    event_loop
        .run_until_complete(ringloop::sleep(Duration::from_millis(20)))
        .unwrap();
    let seen = seen.borrow().clone();
    assert_eq!(seen.iter().filter(|&&s| s == usr2).count(), 1, "{seen:?}");
    assert_eq!(seen.iter().filter(|&&s| s == rt).count(), 3, "{seen:?}");

    assert!(event_loop.remove_signal_handler(usr2).unwrap());
    assert!(event_loop.remove_signal_handler(rt).unwrap());
    event_loop.close().unwrap();
    assert!(!blocked(usr2) && !blocked(rt));
}

#[test]
fn remove_signal_handler_says_whether_one_was_removed() {
    let _serial = serial();
    let sig = libc::SIGRTMIN() + 3;
    let event_loop = EventLoop::new().unwrap();
    assert!(!event_loop.remove_signal_handler(sig).unwrap());

    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    event_loop
        .add_signal_handler(sig, move || c.set(c.get() + 1))
        .unwrap();
    // Replacing keeps one handler; the new callback is the one called.
    let c = calls.clone();
    event_loop
        .add_signal_handler(sig, move || c.set(c.get() + 100))
        .unwrap();
    kill_thread(this_thread(), sig);
    let c = calls.clone();
    run_until(&event_loop, move || c.get() > 0);
    assert_eq!(calls.get(), 100);

    assert!(event_loop.remove_signal_handler(sig).unwrap());
    assert!(!event_loop.remove_signal_handler(sig).unwrap());
    assert!(!blocked(sig));

    // A signal pending when its handler goes is discarded, not delivered with its default
    // action (which would end this process) once unblocked.
    let c = calls.clone();
    event_loop
        .add_signal_handler(sig, move || c.set(c.get() + 1))
        .unwrap();
    kill_thread(this_thread(), sig);
    assert!(pending(sig));
    assert!(event_loop.remove_signal_handler(sig).unwrap());
    assert!(!pending(sig));
    assert!(!blocked(sig));
    event_loop
        .run_until_complete(ringloop::sleep(Duration::from_millis(10)))
        .unwrap();
    assert_eq!(calls.get(), 100, "a removed handler is not called");
    event_loop.close().unwrap();
}

#[test]
fn a_signal_blocked_before_stays_blocked() {
    let _serial = serial();
    let sig = libc::SIGRTMIN() + 4;
    // SAFETY: plain sigset manipulation on this thread's mask.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
    let event_loop = EventLoop::new().unwrap();
    event_loop.add_signal_handler(sig, || {}).unwrap();
    assert!(event_loop.remove_signal_handler(sig).unwrap());
    assert!(blocked(sig));
    event_loop.close().unwrap();
    assert!(blocked(sig));
    // SAFETY: as above; the signal is not pending, so unblocking delivers nothing.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
}

#[test]
fn bad_signal_numbers_are_clear_errors() {
    let _serial = serial();
    let event_loop = EventLoop::new().unwrap();
    for (sig, needle) in [
        (0, "invalid signal number 0"),
        (-1, "invalid signal number -1"),
        (1000, "invalid signal number 1000"),
        (libc::SIGRTMAX() + 1, "invalid signal number"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGSTOP, "SIGSTOP"),
    ] {
        let err = event_loop.add_signal_handler(sig, || {}).unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
        assert!(err.to_string().contains(needle), "{sig}: {err}");
        assert!(err.to_string().contains("add_signal_handler"), "{err}");
        let err = event_loop.remove_signal_handler(sig).unwrap_err();
        assert!(err.to_string().contains(needle), "{sig}: {err}");
    }
    assert!(!blocked(libc::SIGKILL));
    event_loop.close().unwrap();
    // On a closed loop.
    let err = event_loop
        .add_signal_handler(libc::SIGUSR1, || {})
        .unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    assert!(!blocked(libc::SIGUSR1));
}

#[test]
fn a_panicking_handler_is_reported_and_the_loop_goes_on() {
    let _serial = serial();
    let sig = libc::SIGRTMIN() + 5;
    let event_loop = EventLoop::new().unwrap();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    event_loop.set_exception_handler(Some(
        move |_: &EventLoop, ctx: &ringloop::ExceptionContext| {
            r.borrow_mut().push(format!("{:?}", ctx.error));
        },
    ));
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    event_loop
        .add_signal_handler(sig, move || {
            c.set(c.get() + 1);
            panic!("handler {}", c.get());
        })
        .unwrap();
    kill_thread(this_thread(), sig);
    let c = calls.clone();
    run_until(&event_loop, move || c.get() == 1);
    kill_thread(this_thread(), sig);
    let c = calls.clone();
    run_until(&event_loop, move || c.get() == 2);
    let reports = reports.borrow().clone();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert!(reports[1].contains("handler 2"), "{reports:?}");
    event_loop.close().unwrap();
    assert!(!blocked(sig));
}

#[test]
fn no_fd_is_left_after_add_remove_cycles_and_close() {
    let _serial = serial();
    let before = open_fds();
    let event_loop = EventLoop::new().unwrap();
    let with_loop = open_fds();
    for i in 0..50 {
        let sig = if i % 2 == 0 {
            libc::SIGUSR1
        } else {
            libc::SIGRTMIN() + 6
        };
        event_loop.add_signal_handler(sig, || {}).unwrap();
        event_loop.add_signal_handler(libc::SIGUSR2, || {}).unwrap();
        assert_eq!(open_fds(), with_loop + 1, "one signalfd per loop");
        // Let the reader put its read in the ring.
        event_loop
            .run_until_complete(ringloop::yield_now())
            .unwrap();
        assert!(event_loop.remove_signal_handler(sig).unwrap());
        assert!(event_loop.remove_signal_handler(libc::SIGUSR2).unwrap());
        // The read in flight is cancelled; the fd closes with its completion.
        let deadline = Instant::now() + Duration::from_secs(5);
        while open_fds() != with_loop {
            assert!(Instant::now() < deadline, "the signalfd was not closed");
            event_loop
                .run_until_complete(ringloop::sleep(Duration::from_millis(1)))
                .unwrap();
        }
        assert!(!blocked(sig) && !blocked(libc::SIGUSR2));
    }

    // Close with handlers in place: masks restored, signalfd and ring closed.
    event_loop.add_signal_handler(libc::SIGUSR1, || {}).unwrap();
    event_loop.add_signal_handler(libc::SIGUSR2, || {}).unwrap();
    event_loop
        .run_until_complete(ringloop::yield_now())
        .unwrap();
    event_loop.close().unwrap();
    assert!(!blocked(libc::SIGUSR1) && !blocked(libc::SIGUSR2));
    drop(event_loop);
    assert_eq!(open_fds(), before);
}

#[test]
fn two_loops_on_one_thread_share_the_mask() {
    let _serial = serial();
    let sig = libc::SIGRTMIN() + 7;
    let a = EventLoop::new().unwrap();
    let b = EventLoop::new().unwrap();
    a.add_signal_handler(sig, || {}).unwrap();
    b.add_signal_handler(sig, || {}).unwrap();
    assert!(a.remove_signal_handler(sig).unwrap());
    assert!(blocked(sig), "b still handles it");
    b.close().unwrap();
    assert!(!blocked(sig));
    a.close().unwrap();
}
