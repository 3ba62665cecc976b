//! An accept that keeps failing must not spin (PITFALLS #8, #9): a listening socket that
//! is shut down under its server (`shutdown(SHUT_RD)` takes it out of the listen state, so
//! every accept fails with `EINVAL`) is reported through the exception handler and
//! retried after the back-off, while the loop's thread stays nearly idle.

mod util;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ringloop::{EventLoop, ExceptionContext, get_running_loop};
use util::*;

/// The fd of this process's socket bound to `addr`.
fn fd_bound_to(addr: SocketAddr) -> i32 {
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(fd) = entry.unwrap().file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: getsockname writes at most `len` bytes into the storage we pass.
        let local = unsafe {
            let mut ss: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getsockname(fd, (&raw mut ss).cast(), &mut len) != 0
                || i32::from(ss.ss_family) != libc::AF_INET
            {
                continue;
            }
            let sin = &*(&raw const ss).cast::<libc::sockaddr_in>();
            SocketAddr::from((
                u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                u16::from_be(sin.sin_port),
            ))
        };
        if local == addr {
            return fd;
        }
    }
    panic!("no socket bound to {addr}");
}

#[test]
fn a_listener_that_always_fails_backs_off_instead_of_spinning() {
    let reports = Rc::new(RefCell::new(Vec::<String>::new()));
    let theirs = reports.clone();
    let event_loop = EventLoop::new().unwrap();
    event_loop.set_exception_handler(Some(move |_: &EventLoop, ctx: &ExceptionContext| {
        theirs.borrow_mut().push(ctx.message.clone());
    }));
    let cpu = event_loop
        .run_until_complete(ringloop::timeout(Duration::from_secs(20), async {
            let l = get_running_loop().unwrap();
            let stats = Arc::new(EchoStats::default());
            let server = l
                .create_server(move || Echo::new(&stats), "127.0.0.1:0")
                .await
                .unwrap();
            let fd = fd_bound_to(server.sockets()[0]);
            // SAFETY: shutting down a socket this process owns; the server keeps the fd.
            assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RD) }, 0);
            let before = thread_cpu();
            ringloop::sleep(Duration::from_millis(600)).await;
            let spent = thread_cpu() - before;
            server.close();
            server.wait_closed().await;
            spent
        }))
        .expect("run")
        .expect("done in time");
    event_loop.close().unwrap();
    let reports = reports.borrow();
    let accept_reports = reports.iter().filter(|m| m.contains("accept")).count();
    eprintln!("600 ms of failing accepts: {cpu:?} CPU, {accept_reports} reports: {reports:?}");
    assert!(accept_reports >= 1, "the failure was reported: {reports:?}");
    assert!(
        accept_reports <= 10,
        "reports are paced by the back-off: {reports:?}"
    );
    assert!(
        cpu < Duration::from_millis(60),
        "the loop spun: {cpu:?} CPU"
    );
}
