//! A thread that leaves its current loop (`set_event_loop`) with tasks still
//! pending: the loop is closed by the thread-local destructors at thread exit, after the
//! loop's other thread-locals may already be gone. That must neither panic nor abort.
//!
//! Runs in a re-run child process, since an abort in a TLS destructor would take the whole
//! test binary down.

mod util;

use std::time::Duration;

fn scenario() {
    let t = std::thread::spawn(|| {
        // set_event_loop before anything touched the running-loop slot: the thread-local
        // destructors then run in the order that once made closing at exit panic.
        let l = ringloop::new_event_loop().unwrap();
        ringloop::set_event_loop(Some(l.clone()));
        l.run_until_complete(async {
            let sleeper = ringloop::spawn(ringloop::sleep(Duration::from_secs(60)));
            // A task awaiting another task: cancelling the sleeper at close wakes it.
            ringloop::spawn(async move {
                let _ = sleeper.await;
            });
            let f: ringloop::Future<u32> = ringloop::Future::new();
            let waiter = f.clone();
            ringloop::spawn(async move {
                let _ = waiter.await;
            });
            ringloop::sleep(Duration::from_millis(1)).await;
            drop(f); // the waiter's clone keeps it pending
        })
        .unwrap();
        // The loop stays the thread's current loop, with tasks pending, until exit.
    });
    t.join().expect("the thread exited cleanly");
    println!("CHILD-OK: thread exit");
}

#[test]
fn thread_exit_closes_an_implicit_loop_with_pending_tasks() {
    if util::child_role().as_deref() == Some("thread-exit") {
        return scenario();
    }
    let out = util::run_child(
        "thread_exit_closes_an_implicit_loop_with_pending_tasks",
        "thread-exit",
        Duration::from_secs(60),
    );
    let text = util::describe(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CHILD-OK: thread exit"),
        "{text}"
    );
}
