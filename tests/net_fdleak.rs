//! No fd outlives its connection: 10,000 connect/close cycles in every way a connection can
//! end (async stream dropped, transport closed, transport aborted, dropped mid-read),
//! then the loop is closed and `/proc/self/fd` counts what it counted before.
//!
//! One test in a binary of its own, so no other test opens fds meanwhile.

mod util;

use std::sync::Arc;
use std::time::Duration;

use ringloop::net::TcpStream;
use ringloop::{EventLoop, get_running_loop};
use util::*;

const CYCLES: usize = 10_000;
const CONCURRENT: usize = 50;

async fn cycle(addr: std::net::SocketAddr, i: usize) {
    let l = get_running_loop().unwrap();
    match i % 4 {
        // Async stream: a round trip, then drop.
        0 => {
            let s = TcpStream::connect(addr).await.unwrap();
            let (res, _) = s.write_all(vec![i as u8]).await;
            res.unwrap();
            let (res, buf) = s.read(Vec::with_capacity(4)).await;
            assert_eq!(res.unwrap(), 1);
            assert_eq!(buf[0], i as u8);
        }
        // Transport: write, close (flushes), wait for connection_lost.
        1 => {
            let (r, seen) = Recorder::new();
            let (t, _) = l
                .create_connection(move || r, &addr.to_string())
                .await
                .unwrap();
            t.write(b"bye").unwrap();
            t.close();
            wait_until(Duration::from_secs(10), "client lost", || seen.lost()).await;
        }
        // Transport: abort at once (the server sees a reset).
        2 => {
            let (r, seen) = Recorder::new();
            let (t, _) = l
                .create_connection(move || r, &addr.to_string())
                .await
                .unwrap();
            t.abort();
            wait_until(Duration::from_secs(10), "client lost", || seen.lost()).await;
        }
        // Async stream dropped with a read in flight (the op keeps the fd until its CQE).
        _ => {
            let s = TcpStream::connect(addr).await.unwrap();
            let read = ringloop::spawn(async move {
                let _ = s.read(Vec::with_capacity(64)).await;
            });
            ringloop::yield_now().await;
            read.cancel();
        }
    }
}

#[test]
fn no_fd_leak_after_10000_connections() {
    let before = open_fds();
    let event_loop = EventLoop::new().unwrap();
    let l = event_loop.clone();
    let stats = Arc::new(EchoStats::default());
    let s2 = stats.clone();
    let (peak, active_after) = event_loop
        .run_until_complete(async move {
            ringloop::timeout(Duration::from_secs(60), async move {
                let server = l
                    .create_server(move || Echo::new(&s2), "127.0.0.1:0")
                    .await
                    .unwrap();
                let addr = server.sockets()[0];
                let mut peak = 0;
                let mut next = 0;
                while next < CYCLES {
                    let batch: Vec<_> = (next..(next + CONCURRENT).min(CYCLES))
                        .map(|i| ringloop::spawn(cycle(addr, i)))
                        .collect();
                    next += batch.len();
                    for h in batch {
                        h.await.unwrap();
                    }
                    peak = peak.max(open_fds());
                }
                wait_until(Duration::from_secs(10), "server connections closed", || {
                    server.active_connections() == 0
                })
                .await;
                let active = server.active_connections();
                server.close();
                server.wait_closed().await;
                (peak, active)
            })
            .await
            .expect("within 60 s")
        })
        .unwrap();
    let stats_driver = event_loop.driver_stats();
    event_loop.close().unwrap();
    drop(event_loop);
    let after = open_fds();
    eprintln!(
        "{CYCLES} cycles: fds before {before}, peak {peak}, after {after}; made {}",
        stats.made.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(active_after, 0);
    assert_eq!(
        stats.made.load(std::sync::atomic::Ordering::Relaxed),
        CYCLES
    );
    assert!(peak < before + 4 * CONCURRENT + 50, "peak {peak}");
    assert_eq!(after, before, "fds leaked");
    assert_eq!(stats_driver.stale_cqes, 0);
}
