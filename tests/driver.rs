//! The ring driver under real I/O: owned buffers through pipes, a read dropped while the
//! kernel holds its buffer, a 4-entry SQ driving 10,000 ops, and a CQ overflowing.

mod util;

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ringloop::buf::{IoBuf, IoBufMut};
use ringloop::fd::{Fd, nop};
use ringloop::{Engine, EventLoop, gather, spawn};
use util::{checksum, iterate, pattern};

/// A zero-filled heap buffer that records, when dropped, whether it holds `expect` — so a test sees what the kernel wrote into it, and when it was freed.
struct TrackedBuf {
    bytes: Box<[u8]>,
    len: usize,
    expect: Vec<u8>,
    dropped: Arc<AtomicBool>,
    matched_on_drop: Arc<AtomicUsize>,
}

impl TrackedBuf {
    fn new(size: usize, expect: &[u8]) -> (Self, Arc<AtomicBool>, Arc<AtomicUsize>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let matched = Arc::new(AtomicUsize::new(0));
        let buf = TrackedBuf {
            bytes: vec![0u8; size].into_boxed_slice(),
            len: 0,
            expect: expect.to_vec(),
            dropped: dropped.clone(),
            matched_on_drop: matched.clone(),
        };
        (buf, dropped, matched)
    }
}

impl Drop for TrackedBuf {
    fn drop(&mut self) {
        // All of `expect`, nothing (still zero), or usize::MAX for anything else.
        let n = self.expect.len();
        let matched = if self.bytes[..n] == self.expect[..] {
            n
        } else if self.bytes.iter().all(|&b| b == 0) {
            0
        } else {
            usize::MAX
        };
        self.matched_on_drop.store(matched, Ordering::SeqCst);
        self.dropped.store(true, Ordering::SeqCst);
    }
}

// SAFETY: the bytes live in a Box (heap), so moving the value does not move them; `len`
// never exceeds the slice.
unsafe impl IoBuf for TrackedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.bytes.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.bytes.len()
    }
}

// SAFETY: as above; the whole (zero-initialized) slice is writable.
unsafe impl IoBufMut for TrackedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        self.len = n;
    }
}

/// Reads whatever is in the pipe now, without blocking.
fn drain_nonblocking(fd: &impl AsRawFd) -> Vec<u8> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an fd we hold open; no pointers.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        assert!(flags >= 0);
        assert_eq!(libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
    }
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // SAFETY: `chunk` is a writable buffer of chunk.len() bytes that outlives the call.
        let n = unsafe { libc::read(raw, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n as usize]);
    }
    out
}

#[test]
fn pipe_round_trip_with_patterned_payloads() {
    let (r, w) = util::pipe();
    let (r, w) = (Fd::from(r), Fd::from(w));
    let payload = pattern(7, 48 * 1024);
    let sum = checksum(&payload);
    let expected_len = payload.len();
    let got = ringloop::run(async move {
        let writer = spawn(async move {
            let (res, _) = w.write_all(payload).await;
            res.unwrap();
            // Dropping w closes the write end: the reader sees EOF.
        });
        let mut got = Vec::new();
        loop {
            let (n, buf) = r.read(Vec::with_capacity(4096)).await;
            match n.unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        writer.await.unwrap();
        got
    })
    .unwrap();
    assert_eq!(got.len(), expected_len);
    assert_eq!(checksum(&got), sum);
}

#[test]
fn readv_and_writev_keep_buffer_order() {
    let (r, w) = util::pipe();
    let (r, w) = (Fd::from(r), Fd::from(w));
    let parts: Vec<Vec<u8>> = (0..4).map(|i| pattern(i, 100 + i as usize)).collect();
    let whole: Vec<u8> = parts.concat();
    let out = ringloop::run(async move {
        let (n, _) = w.writev(parts).await;
        let n = n.unwrap();
        let bufs = vec![Vec::with_capacity(150), Vec::with_capacity(300)];
        let (m, bufs) = r.readv(bufs).await;
        (n, m.unwrap(), bufs.concat())
    })
    .unwrap();
    assert_eq!(out.0, whole.len());
    assert_eq!(out.1, whole.len());
    assert_eq!(out.2, whole);
}

#[test]
fn ops_outside_a_loop_fail_cleanly() {
    let (r, _w) = util::pipe();
    let r = Fd::from(r);
    // Polled by a loop-less executor: no running or current loop.
    let fut = r.read(vec![0u8; 8]);
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready((res, _)) => assert!(res.is_err()),
        std::task::Poll::Pending => panic!("an op without a loop must fail, not hang"),
    }
}

