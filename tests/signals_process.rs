//! Process-directed signals (`kill(getpid(), sig)`), in a program of its own
//! (`harness = false`): the test harness's threads do not block signals, so in the shared
//! test process the kernel could hand a process-directed signal to one of them.
//!
//! This follows the documented recipe for multi-threaded programs: add the handlers first,
//! then spawn threads — they inherit the blocked mask, so only the loop sees the signal.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::EventLoop;

fn main() {
    let event_loop = EventLoop::new().expect("a loop");
    let seen = Rc::new(RefCell::new(Vec::new()));
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let (s, l) = (seen.clone(), event_loop.clone());
        event_loop
            .add_signal_handler(sig, move || {
                s.borrow_mut().push(sig);
                if s.borrow().len() == 3 {
                    l.stop();
                }
            })
            .expect("add_signal_handler");
    }
    let l = event_loop.clone();
    event_loop.call_later(Duration::from_secs(10), move || l.stop());

    let pid = std::process::id() as libc::pid_t;
    let sender = std::thread::spawn(move || {
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            std::thread::sleep(Duration::from_millis(50));
            // SAFETY: kill takes no pointers; every thread of this process blocks `sig`.
            assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        }
    });
    let start = Instant::now();
    event_loop.run_forever().expect("run_forever");
    sender.join().expect("the sender thread");
    assert_eq!(
        *seen.borrow(),
        [libc::SIGTERM, libc::SIGINT, libc::SIGHUP],
        "after {:?}",
        start.elapsed()
    );
    event_loop.close().expect("close");
    println!("signals_process: ok (3 process-directed signals reached the loop)");
}
