//! An fd closed while its loop is idle — neither running nor current on this thread — and
//! its number reused on that loop afterwards: the new fd must work. (The epoll engine once
//! learned of closes only through the running or current loop, so the reused number kept
//! the old registration: never added to epoll, never made non-blocking, and an accept on
//! it blocked the loop thread.)

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ringloop::net::TcpListener;
use ringloop::{Engine, EventLoop};

fn reuse_after_idle_close(engine: Engine) {
    let l = EventLoop::builder().engine(engine).build().unwrap();
    // Round 1: a listener used on the loop (registered with the engine), returned out of
    // the run and dropped while the loop is idle and not current.
    let listener = l
        .run_until_complete(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let peer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                std::net::TcpStream::connect(addr).unwrap()
            });
            let (conn, _) = listener.accept().await.unwrap();
            drop((conn, peer.join().unwrap()));
            listener
        })
        .unwrap();
    let old = listener.as_raw_fd();
    drop(listener);
    // Round 2: a new listener takes the lowest free number: the old one. With nothing to
    // accept, a 50 ms timeout must fire; a watchdog peer connects after 3 s unless told
    // the timeout fired, so a loop thread blocked in accept(2) shows as a late result
    // rather than a hang.
    let (on_time, accepted) = l
        .run_until_complete(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            assert_eq!(listener.as_raw_fd(), old, "the number is reused");
            let addr = listener.local_addr().unwrap();
            let (fired, told) = std::sync::mpsc::channel::<()>();
            let watchdog = std::thread::spawn(move || {
                if told.recv_timeout(Duration::from_secs(3)).is_err() {
                    drop(std::net::TcpStream::connect(addr));
                }
            });
            let started = Instant::now();
            let first = ringloop::timeout(Duration::from_millis(50), listener.accept()).await;
            let on_time = first.is_err() && started.elapsed() < Duration::from_secs(2);
            let _ = fired.send(());
            watchdog.join().unwrap();
            if !on_time {
                return (false, None);
            }
            // Then a real peer is accepted on the reused number.
            let peer = std::thread::spawn(move || std::net::TcpStream::connect(addr).unwrap());
            let accepted = ringloop::timeout(Duration::from_secs(5), listener.accept()).await;
            drop(peer.join().unwrap());
            (true, Some(matches!(accepted, Ok(Ok(_)))))
        })
        .unwrap();
    assert!(
        on_time,
        "{engine:?}: the accept on the reused fd blocked the loop"
    );
    assert_eq!(accepted, Some(true), "{engine:?}: accept on the reused fd");
    l.close().unwrap();
}

/// Both engines in one test, one after the other: fd numbers are process-wide, and a
/// second test thread opening fds meanwhile would take the number this one expects.
#[test]
fn a_reused_number_works_on_both_engines() {
    reuse_after_idle_close(Engine::Epoll);
    reuse_after_idle_close(Engine::Uring);
}