/// The dangerous case: data reaches the pipe, then the reader is cancelled before the
/// loop reaps; the kernel may still copy into the buffer after the future is gone.
#[test]
fn dropped_in_flight_read_keeps_its_buffer_until_the_cqe() {
    let mut written_after_drop = 0;
    for round in 0..20u64 {
        let l = EventLoop::new().unwrap();
        let baseline = l.ops_in_flight();
        let (r, w) = util::pipe();
        let r = Fd::from(r);
        let mut w = std::fs::File::from(w);
        let payload = pattern(round, 64);
        let (buf, dropped, matched) = TrackedBuf::new(256, &payload);
        let reader = r.clone();
        let task = l.create_task(async move {
            let (res, buf) = reader.read(buf).await;
            (res, buf.len)
        });
        iterate(&l, 2);
        assert_eq!(l.ops_in_flight(), baseline + 1, "the read is in the kernel");
        // The kernel sees data now; the copy into our buffer may happen in the next enter.
        w.write_all(&payload).unwrap();
        assert!(task.cancel());
        // The task is dropped in this iteration; the op becomes an orphan and a cancel
        // goes to the kernel.
        iterate(&l, 1);
        assert!(task.is_finished());
        if l.ops_in_flight() > baseline {
            assert!(
                !dropped.load(Ordering::SeqCst),
                "round {round}: the buffer was freed while its read was in the kernel"
            );
        }
        for _ in 0..100 {
            if l.ops_in_flight() == baseline {
                break;
            }
            iterate(&l, 1);
        }
        assert_eq!(l.ops_in_flight(), baseline);
        assert!(dropped.load(Ordering::SeqCst), "freed after its CQE");
        assert_eq!(l.driver_stats().stale_cqes, 0);
        // Every byte is either still in the pipe or was read into the orphaned buffer.
        let read_by_orphan = matched.load(Ordering::SeqCst);
        let left = drain_nonblocking(&r);
        assert!(
            (read_by_orphan == payload.len() && left.is_empty())
                || (read_by_orphan == 0 && left == payload),
            "round {round}: {read_by_orphan} bytes in the orphan, {} left in the pipe",
            left.len()
        );
        if read_by_orphan > 0 {
            written_after_drop += 1;
        }
        drop(task);
        l.close().unwrap();
    }
    eprintln!("the kernel wrote into an orphaned buffer in {written_after_drop}/20 rounds");
}

/// The plain case: the reader is cancelled while the pipe is empty; the kernel cancels
/// the read, so bytes written afterwards stay in the pipe.
#[test]
fn dropped_in_flight_read_on_an_empty_pipe_is_cancelled() {
    let l = EventLoop::new().unwrap();
    let baseline = l.ops_in_flight();
    let (r, w) = util::pipe();
    let r = Fd::from(r);
    let mut w = std::fs::File::from(w);
    let payload = pattern(99, 32);
    let (buf, dropped, matched) = TrackedBuf::new(64, &payload);
    let reader = r.clone();
    let task = l.create_task(async move { reader.read(buf).await.0 });
    iterate(&l, 2);
    assert_eq!(l.ops_in_flight(), baseline + 1);
    assert!(task.cancel());
    iterate(&l, 1);
    for _ in 0..100 {
        if l.ops_in_flight() == baseline {
            break;
        }
        assert!(!dropped.load(Ordering::SeqCst), "freed before its CQE");
        iterate(&l, 1);
    }
    assert_eq!(l.ops_in_flight(), baseline);
    assert!(dropped.load(Ordering::SeqCst));
    w.write_all(&payload).unwrap();
    assert_eq!(matched.load(Ordering::SeqCst), 0, "a cancelled read wrote");
    assert_eq!(drain_nonblocking(&r), payload);
    l.close().unwrap();
}

#[test]
fn a_full_submission_queue_is_submitted_and_retried() {
    const OPS: usize = 10_000;
    let l = EventLoop::builder()
        .engine(Engine::Uring)
        .sq_entries(4)
        .cq_entries(8)
        .build()
        .unwrap();
    let before = l.driver_stats();
    let results = l
        .run_until_complete(gather((0..OPS).map(|_| nop())))
        .unwrap()
        .unwrap();
    assert_eq!(results.len(), OPS);
    assert!(results.iter().all(|r| r.is_ok()));
    let stats = l.driver_stats();
    eprintln!("{stats:?}");
    assert!(
        stats.sq_full > before.sq_full,
        "the 4-entry SQ never filled"
    );
    assert_eq!(stats.stale_cqes, 0);
    assert_eq!(stats.cq_overflow, 0, "completions were dropped");
    assert!(stats.cqes - before.cqes >= OPS as u64);
    l.close().unwrap();
}

#[test]
fn many_ops_from_one_task_with_a_tiny_ring() {
    let l = EventLoop::builder()
        .sq_entries(4)
        .cq_entries(8)
        .build()
        .unwrap();
    let n = l
        .run_until_complete(async {
            let mut ok = 0;
            for _ in 0..2_000 {
                nop().await.unwrap();
                ok += 1;
            }
            ok
        })
        .unwrap();
    assert_eq!(n, 2_000);
    assert_eq!(l.driver_stats().stale_cqes, 0);
    l.close().unwrap();
}

