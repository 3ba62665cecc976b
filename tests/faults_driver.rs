//! Issue 6's driver and core fault scenarios, each provoked for real (loopback sockets,
//! pipes, child processes) and each printing its figure with `eprintln!`:
//!
//! - s01: 10,000 op futures dropped mid-flight (recv, read, send, accept, sleep, timeout)
//! - s02: a stream dropped with a recv pending, its fd number then reused
//! - s03: a 4-entry SQ driving 10,000 I/O ops
//! - s04: an 8-entry CQ with 512 simultaneous completions
//! - s14: recv-vs-timeout races: no byte lost, duplicated or reordered
//! - s15: 200,000 timers, half cancelled, in order; RSS back to baseline
//! - s16: dropping a loop with 1,000 ops in flight
//! - s17: fork() and 500 child spawns: no fd of the loop leaks into a child
//! - s18: io_uring refused by seccomp: a typed error, and the `Auto` fallback
//! - s19: `RLIMIT_MEMLOCK` of 0
//!
//! They count `/proc/self/fd` and RSS, so they take turns. Counts can be changed with
//! `RINGLOOP_FAULTS_*` variables (smaller under valgrind, see
//! `scripts/valgrind-drop-test.sh`).

mod util;

use std::cell::Cell;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::buf::{IoBuf, IoBufMut};
use ringloop::fd::Fd;
use ringloop::net::{TcpListener, TcpStream, UnixStream};
use ringloop::{Engine, Error, EventLoop, JoinHandle, LoopBuilder};
use util::{env_count, fd_targets, iterate, open_fds, serial};

/// Iterates until the loop has no more than `baseline` ops in flight; returns how many
/// iterations that took. Fails after 10 s.
fn settle(l: &EventLoop, baseline: usize) -> usize {
    let started = Instant::now();
    let mut n = 0;
    while l.ops_in_flight() > baseline {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} ops still in flight after 10 s (baseline {baseline})",
            l.ops_in_flight()
        );
        iterate(l, 1);
        n += 1;
    }
    n
}

/// What happened to the [`Probe`] buffers of one scenario.
#[derive(Default)]
struct ProbeLog {
    created: Cell<usize>,
    dropped: Cell<usize>,
    /// Bytes equal to the fill byte found in dropped buffers (what the kernel wrote).
    fill_bytes: Cell<usize>,
    /// Bytes that are neither zero nor the fill byte (must stay zero).
    foreign: Cell<usize>,
}

/// A zeroed heap buffer that, when dropped, counts itself and the bytes equal to `fill`
/// in it: a test sees what the kernel wrote into an orphaned buffer, and that every
/// buffer is freed once (after its CQE).
struct Probe {
    bytes: Box<[u8]>,
    len: usize,
    fill: u8,
    log: Rc<ProbeLog>,
}

impl Probe {
    /// An empty buffer of `size` bytes to receive into.
    fn recv(size: usize, fill: u8, log: &Rc<ProbeLog>) -> Probe {
        log.created.set(log.created.get() + 1);
        Probe {
            bytes: vec![0; size].into_boxed_slice(),
            len: 0,
            fill,
            log: log.clone(),
        }
    }

    /// A buffer of `size` bytes of `fill`, to send.
    fn send(size: usize, fill: u8, log: &Rc<ProbeLog>) -> Probe {
        let mut p = Probe::recv(size, fill, log);
        p.bytes.fill(fill);
        p.len = size;
        p
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let n = self.bytes.iter().filter(|&&b| b == self.fill).count();
        let foreign = self
            .bytes
            .iter()
            .filter(|&&b| b != 0 && b != self.fill)
            .count();
        self.log.fill_bytes.set(self.log.fill_bytes.get() + n);
        self.log.foreign.set(self.log.foreign.get() + foreign);
        self.log.dropped.set(self.log.dropped.get() + 1);
    }
}

// SAFETY: the bytes live in a Box, so moving the Probe does not move them; `len` never
// exceeds the slice.
unsafe impl IoBuf for Probe {
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

// SAFETY: as above; the whole zero-initialized slice is writable.
unsafe impl IoBufMut for Probe {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        self.len = n;
    }
}

/// Sends `data` on a raw socket without blocking; returns what was sent (0 when full).
fn send_now(fd: RawFd, data: &[u8]) -> usize {
    // SAFETY: `data` is a readable buffer of data.len() bytes alive across the call.
    let n = unsafe {
        libc::send(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).unwrap_or(0)
}

/// Receives what is queued on a raw socket or pipe now, without blocking.
fn drain_now(fd: RawFd, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while out.len() < limit {
        let want = chunk.len().min(limit - out.len());
        // SAFETY: `chunk` is writable for `want` bytes and outlives the call.
        let n = unsafe { libc::recv(fd, chunk.as_mut_ptr().cast(), want, libc::MSG_DONTWAIT) };
        let n = if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK) {
            // A pipe: make it non-blocking, then read.
            // SAFETY: fcntl and read on an fd we hold; `chunk` as above.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                libc::read(fd, chunk.as_mut_ptr().cast(), want)
            }
        } else {
            n
        };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n as usize]);
    }
    out
}

/// Fills a socket's send buffer (and the peer's receive buffer) until a send would block.
fn fill_socket(fd: RawFd, fill: u8) -> usize {
    let chunk = vec![fill; 64 * 1024];
    let mut total = 0;
    loop {
        let n = send_now(fd, &chunk);
        if n == 0 {
            return total;
        }
        total += n;
    }
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A connected TCP pair over loopback (client, server side), on the running loop.
async fn tcp_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().unwrap();
    let client = ringloop::spawn(async move { TcpStream::connect(addr).await.unwrap() });
    let (server, _) = listener.accept().await.unwrap();
    (client.await.unwrap(), server)
}

