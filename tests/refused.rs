//! Where io_uring is refused: a child process (this test binary, re-run) installs a seccomp
//! filter that makes `io_uring_setup` fail, as Docker's default profile does, and checks
//! that constructing a loop returns `Error::Unavailable` with a useful message — no panic.

mod util;

use std::time::Duration;

use ringloop::{Engine, Error, EventLoop};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use util::seccomp::refuse_io_uring_setup;

/// The child's side: io_uring is refused with `errno`; every way to get a loop must say so.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn child(errno: i32) {
    refuse_io_uring_setup(errno);
    let fds_before = util::open_fds();
    let message = match EventLoop::new() {
        Err(Error::Unavailable(e)) => e.to_string(),
        Err(other) => panic!("expected Error::Unavailable, got {other:?}"),
        Ok(_) => panic!("io_uring_setup is refused, yet a loop was built"),
    };
    assert!(
        matches!(
            EventLoop::builder().sq_entries(4).build(),
            Err(Error::Unavailable(_))
        ),
        "the builder too"
    );
    assert!(matches!(
        ringloop::run(async {}),
        Err(Error::Unavailable(_))
    ));
    assert!(matches!(
        ringloop::get_event_loop(),
        Err(Error::Unavailable(_))
    ));
    assert_eq!(util::open_fds(), fds_before, "a failed set-up leaked an fd");
    println!("CHILD-OK: {message}");
}

fn run_as_child(test: &str, role: &str) -> String {
    let out = util::run_child(test, role, Duration::from_secs(60));
    let text = util::describe(&out);
    assert!(out.status.success(), "the child failed:\n{text}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // libtest prints "test name ... " on the same line before the child's output.
    let at = stdout
        .find("CHILD-OK: ")
        .unwrap_or_else(|| panic!("the child did not report:\n{text}"));
    let rest = &stdout[at + "CHILD-OK: ".len()..];
    rest.lines().next().unwrap_or_default().to_string()
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn seccomp_eperm_gives_unavailable_naming_the_cause() {
    if util::child_role().as_deref() == Some("eperm") {
        return child(libc::EPERM);
    }
    let message = run_as_child("seccomp_eperm_gives_unavailable_naming_the_cause", "eperm");
    eprintln!("EPERM message: {message}");
    assert!(message.contains("io_uring unavailable"), "{message}");
    assert!(
        message.contains("seccomp") || message.contains("io_uring_disabled"),
        "the message names no cause: {message}"
    );
    assert!(message.contains("epoll"), "no remedy offered: {message}");
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn enosys_gives_unavailable_naming_the_kernel() {
    if util::child_role().as_deref() == Some("enosys") {
        return child(libc::ENOSYS);
    }
    let message = run_as_child("enosys_gives_unavailable_naming_the_kernel", "enosys");
    eprintln!("ENOSYS message: {message}");
    assert!(message.contains("ENOSYS"), "{message}");
    assert!(message.contains("kernel"), "{message}");
}

#[test]
fn this_process_is_not_refused() {
    // The parent (no filter) gets a ring: the children's failures come from the filter.
    if util::child_role().is_some() {
        return;
    }
    EventLoop::new().unwrap().close().unwrap();
}

/// The child's side of the fallback test: io_uring refused, `RINGLOOP_ENGINE=auto`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn auto_child() {
    refuse_io_uring_setup(libc::EPERM);
    // The environment asks for auto: the loop comes up on epoll and really works.
    let l = EventLoop::new().expect("auto falls back to epoll");
    assert_eq!(l.engine(), Engine::Epoll);
    let got = l
        .run_until_complete(async {
            let (r, w) = util::pipe();
            let (r, w) = (ringloop::fd::Fd::from(r), ringloop::fd::Fd::from(w));
            let (res, _) = w.write(b"over epoll".to_vec()).await;
            res.unwrap();
            let (n, buf) = r.read(Vec::with_capacity(32)).await;
            n.unwrap();
            ringloop::sleep(Duration::from_millis(5)).await;
            buf
        })
        .unwrap();
    assert_eq!(got, b"over epoll");
    l.close().unwrap();
    // A second loop falls back too, without saying so again.
    EventLoop::new().unwrap().close().unwrap();
    // The builder's explicit choice wins over the environment.
    assert!(matches!(
        EventLoop::builder().engine(Engine::Uring).build(),
        Err(Error::Unavailable(_))
    ));
    println!("CHILD-OK: fell back");
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn auto_engine_falls_back_to_epoll_and_says_so_once() {
    if util::child_role().as_deref() == Some("auto") {
        return auto_child();
    }
    let out = util::run_child_with_engine(
        "auto_engine_falls_back_to_epoll_and_says_so_once",
        "auto",
        Duration::from_secs(60),
        Some("auto"),
    );
    let text = util::describe(&out);
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("CHILD-OK"),
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("falling back to the epoll engine").count(),
        1,
        "the fallback must be reported exactly once:\n{text}"
    );
}