#[test]
fn an_overflowing_completion_queue_loses_nothing() {
    // 100 reads in flight, then all their data arrives at once: 100 CQEs into an 8-entry
    // CQ. FEAT_NODROP keeps the excess in the kernel's backlog; every read must complete.
    const PIPES: usize = 100;
    let l = EventLoop::builder()
        .engine(Engine::Uring)
        .sq_entries(4)
        .cq_entries(8)
        .build()
        .unwrap();
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..PIPES {
        let (r, w) = util::pipe();
        readers.push(Fd::from(r));
        writers.push(std::fs::File::from(w));
    }
    let handles: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            l.create_task(async move {
                let (n, buf) = r.read(Vec::with_capacity(64)).await;
                (i, n.unwrap(), buf)
            })
        })
        .collect();
    iterate(&l, 3);
    for (i, w) in writers.iter_mut().enumerate() {
        w.write_all(&pattern(i as u64, 40)).unwrap();
    }
    let all = l
        .run_until_complete(async move {
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        })
        .unwrap();
    for (i, n, buf) in all {
        assert_eq!(n, 40);
        assert_eq!(buf, pattern(i as u64, 40), "pipe {i}");
    }
    let stats = l.driver_stats();
    eprintln!("{stats:?}");
    assert_eq!(stats.cq_overflow, 0);
    assert_eq!(stats.stale_cqes, 0);
    l.close().unwrap();
}

#[test]
fn the_fd_stays_open_while_an_orphaned_op_uses_it() {
    // Dropping the last Fd handle while a read is in flight must not close the fd under
    // the kernel (a reused fd number would receive the old op).
    let l = EventLoop::new().unwrap();
    let baseline = l.ops_in_flight();
    let (r, w) = util::pipe();
    let raw = r.as_raw_fd();
    let r = Fd::from(r);
    let task = l.create_task(async move { r.read(vec![0u8; 16]).await.0 });
    iterate(&l, 2);
    task.cancel();
    iterate(&l, 1);
    if l.ops_in_flight() > baseline {
        // SAFETY: F_GETFD on a raw fd number only queries it.
        assert!(
            unsafe { libc::fcntl(raw, libc::F_GETFD) } >= 0,
            "fd closed early"
        );
    }
    for _ in 0..100 {
        if l.ops_in_flight() == baseline {
            break;
        }
        iterate(&l, 1);
    }
    drop(task);
    drop(w);
    l.close().unwrap();
    let _keep: Option<OwnedFd> = None;
}

#[test]
fn many_pipes_echoing_through_a_small_ring_keep_every_byte_in_order() {
    // 32 echo pairs, each moving 200 patterned messages through two pipes, on a ring
    // whose SQ and CQ are far smaller than the ops in flight.
    const PAIRS: u32 = 32;
    const MESSAGES: u32 = 200;
    let l = EventLoop::builder()
        .sq_entries(8)
        .cq_entries(16)
        .build()
        .unwrap();
    let sums = l
        .run_until_complete(async {
            let mut clients = Vec::new();
            for pair in 0..PAIRS {
                let (to_echo_r, to_echo_w) = util::pipe();
                let (back_r, back_w) = util::pipe();
                let (er, ew) = (Fd::from(to_echo_r), Fd::from(back_w));
                // The echo task: copies until EOF.
                spawn(async move {
                    loop {
                        let (n, buf) = er.read(Vec::with_capacity(512)).await;
                        if n.unwrap() == 0 {
                            break;
                        }
                        let (res, _) = ew.write_all(buf).await;
                        res.unwrap();
                    }
                });
                let (cw, cr) = (Fd::from(to_echo_w), Fd::from(back_r));
                clients.push(spawn(async move {
                    let mut sent = Vec::new();
                    let mut got = Vec::new();
                    for m in 0..MESSAGES {
                        let msg = pattern(u64::from(pair * 1000 + m), 1 + (m as usize * 37) % 300);
                        sent.extend_from_slice(&msg);
                        let (res, _) = cw.write_all(msg).await;
                        res.unwrap();
                        while got.len() < sent.len() {
                            let (n, buf) = cr.read(Vec::with_capacity(512)).await;
                            let n = n.unwrap();
                            assert!(n > 0, "early EOF");
                            got.extend_from_slice(&buf[..n]);
                        }
                    }
                    drop(cw);
                    (checksum(&sent), checksum(&got), got.len())
                }));
            }
            let mut out = Vec::new();
            for c in clients {
                out.push(c.await.unwrap());
            }
            out
        })
        .unwrap();
    assert_eq!(sums.len(), PAIRS as usize);
    for (sent, got, _) in &sums {
        assert_eq!(sent, got);
    }
    let stats = l.driver_stats();
    eprintln!("{stats:?}");
    assert_eq!(stats.stale_cqes, 0);
    assert_eq!(stats.cq_overflow, 0);
    l.close().unwrap();
}