// ----- s01 -----

const PIPE_FILL: u8 = 0xAB;
const SOCK_FILL: u8 = 0x5A;
const SEND_FILL: u8 = 0xCD;
const CHUNK: usize = 64;

#[test]
fn s01_ten_thousand_ops_dropped_mid_flight() {
    let _serial = serial();
    let total = env_count("RINGLOOP_FAULTS_DROPS", 10_000);
    let rounds = 10.min(total.max(1));
    let per_round = total / rounds;
    EventLoop::new().unwrap().close().unwrap();
    let fds_before = open_fds();
    let l = EventLoop::new().unwrap();
    let baseline = l.ops_in_flight();
    let stats_before = l.driver_stats();
    let pipes_log = Rc::new(ProbeLog::default());
    let socks_log = Rc::new(ProbeLog::default());
    let sends_log = Rc::new(ProbeLog::default());
    let (mut pipe_written, mut pipe_left) = (0, 0);
    let (mut sock_written, mut sock_left) = (0, 0);
    let (mut send_room, mut sent_seen) = (0usize, 0usize);
    let mut accepted_by_orphans = 0;
    let mut timed_out = 0;
    let started = Instant::now();
    let listener = TcpListener::bind(localhost()).unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = Rc::new(listener);
    for round in 0..rounds {
        let pipes: Vec<(Fd, std::fs::File)> = (0..32)
            .map(|_| {
                let (r, w) = util::pipe();
                (Fd::from(r), std::fs::File::from(w))
            })
            .collect();
        let pairs: Vec<(Rc<UnixStream>, UnixStream)> = (0..16)
            .map(|_| {
                let (a, b) = UnixStream::pair().unwrap();
                (Rc::new(a), b)
            })
            .collect();
        let (full, full_peer) = UnixStream::pair().unwrap();
        let prefilled = fill_socket(full.as_raw_fd(), SEND_FILL);
        let full = Rc::new(full);
        let mut tasks: Vec<JoinHandle<()>> = Vec::with_capacity(per_round);
        let mut timeouts: Vec<JoinHandle<bool>> = Vec::new();
        let mut sends = 0;
        for i in 0..per_round {
            match i % 6 {
                0 => {
                    let r = pipes[i / 6 % pipes.len()].0.clone();
                    let buf = Probe::recv(256, PIPE_FILL, &pipes_log);
                    tasks.push(l.create_task(async move {
                        let _ = r.read(buf).await;
                    }));
                }
                1 => {
                    let s = pairs[i / 6 % pairs.len()].0.clone();
                    let buf = Probe::recv(256, SOCK_FILL, &socks_log);
                    tasks.push(l.create_task(async move {
                        let _ = s.read(buf).await;
                    }));
                }
                2 => {
                    let full = full.clone();
                    let buf = Probe::send(512, SEND_FILL, &sends_log);
                    sends += 1;
                    tasks.push(l.create_task(async move {
                        let _ = full.write(buf).await;
                    }));
                }
                3 => {
                    let listener = listener.clone();
                    tasks.push(l.create_task(async move {
                        let _ = listener.accept().await;
                    }));
                }
                4 => tasks.push(l.create_task(async {
                    ringloop::sleep(Duration::from_secs(60)).await;
                    panic!("a 60 s sleep ended");
                })),
                _ => {
                    let r = pipes[i / 6 % pipes.len()].0.clone();
                    let buf = Probe::recv(256, PIPE_FILL, &pipes_log);
                    timeouts.push(l.create_task(async move {
                        ringloop::timeout(Duration::from_millis(1), r.read(buf))
                            .await
                            .is_err()
                    }));
                }
            }
        }
        iterate(&l, 2);
        assert!(
            l.ops_in_flight() > baseline + per_round / 2,
            "round {round}: only {} ops in flight",
            l.ops_in_flight() - baseline
        );
        // Completions that race the cancels: data into half the pipes and sockets, a few
        // connections, room on the full socket.
        for (r, w) in pipes.iter().step_by(2) {
            let _ = r;
            w.try_clone()
                .unwrap()
                .write_all(&[PIPE_FILL; CHUNK])
                .unwrap();
            pipe_written += CHUNK;
        }
        for (_, peer) in pairs.iter().step_by(2) {
            assert_eq!(send_now(peer.as_raw_fd(), &[SOCK_FILL; CHUNK]), CHUNK);
            sock_written += CHUNK;
        }
        let clients: Vec<std::net::TcpStream> = (0..4)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let drained = drain_now(full_peer.as_raw_fd(), 256 * 1024);
        assert!(drained.iter().all(|&b| b == SEND_FILL), "garbage was sent");
        sent_seen += drained.len();
        for t in &tasks {
            t.cancel();
        }
        settle(&l, baseline);
        // The 1 ms timeouts end by themselves.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !timeouts.iter().all(|t| t.is_finished()) {
            assert!(Instant::now() < deadline, "a 1 ms timeout never fired");
            iterate(&l, 1);
        }
        settle(&l, baseline);
        for t in &timeouts {
            assert!(!t.failed(), "a timed-out read failed");
        }
        timed_out += timeouts.len();
        for t in &tasks {
            assert!(t.is_finished());
        }
        drop((tasks, timeouts));
        for (r, _) in &pipes {
            let left = drain_now(r.as_raw_fd(), usize::MAX);
            assert!(left.iter().all(|&b| b == PIPE_FILL));
            pipe_left += left.len();
        }
        for (s, _) in &pairs {
            let left = drain_now(s.as_raw_fd(), usize::MAX);
            assert!(left.iter().all(|&b| b == SOCK_FILL));
            sock_left += left.len();
        }
        let rest = drain_now(full_peer.as_raw_fd(), usize::MAX);
        assert!(rest.iter().all(|&b| b == SEND_FILL), "garbage was sent");
        sent_seen += rest.len();
        send_room += prefilled + sends * 512;
        // A connection an accept took before its cancel was closed by the orphan (FIN);
        // the others wait in the backlog until the listener closes.
        for c in &clients {
            let mut probe = [0u8; 1];
            c.set_nonblocking(true).unwrap();
            // SAFETY: a 1-byte buffer alive across the call.
            let n = unsafe { libc::recv(c.as_raw_fd(), probe.as_mut_ptr().cast(), 1, 0) };
            if n == 0 {
                accepted_by_orphans += 1;
            }
        }
    }
    let stats = l.driver_stats();
    assert_eq!(l.ops_in_flight(), baseline);
    l.close().unwrap();
    drop(l);
    drop(listener);
    for log in [&pipes_log, &socks_log, &sends_log] {
        assert_eq!(
            log.dropped.get(),
            log.created.get(),
            "a buffer was never freed"
        );
        assert_eq!(log.foreign.get(), 0, "a buffer holds bytes nobody sent");
    }
    // Every byte is either in an orphaned buffer (the kernel wrote it before the cancel)
    // or still in the pipe/socket: nothing lost, nothing duplicated.
    assert_eq!(
        pipes_log.fill_bytes.get() + pipe_left,
        pipe_written,
        "pipe bytes"
    );
    assert_eq!(
        socks_log.fill_bytes.get() + sock_left,
        sock_written,
        "socket bytes"
    );
    assert!(sent_seen <= send_room, "more bytes arrived than were sent");
    assert_eq!(stats.stale_cqes, 0, "{stats:?}");
    assert_eq!(stats.cq_overflow, 0, "{stats:?}");
    let fds_after = open_fds();
    assert_eq!(fds_before, fds_after, "fds leaked: {:#?}", fd_targets());
    let buffers = pipes_log.created.get() + socks_log.created.get() + sends_log.created.get();
    eprintln!(
        "s01: {} ops dropped mid-flight in {:?} ({} buffers freed after their CQEs, {} timeouts \
         fired; the kernel wrote {} of {} pipe bytes and {} of {} socket bytes into orphaned \
         buffers; {} of {} racing connections taken by an accept and closed, the rest left in the backlog; {} CQEs, 0 stale; fds {} -> {})",
        rounds * per_round,
        started.elapsed(),
        buffers,
        timed_out,
        pipes_log.fill_bytes.get(),
        pipe_written,
        socks_log.fill_bytes.get(),
        sock_written,
        accepted_by_orphans,
        rounds * 4,
        stats.cqes - stats_before.cqes,
        fds_before,
        fds_after,
    );
}

