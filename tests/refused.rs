//! Where io_uring is refused: a child process (this test binary, re-run) installs a seccomp
//! filter that makes `io_uring_setup` fail, as Docker's default profile does, and checks
//! that constructing a loop returns `Error::Unavailable` with a useful message — no panic.

mod util;

use std::time::Duration;

use ringloop::{Engine, Error, EventLoop};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE

/// Makes `io_uring_setup` fail with `errno` in this thread (and any it spawns), for good.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn refuse_io_uring_setup(errno: i32) {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k, jt, jf| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    };
    // struct seccomp_data { int nr; __u32 arch; ... }: nr at offset 0, arch at 4.
    let mut program = [
        stmt(LD_W_ABS, 4),
        jump(AUDIT_ARCH, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        stmt(LD_W_ABS, 0),
        jump(libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(
            RET_K,
            libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA),
        ),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(
        rc,
        0,
        "PR_SET_NO_NEW_PRIVS: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `prog` points to `program`, both alive across the call; the kernel copies
    // the filter.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    assert_eq!(rc, 0, "PR_SET_SECCOMP: {}", std::io::Error::last_os_error());
}

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
