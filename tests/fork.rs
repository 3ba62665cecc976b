//! A loop used across `fork()`: the child must refuse to run the parent's loop, may close
//! or drop it without faulting (the ring's memory is not mapped in the child), and can make
//! a loop of its own; the parent's loop is unaffected.
//!
//! The fork happens in a re-run child process that runs only this test, so no other test
//! thread is mid-allocation when we fork.

mod util;

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use ringloop::fd::Fd;
use ringloop::{Error, EventLoop};
use util::iterate;

/// What the forked child checks; returns normally when all hold.
fn in_forked_child(l: EventLoop) {
    assert!(matches!(l.run_forever(), Err(Error::InvalidState(m)) if m.contains("fork")));
    assert!(matches!(
        l.run_until_complete(async {}),
        Err(Error::InvalidState(_))
    ));
    l.close().unwrap();
    assert!(l.is_closed());
    drop(l);
    // A loop of its own works.
    assert_eq!(ringloop::run(async { 40 + 2 }).unwrap(), 42);
}

fn fork_role() {
    let l = EventLoop::new().unwrap();
    let (r, w) = util::pipe();
    let r = Fd::from(r);
    let mut w = std::fs::File::from(w);
    // A read in flight in the parent's ring when we fork.
    let reader = l.create_task(async move { r.read(Vec::with_capacity(16)).await });
    iterate(&l, 2);
    assert!(l.ops_in_flight() >= 2);

    // SAFETY: the child only runs Rust code of this test and leaves with _exit; this
    // process runs a single test, so no other thread holds a lock across the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = catch_unwind(AssertUnwindSafe(|| in_forked_child(l))).is_ok();
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child failed: status {status:#x} (signal {})",
        if libc::WIFSIGNALED(status) {
            libc::WTERMSIG(status)
        } else {
            0
        }
    );

    // The parent's loop and its in-flight read are intact.
    w.write_all(b"after fork").unwrap();
    let (n, buf) = l
        .run_until_complete(async move { reader.await.unwrap() })
        .unwrap();
    assert_eq!(n.unwrap(), 10);
    assert_eq!(buf, b"after fork");
    l.close().unwrap();
    println!("CHILD-OK: fork");
}

#[test]
fn a_forked_child_refuses_closes_and_replaces_the_parents_loop() {
    if util::child_role().as_deref() == Some("fork") {
        return fork_role();
    }
    let out = util::run_child(
        "a_forked_child_refuses_closes_and_replaces_the_parents_loop",
        "fork",
        Duration::from_secs(60),
    );
    let text = util::describe(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CHILD-OK: fork"),
        "{text}"
    );
}