// ----- s02 -----

#[test]
fn s02_a_dropped_streams_pending_recv_never_touches_the_socket_reusing_its_fd() {
    let _serial = serial();
    let rounds = env_count("RINGLOOP_FAULTS_REUSE_ROUNDS", 500);
    EventLoop::new().unwrap().close().unwrap();
    let fds_before = open_fds();
    let l = EventLoop::new().unwrap();
    let log = Rc::new(ProbeLog::default());
    let started = Instant::now();
    let log2 = log.clone();
    let (reused, old_got) = l
        .run_until_complete(async move {
            let listener = TcpListener::bind(localhost()).unwrap();
            let running = ringloop::get_running_loop().unwrap();
            let baseline = running.ops_in_flight();
            let (mut reused, mut old_got) = (0, 0);
            for round in 0..rounds {
                let (old, old_peer) = tcp_pair(&listener).await;
                let old_fd = old.as_raw_fd();
                let buf = Probe::recv(4096, PIPE_FILL, &log2);
                let reader = ringloop::spawn(async move {
                    // The stream goes with the task: dropping the task drops both.
                    let _ = old.read(buf).await;
                });
                ringloop::sleep(Duration::ZERO).await;
                ringloop::sleep(Duration::ZERO).await;
                if round % 2 == 0 {
                    // The old peer's bytes race the cancel (they may go to the old op).
                    assert_eq!(send_now(old_peer.as_raw_fd(), &[PIPE_FILL; 100]), 100);
                }
                reader.cancel();
                assert!(matches!(reader.await, Err(Error::Cancelled) | Ok(())));
                if round % 4 < 2 {
                    // Let the old op's CQE arrive, so its fd is closed and its number free.
                    while running.ops_in_flight() > baseline {
                        ringloop::sleep(Duration::ZERO).await;
                    }
                }
                let (new, new_peer) = tcp_pair(&listener).await;
                if new.as_raw_fd() == old_fd || new_peer.as_raw_fd() == old_fd {
                    reused += 1;
                }
                drop(old_peer);
                // Both directions of the new connection carry their bytes intact.
                let seed = round as u64;
                let payload = util::pattern(seed, 3000);
                let (res, _) = new_peer.write_all(payload.clone()).await;
                res.unwrap();
                let mut v = util::Verifier::new(seed);
                while v.received < 3000 {
                    let (n, buf) = new.read(Vec::with_capacity(4096)).await;
                    let n = n.unwrap();
                    assert!(n > 0, "round {round}: early EOF");
                    v.feed(&buf[..n]);
                }
                v.assert_complete(3000, "the new socket's bytes");
                let (res, _) = new.write_all(payload).await;
                res.unwrap();
                let mut v = util::Verifier::new(seed);
                while v.received < 3000 {
                    let (n, buf) = new_peer.read(Vec::with_capacity(4096)).await;
                    let n = n.unwrap();
                    assert!(n > 0, "round {round}: early EOF");
                    v.feed(&buf[..n]);
                }
                v.assert_complete(3000, "the new socket's reply");
                while running.ops_in_flight() > baseline {
                    ringloop::sleep(Duration::ZERO).await;
                }
                old_got = log2.fill_bytes.get();
            }
            (reused, old_got)
        })
        .unwrap();
    let stats = l.driver_stats();
    l.close().unwrap();
    drop(l);
    assert_eq!(
        log.dropped.get(),
        log.created.get(),
        "a buffer was never freed"
    );
    // Old buffers hold only the old peer's bytes, or nothing: no byte of a new socket.
    assert_eq!(
        log.foreign.get(),
        0,
        "an old recv took a new socket's bytes"
    );
    assert_eq!(stats.stale_cqes, 0, "{stats:?}");
    assert!(
        reused * 4 >= rounds,
        "the fd number was reused in only {reused}/{rounds} rounds: the scenario did not happen"
    );
    assert_eq!(fds_before, open_fds(), "fds leaked: {:#?}", fd_targets());
    eprintln!(
        "s02: {rounds} streams dropped with a recv pending in {:?}; the fd number went to a new \
         socket in {reused} rounds; {old_got} bytes of the old peers reached old buffers, every \
         new socket got its 3000 bytes each way intact",
        started.elapsed()
    );
}

// ----- s03 -----

/// 16 pipe echo pairs moving `ops / 2` patterned writes and the reads that take them back,
/// all through `builder`'s loop; returns the driver's counters.
fn pipes_through_a_small_ring(builder: LoopBuilder, ops: usize) -> ringloop::DriverStats {
    const PIPES: usize = 16;
    let l = builder.build().unwrap();
    let per_pipe = ops.div_ceil(2 * PIPES);
    let sums = l
        .run_until_complete(async move {
            let tasks: Vec<_> = (0..PIPES)
                .map(|p| {
                    let (r, w) = util::pipe();
                    let (r, w) = (Fd::from(r), Fd::from(w));
                    ringloop::spawn(async move {
                        let mut v = util::Verifier::new(p as u64);
                        let mut off = 0u64;
                        for k in 0..per_pipe {
                            let len = 1 + (k * 31) % 200;
                            let mut chunk = vec![0; len];
                            util::fill_pattern(p as u64, off, &mut chunk);
                            off += len as u64;
                            let (res, _) = w.write_all(chunk).await;
                            res.unwrap();
                            while v.received < off {
                                let (n, buf) = r.read(Vec::with_capacity(256)).await;
                                v.feed(&buf[..n.unwrap()]);
                            }
                        }
                        v.assert_complete(off, "a pipe through the small ring");
                        off
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            total
        })
        .unwrap();
    assert!(sums > 0);
    let stats = l.driver_stats();
    l.close().unwrap();
    assert_eq!(stats.stale_cqes, 0, "{stats:?}");
    assert_eq!(stats.cq_overflow, 0, "{stats:?}");
    stats
}

#[test]
fn s03_a_four_entry_sq_drives_ten_thousand_ops() {
    let _serial = serial();
    const OPS: usize = 10_000;
    let started = Instant::now();
    // io_uring-specific: a full SQ exists only there, so the ring is asked for by name.
    let small = || EventLoop::builder().sq_entries(4).cq_entries(8);
    let stats = pipes_through_a_small_ring(small().engine(Engine::Uring), OPS);
    assert!(stats.sq_full > 0, "the 4-entry SQ never filled: {stats:?}");
    assert!(stats.sqes >= OPS as u64, "{stats:?}");
    eprintln!(
        "s03: io_uring, 4-entry SQ: {} SQEs ({OPS} reads and writes, 16 pipes at once) in {:?}; \
         the SQ was full {} times, {} enters, {} CQEs, 0 stale, 0 dropped",
        stats.sqes,
        started.elapsed(),
        stats.sq_full,
        stats.enters,
        stats.cqes
    );
    // The same traffic on the engine under test (the epoll engine has no SQ to fill).
    let stats = pipes_through_a_small_ring(small(), OPS);
    eprintln!("s03: engine under test: {stats:?}");
}

// ----- s04 -----

#[test]
fn s04_an_eight_entry_cq_takes_512_simultaneous_completions() {
    let _serial = serial();
    const PIPES: usize = 512;
    // io_uring-specific: an overflowing CQ exists only there.
    let l = EventLoop::builder()
        .engine(Engine::Uring)
        .sq_entries(4)
        .cq_entries(8)
        .build()
        .unwrap();
    let baseline = l.ops_in_flight();
    let mut writers = Vec::with_capacity(PIPES);
    let handles: Vec<_> = (0..PIPES)
        .map(|i| {
            let (r, w) = util::pipe();
            writers.push(std::fs::File::from(w));
            let r = Fd::from(r);
            l.create_task(async move {
                let (n, buf) = r.read(Vec::with_capacity(64)).await;
                (i, n.unwrap(), buf)
            })
        })
        .collect();
    iterate(&l, 3);
    assert_eq!(
        l.ops_in_flight(),
        baseline + PIPES,
        "all reads in the kernel"
    );
    let before = l.driver_stats();
    // All 512 complete at the next enter: 512 CQEs for an 8-entry CQ.
    for (i, w) in writers.iter_mut().enumerate() {
        w.write_all(&util::pattern(i as u64, 40)).unwrap();
    }
    let started = Instant::now();
    let all = l
        .run_until_complete(async move {
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        })
        .unwrap();
    let took = started.elapsed();
    assert_eq!(all.len(), PIPES);
    for (i, n, buf) in all {
        assert_eq!(n, 40, "pipe {i}");
        assert_eq!(buf, util::pattern(i as u64, 40), "pipe {i}");
    }
    let stats = l.driver_stats();
    l.close().unwrap();
    assert_eq!(stats.stale_cqes, 0, "{stats:?}");
    assert_eq!(
        stats.cq_overflow, 0,
        "the kernel dropped completions: {stats:?}"
    );
    assert!(stats.cqes - before.cqes >= PIPES as u64, "{stats:?}");
    assert!(
        stats.cq_backlogged > before.cq_backlogged,
        "the 8-entry CQ never overflowed: {stats:?}"
    );
    eprintln!(
        "s04: io_uring, 8-entry CQ: {PIPES} reads completed at once, all 512 delivered intact in \
         {took:?}; {} enters found completions held in the kernel's overflow list, {} enters, \
         {} CQEs, 0 dropped (cq_overflow {}), 0 stale",
        stats.cq_backlogged - before.cq_backlogged,
        stats.enters - before.enters,
        stats.cqes - before.cqes,
        stats.cq_overflow
    );
}

// ----- s14 -----

#[test]
fn s14_recv_vs_timeout_races_lose_no_byte() {
    let _serial = serial();
    // The full 100,000: ~1 s on io_uring, ~3 s on epoll here.
    let races = env_count("RINGLOOP_FAULTS_RACES", 100_000);
    let l = EventLoop::new().unwrap();
    let started = Instant::now();
    let (timeouts, reads, bytes) = l
        .run_until_complete(async move {
            let running = ringloop::get_running_loop().unwrap();
            let (a, b) = UnixStream::pair().unwrap();
            let peer = b.as_raw_fd();
            let sent = Rc::new(Cell::new(0u64));
            let mut v = util::Verifier::new(14);
            let (mut timeouts, mut reads) = (0u64, 0u64);
            let mut rng = 0x2545_F491_4F6C_DD1Du64;
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            // Delays around the timeout, many equal to it: the send and the timeout fire in
            // either order, in the same iteration or not.
            const STEPS_US: [u64; 6] = [0, 0, 10, 20, 20, 40];
            for _ in 0..races {
                let r = next();
                let to = Duration::from_micros(STEPS_US[(r % 6) as usize]);
                let send_at = Duration::from_micros(STEPS_US[((r >> 8) % 6) as usize]);
                let len = 1 + ((r >> 16) % 300) as usize;
                let sent2 = sent.clone();
                running.call_later(send_at, move || {
                    let mut chunk = vec![0; len];
                    util::fill_pattern(14, sent2.get(), &mut chunk);
                    assert_eq!(send_now(peer, &chunk), len, "the socket buffer filled up");
                    sent2.set(sent2.get() + len as u64);
                });
                let buf = vec![0u8; 1 + ((r >> 24) % 512) as usize];
                match ringloop::timeout(to, a.read(buf)).await {
                    Ok((n, buf)) => {
                        let n = n.unwrap();
                        v.feed(&buf[..n]);
                        reads += 1;
                    }
                    Err(Error::Timeout) => timeouts += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            // Every send is made by now; what is still in the socket is read with no deadline.
            ringloop::sleep(Duration::from_millis(1)).await;
            while v.received < sent.get() {
                match ringloop::timeout(Duration::from_secs(2), a.read(vec![0u8; 4096])).await {
                    Ok((n, buf)) => v.feed(&buf[..n.unwrap()]),
                    Err(_) => break, // bytes are missing: the check below says which
                }
            }
            // Nothing more arrives: no byte was read twice.
            ringloop::sleep(Duration::from_millis(5)).await;
            assert!(
                drain_now(a.as_raw_fd(), 1).is_empty(),
                "bytes after the end"
            );
            v.assert_complete(sent.get(), "bytes sent while recvs raced timeouts");
            drop(b);
            (timeouts, reads, sent.get())
        })
        .unwrap();
    let stats = l.driver_stats();
    l.close().unwrap();
    assert_eq!(stats.stale_cqes, 0, "{stats:?}");
    assert_eq!(timeouts + reads, races as u64);
    assert!(
        timeouts > races as u64 / 10 && reads > races as u64 / 10,
        "the races were one-sided: {timeouts} timeouts, {reads} reads"
    );
    eprintln!(
        "s14: {races} recv-vs-timeout races in {:?}: {timeouts} timeouts, {reads} reads won; \
         {bytes} bytes sent, all read exactly once and in order (patterned, checked byte by byte)",
        started.elapsed()
    );
}

#[test]
fn s14_a_read_dropped_right_after_its_submit_gives_its_bytes_to_the_next_read() {
    let _serial = serial();
    // The data is there when the read is submitted, so it completes at once, inline, in
    // the very enter that also carries its cancel: the orphan gets the bytes.
    let got = ringloop::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, w) = util::pipe();
        let (r, mut w) = (Fd::from(r), std::fs::File::from(w));
        let mut out = Vec::new();
        for round in 0..50u64 {
            let chunk = util::pattern(round, 100);
            assert_eq!(send_now(b.as_raw_fd(), &chunk), 100);
            w.write_all(&chunk).unwrap();
            let lost_sock = ringloop::timeout(Duration::ZERO, a.read(vec![0u8; 100])).await;
            let lost_pipe = ringloop::timeout(Duration::ZERO, r.read(vec![0u8; 100])).await;
            assert!(
                lost_sock.is_err() && lost_pipe.is_err(),
                "the timeouts fired"
            );
            let (n, buf) = a.read(Vec::with_capacity(100)).await;
            let (m, buf2) = r.read(Vec::with_capacity(100)).await;
            assert_eq!((n.unwrap(), m.unwrap()), (100, 100));
            assert_eq!(buf, chunk, "round {round}: socket");
            assert_eq!(buf2, chunk, "round {round}: pipe");
            out.push(round);
        }
        out.len()
    })
    .unwrap();
    assert_eq!(got, 50);
}

// ----- s15 -----

/// Schedules `n` timers in a scrambled order (deadlines over ~`n/2` µs, many equal),
/// cancels the odd ones, runs the loop until they are due, and checks the order.
fn timers_half_cancelled(n: u64) -> Duration {
    let l = EventLoop::new().unwrap();
    let fired = Rc::new(std::cell::RefCell::new(Vec::with_capacity(n as usize / 2)));
    let base = l.time() + Duration::from_millis(20);
    let mut handles = Vec::with_capacity(n as usize);
    for k in 0..n {
        let i = (k * 7919) % n; // a permutation: 7919 is prime and does not divide n
        let due = base + Duration::from_micros(i / 2);
        let f = fired.clone();
        let when = l.time();
        handles.push((
            i,
            l.call_at(due, move || {
                assert!(Instant::now() >= due, "a timer fired early");
                let _ = when;
                f.borrow_mut().push(i);
            }),
        ));
    }
    for (i, h) in &handles {
        if i % 2 == 1 {
            h.cancel();
        }
    }
    let l2 = l.clone();
    l.call_at(base + Duration::from_micros(n / 2 + 1000), move || {
        l2.stop()
    });
    let started = Instant::now();
    l.run_forever().unwrap();
    let took = started.elapsed();
    let mut expected: Vec<u64> = (0..n).filter(|i| i % 2 == 0).collect();
    expected.sort_by_key(|&i| i / 2);
    assert!(*fired.borrow() == expected, "timers fired out of order");
    drop(handles);
    l.close().unwrap();
    took
}

#[test]
fn s15_two_hundred_thousand_timers_half_cancelled_and_memory_comes_back() {
    let _serial = serial();
    const N: u64 = 200_000;
    let trim = || {
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe { libc::malloc_trim(0) };
    };
    // A first small run warms up what stays allocated (thread-locals, the loop's tables).
    timers_half_cancelled(1_000);
    trim();
    let before = util::rss_bytes();
    let first = timers_half_cancelled(N);
    trim();
    let after_first = util::rss_bytes();
    let mut second = Duration::ZERO;
    let mut rss = Vec::new();
    for _ in 0..env_count("RINGLOOP_FAULTS_TIMER_RUNS", 6).max(3) {
        second = timers_half_cancelled(N);
        trim();
        rss.push(util::rss_bytes());
    }
    let after = *rss.last().unwrap();
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "s15: {N} timers (half cancelled) fired in order in {first:?} and {second:?}; RSS \
         {:.1} MiB before, {:.1} MiB after one run, then {:?} MiB after each further run",
        mib(before),
        mib(after_first),
        rss.iter()
            .map(|&b| (mib(b) * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    // Near the baseline (the allocator keeps some freed arenas: a plateau of a few MiB,
    // not the ~30 MiB the timers take), and flat between the last runs: nothing leaks.
    const SLACK: usize = 8 << 20;
    assert!(
        after_first <= before + SLACK && after <= before + SLACK,
        "RSS did not come back: {before} -> {after_first} -> {rss:?} bytes"
    );
    // A leak shows as a slope: each run would keep its share of ~30 MiB of timers (even
    // a leaked 16-byte handle per cancelled timer is 1.6 MB a run). The allocator's own
    // noise is a step now and then (a new arena, other tests' threads in this binary), so
    // the check is the average growth per run after the second, not any single step.
    let settled = rss[1];
    let runs_after = rss.len() - 2;
    assert!(
        after <= settled + runs_after * (1 << 20),
        "RSS grows run after run (more than 1 MiB a run on average): {rss:?}"
    );
}

// ----- s16 -----

#[test]
fn s16_dropping_a_loop_with_a_thousand_ops_in_flight() {
    let _serial = serial();
    EventLoop::new().unwrap().close().unwrap();
    let fds_before = open_fds();
    let log = Rc::new(ProbeLog::default());
    let l = EventLoop::new().unwrap();
    let baseline = l.ops_in_flight();
    let pipes: Vec<(Fd, std::fs::File)> = (0..50)
        .map(|_| {
            let (r, w) = util::pipe();
            (Fd::from(r), std::fs::File::from(w))
        })
        .collect();
    let pairs: Vec<(Rc<UnixStream>, UnixStream)> = (0..50)
        .map(|_| {
            let (a, b) = UnixStream::pair().unwrap();
            (Rc::new(a), b)
        })
        .collect();
    let (full, full_peer) = UnixStream::pair().unwrap();
    fill_socket(full.as_raw_fd(), SEND_FILL);
    let full = Rc::new(full);
    let listener = Rc::new(TcpListener::bind(localhost()).unwrap());
    let mut handles = Vec::new();
    for i in 0..250 {
        let r = pipes[i % 50].0.clone();
        let buf = Probe::recv(256, PIPE_FILL, &log);
        handles.push(l.create_task(async move {
            let _ = r.read(buf).await;
        }));
        let s = pairs[i % 50].0.clone();
        let buf = Probe::recv(256, SOCK_FILL, &log);
        handles.push(l.create_task(async move {
            let _ = s.read(buf).await;
        }));
        let f = full.clone();
        let buf = Probe::send(512, SEND_FILL, &log);
        handles.push(l.create_task(async move {
            let _ = f.write(buf).await;
        }));
        let listener = listener.clone();
        handles.push(l.create_task(async move {
            let _ = listener.accept().await;
        }));
    }
    iterate(&l, 2);
    let in_flight = l.ops_in_flight() - baseline;
    assert!(in_flight >= 1000, "only {in_flight} ops in flight");
    // Completions race the teardown: the kernel writes into buffers while the loop goes.
    for (_, w) in pipes.iter().step_by(2) {
        w.try_clone()
            .unwrap()
            .write_all(&[PIPE_FILL; CHUNK])
            .unwrap();
    }
    drop(handles);
    let started = Instant::now();
    drop(l);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "dropping the loop took {took:?}"
    );
    assert_eq!(log.dropped.get(), log.created.get(), "buffers not freed");
    assert_eq!(log.foreign.get(), 0);
    drop((pipes, pairs, full, full_peer, listener));
    let fds_after = open_fds();
    assert_eq!(fds_before, fds_after, "fds leaked: {:#?}", fd_targets());
    eprintln!(
        "s16: a loop dropped with {in_flight} ops in flight (reads, recvs, blocked sends, \
         accepts) in {took:?}; {} buffers freed after their CQEs; fds {fds_before} -> {fds_after}",
        log.dropped.get()
    );
}

// ----- s17 -----

/// The targets (`socket:[N]`, `anon_inode:[io_uring]`, ...) of this process's fds.
fn own_fd_targets() -> std::collections::HashMap<String, String> {
    util::fd_targets()
        .into_iter()
        .filter_map(|l| {
            let (num, target) = l.split_once(" -> ")?;
            Some((num.to_string(), target.to_string()))
        })
        .collect()
}

/// The lines of a child's `ls -l /proc/self/fd` that name one of `ours`: each a leak.
fn leaked_into(listing: &str, ours: &std::collections::HashSet<String>) -> Vec<String> {
    listing
        .lines()
        .filter(|l| {
            l.split_once("-> ")
                .is_some_and(|(_, target)| ours.contains(target.trim()))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn s17_no_fd_of_the_loop_leaks_into_forked_or_spawned_children() {
    let _serial = serial();
    const SPAWNS: usize = 500;
    let started = Instant::now();
    // fds this process got from its parent (the test harness) are not the loop's.
    let inherited = own_fd_targets();
    let l = EventLoop::new().unwrap();
    let (leaks, watched) = l
        .run_until_complete(async move {
            let running = ringloop::get_running_loop().unwrap();
            // The loop's fds: the ring (or epoll fd), its eventfd, a signalfd, a listener,
            // a connection both ways, pipes with a read in flight.
            running.add_signal_handler(libc::SIGUSR2, || {}).unwrap();
            let listener = TcpListener::bind(localhost()).unwrap();
            let (client, server) = tcp_pair(&listener).await;
            let (r, w) = util::pipe();
            let r = Fd::from(r);
            let reader = ringloop::spawn(async move { r.read(Vec::with_capacity(8)).await });
            ringloop::sleep(Duration::ZERO).await;
            let ours: std::collections::HashSet<String> = own_fd_targets()
                .into_iter()
                .filter(|(num, t)| inherited.get(num) != Some(t) && !t.starts_with("/proc/"))
                .map(|(_, t)| t)
                .collect();
            assert!(ours.len() >= 6, "the loop's fds: {ours:?}");
            let mut leaks = Vec::new();
            for i in 0..SPAWNS {
                let listing = if i % 2 == 0 {
                    // ringloop's own spawn path.
                    let child = ringloop::process::Command::new("ls")
                        .args(["-l", "/proc/self/fd"])
                        .stdout(ringloop::process::Stdio::Piped)
                        .stdin(ringloop::process::Stdio::Null)
                        .spawn()
                        .unwrap();
                    let (out, _) = child.communicate(None).await.unwrap();
                    String::from_utf8_lossy(&out).to_string()
                } else {
                    let out = std::process::Command::new("ls")
                        .args(["-l", "/proc/self/fd"])
                        .stdin(std::process::Stdio::null())
                        .output()
                        .unwrap();
                    String::from_utf8_lossy(&out.stdout).to_string()
                };
                assert!(listing.contains("-> "), "no listing: {listing}");
                leaks.extend(leaked_into(&listing, &ours));
            }
            // A bare fork() + exec, as other libraries spawn.
            let forked = fork_exec_listing();
            leaks.extend(leaked_into(&forked, &ours));
            drop(w);
            let _ = reader.await;
            running.remove_signal_handler(libc::SIGUSR2).unwrap();
            drop((client, server, listener));
            let mut watched: Vec<String> = ours.into_iter().collect();
            watched.sort();
            (leaks, watched)
        })
        .unwrap();
    l.close().unwrap();
    assert!(leaks.is_empty(), "fds leaked into children: {leaks:#?}");
    eprintln!(
        "s17: {SPAWNS} children (half by ringloop::process, half by std) and one fork()+exec \
         inherited none of the {} fds the loop and its sockets held ({}) in {:?}",
        watched.len(),
        watched.join(", "),
        started.elapsed()
    );
}

/// fork() + execv(`/bin/ls -l /proc/self/fd`) with stdout to a pipe; returns the listing.
fn fork_exec_listing() -> String {
    use std::ffi::CString;
    use std::io::Read;
    let ls = CString::new("/bin/ls").unwrap();
    let args = [
        CString::new("ls").unwrap(),
        CString::new("-l").unwrap(),
        CString::new("/proc/self/fd").unwrap(),
    ];
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let (r, w) = util::pipe();
    // SAFETY: the child calls only async-signal-safe functions (dup2, execv, _exit) on
    // memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            libc::dup2(w.as_raw_fd(), 1);
            libc::execv(ls.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    drop(w);
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    out
}

// ----- s18, s19: in re-run children -----

/// A tiny TCP echo over loopback on `l`: 64 KiB each way, checked.
fn echo_on(l: &EventLoop) {
    l.run_until_complete(async {
        let listener = TcpListener::bind(localhost()).unwrap();
        let (client, server) = tcp_pair(&listener).await;
        let echo = ringloop::spawn(async move {
            loop {
                let (n, buf) = server.read(Vec::with_capacity(8192)).await;
                match n.unwrap() {
                    0 => break,
                    n => server.write_all(buf[..n].to_vec()).await.0.unwrap(),
                }
            }
        });
        let payload = util::pattern(18, 64 * 1024);
        let (res, _) = client.write_all(payload).await;
        res.unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut v = util::Verifier::new(18);
        loop {
            let (n, buf) = client.read(Vec::with_capacity(8192)).await;
            match n.unwrap() {
                0 => break,
                n => v.feed(&buf[..n]),
            }
        }
        v.assert_complete(64 * 1024, "echo");
        echo.await.unwrap();
    })
    .unwrap();
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn s18_refused_io_uring_gives_a_typed_error_and_auto_falls_back_once() {
    const NAME: &str = "s18_refused_io_uring_gives_a_typed_error_and_auto_falls_back_once";
    if util::child_role().as_deref() == Some("s18") {
        util::seccomp::refuse_io_uring_setup(libc::ENOSYS);
        match EventLoop::builder().engine(Engine::Uring).build() {
            Err(Error::Unavailable(e)) => println!("TYPED: {e}"),
            Err(other) => panic!("expected Error::Unavailable, got {other:?}"),
            Ok(_) => panic!("io_uring is refused, yet a ring was built"),
        }
        for _ in 0..3 {
            let l = EventLoop::builder().engine(Engine::Auto).build().unwrap();
            assert_eq!(l.engine(), Engine::Epoll);
            echo_on(&l);
            l.close().unwrap();
        }
        println!("CHILD-OK");
        return;
    }
    let _serial = serial();
    let out = util::run_child(NAME, "s18", Duration::from_secs(60));
    let text = util::describe(&out);
    assert!(out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CHILD-OK"), "{text}");
    let typed = stdout
        .lines()
        .find_map(|l| l.split("TYPED: ").nth(1))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        typed.contains("ENOSYS") && typed.contains("epoll"),
        "{typed}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("falling back to the epoll engine").count(),
        1,
        "three Auto loops must say so exactly once:\n{text}"
    );
    eprintln!(
        "s18: seccomp ENOSYS: Engine::Uring -> Error::Unavailable({typed:?}); three \
         Engine::Auto loops ran a 64 KiB echo on epoll, the fallback said once on stderr"
    );
}

#[test]
fn s19_rlimit_memlock_zero_works_or_says_why() {
    const NAME: &str = "s19_rlimit_memlock_zero_works_or_says_why";
    if util::child_role().as_deref() == Some("s19") {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit reads the struct we pass.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &zero) }, 0);
        match EventLoop::builder().engine(Engine::Uring).build() {
            Ok(l) => {
                echo_on(&l);
                println!("OUTCOME: works ({:?})", l.setup_mode());
                l.close().unwrap();
            }
            Err(Error::Unavailable(e)) => {
                assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}");
                println!("OUTCOME: refused: {e}");
            }
            Err(other) => panic!("an unclear error: {other:?}"),
        }
        let l = EventLoop::builder().engine(Engine::Auto).build().unwrap();
        echo_on(&l);
        l.close().unwrap();
        println!("CHILD-OK");
        return;
    }
    let _serial = serial();
    let out = util::run_child(NAME, "s19", Duration::from_secs(60));
    let text = util::describe(&out);
    assert!(out.status.success(), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CHILD-OK"), "{text}");
    let outcome = stdout
        .lines()
        .find_map(|l| l.split("OUTCOME: ").nth(1))
        .unwrap_or_else(|| panic!("{text}"));
    eprintln!("s19: RLIMIT_MEMLOCK=0 on Linux {}: {outcome}", kernel());
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
