//! Network fault scenarios (issue 6, scenarios 5–13, 20, 21), each provoked for real on
//! loopback: a signal storm, a starved buffer ring, multishot ops ended by the kernel,
//! `EMFILE`, tiny socket buffers, a protocol ignoring backpressure, resets, `SIGPIPE` at
//! its default, half-closes with data in flight, UDP edge cases, and 2,000 idle
//! connections. Every scenario checks that no fd leaked, no byte was lost, repeated or
//! reordered (patterned payloads), and prints its figure.
//!
//! The scenarios count `/proc/self/fd`, change process-wide limits and signal handlers,
//! and measure RSS and CPU time, so they run one at a time (a file-wide lock).

mod util;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringloop::{
    DatagramProtocol, Engine, EventLoop, LoopBuilder, Protocol, StreamTransport, get_running_loop,
};
use util::*;

// ----- shared helpers -----

/// Whether the tests run on the epoll engine (`RINGLOOP_ENGINE=epoll`).
fn on_epoll() -> bool {
    std::env::var("RINGLOOP_ENGINE").is_ok_and(|v| v == "epoll")
}

/// The loop builder for scenarios about the buffer ring: io_uring, explicitly.
fn uring() -> LoopBuilder {
    EventLoop::builder().engine(Engine::Uring)
}

fn setsockopt_int(fd: i32, level: i32, name: i32, value: i32) {
    // SAFETY: setsockopt reads `size_of::<i32>()` bytes at the pointer we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", io::Error::last_os_error());
}

/// Makes closing `s` send a reset (`SO_LINGER` 0).
fn linger_zero(s: &impl AsRawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `size_of::<linger>()` bytes at the pointer we pass.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
}

/// An ioctl that reads one int (`SIOCOUTQ`, `FIONREAD`).
fn ioctl_int(fd: i32, req: libc::c_ulong) -> usize {
    let mut v: libc::c_int = 0;
    // SAFETY: both requests write one int at the pointer we pass.
    let rc = unsafe { libc::ioctl(fd, req, &mut v) };
    assert_eq!(rc, 0, "ioctl: {}", io::Error::last_os_error());
    v as usize
}

fn transport_fd(t: &StreamTransport) -> i32 {
    match t.get_extra_info("socket") {
        Some(ringloop::transport::ExtraInfo::Fd(fd)) => fd,
        other => panic!("no socket fd: {other:?}"),
    }
}

/// Reads a patterned stream to its end on a blocking socket, checking every byte.
fn read_verify(s: &mut std::net::TcpStream, seed: u64) -> Verifier {
    let mut v = Verifier::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return v,
            Ok(n) => v.feed(&buf[..n]),
            Err(e) => panic!("peer read after {} bytes: {e}", v.received),
        }
    }
}

/// How long the fd-leak checks ([`assert_fds_back_to`]) wait for fds whose last holder is
/// on its way out (the executor's worker drops a finished job's loop handle, and its
/// wake-up fd, on its own schedule).
/// (A transport kept past the loop's close keeps the loop's wake-up fd: drop them first,
/// see [`forget_transport`].)
const FDS_SETTLE: Duration = Duration::from_secs(2);

/// Drops the transport a [`Recorder`] kept (it holds its loop, and the loop's fds).
fn forget_transport(seen: &Seen) {
    seen.transport.borrow_mut().take();
}

// ----- 5: a signal storm -----

static SIGPROF_SEEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_sigprof(_: libc::c_int) {
    SIGPROF_SEEN.fetch_add(1, Ordering::Relaxed);
}

/// Installs a no-op SIGPROF handler without `SA_RESTART` and a 100 µs profiling timer;
/// dropping it stops the timer and restores the previous handler.
struct SignalStorm {
    old: libc::sigaction,
}

impl SignalStorm {
    fn start() -> SignalStorm {
        // SAFETY: sigaction reads `new` and fills `old`; the handler only bumps an
        // atomic (async-signal-safe).
        let old = unsafe {
            let mut new = std::mem::zeroed::<libc::sigaction>();
            new.sa_sigaction = on_sigprof as extern "C" fn(libc::c_int) as usize;
            new.sa_flags = 0; // no SA_RESTART: interrupted syscalls fail with EINTR
            libc::sigemptyset(&mut new.sa_mask);
            let mut old = std::mem::zeroed::<libc::sigaction>();
            assert_eq!(libc::sigaction(libc::SIGPROF, &new, &mut old), 0);
            old
        };
        let every = libc::timeval {
            tv_sec: 0,
            tv_usec: 100,
        };
        let it = libc::itimerval {
            it_interval: every,
            it_value: every,
        };
        // SAFETY: setitimer reads the struct we pass.
        let rc = unsafe { libc::setitimer(libc::ITIMER_PROF, &it, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "setitimer: {}", io::Error::last_os_error());
        SignalStorm { old }
    }
}

impl Drop for SignalStorm {
    fn drop(&mut self) {
        // SAFETY: an all-zero itimerval disarms the timer; sigaction reads `old`.
        unsafe {
            let off = std::mem::zeroed::<libc::itimerval>();
            libc::setitimer(libc::ITIMER_PROF, &off, std::ptr::null_mut());
            libc::sigaction(libc::SIGPROF, &self.old, std::ptr::null_mut());
        }
    }
}

/// SIGPROF every 100 µs of CPU time, no `SA_RESTART`, while 16 connections echo 2 MiB
/// each (server loop on its own thread): no `EINTR` reaches a transport or a future, and
/// every byte comes back.
#[test]
fn s05_signal_storm_while_echoing() {
    let _g = serial();
    const CONNS: u64 = 16;
    const LEN: usize = 2 << 20;
    let fds = open_fds();
    SIGPROF_SEEN.store(0, Ordering::Relaxed);
    let storm = SignalStorm::start();
    let srv = EchoServerThread::start(EventLoop::builder(), "127.0.0.1:0");
    let addr = srv.addr;
    let started = Instant::now();
    let verifiers = run_on(EventLoop::builder(), Duration::from_secs(30), async move {
        let l = get_running_loop().unwrap();
        let exceptions = count_exceptions();
        // Rounds of echoes until enough signals landed (or 3 s passed).
        let mut out = Vec::new();
        let start = Instant::now();
        while SIGPROF_SEEN.load(Ordering::Relaxed) < 300 && start.elapsed() < Duration::from_secs(3)
        {
            let base = out.len() as u64;
            let handles: Vec<_> = (0..CONNS)
                .map(|i| ringloop::spawn(echo_client(addr, base + i, LEN, 64 * 1024)))
                .collect();
            for h in handles {
                out.push(h.await.expect("client task"));
            }
            // Timers and blocking work under the storm too.
            ringloop::sleep(Duration::from_millis(1)).await;
            let v = l.run_in_executor(|| 7).await.expect("executor");
            assert_eq!(v, 7);
        }
        assert!(exceptions.borrow().is_empty(), "{:?}", exceptions.borrow());
        out
    });
    let elapsed = started.elapsed();
    let report = srv.stop();
    drop(storm);
    let signals = SIGPROF_SEEN.load(Ordering::Relaxed);
    for v in &verifiers {
        v.assert_complete(LEN as u64, &format!("connection {}", v.seed));
    }
    assert_eq!(srv_errors(&report), 0);
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s05: {signals} SIGPROF delivered in {elapsed:.2?} while echoing {} connections x {} MiB; no EINTR surfaced, all bytes verified",
        verifiers.len(),
        LEN >> 20
    );
    assert!(
        signals >= 100,
        "the storm hardly happened: {signals} signals"
    );
}

fn srv_errors(r: &ServerReport) -> u64 {
    r.stats.stale_cqes + r.stats.cq_overflow
}

// ----- 6: a starved buffer ring -----

/// 32 peers blast 1 MiB each through an echo server whose buffer ring has 4 buffers of
/// 4 KiB: receives find the ring empty (`ENOBUFS`) again and again; each re-arms, no
/// connection closes early, every byte comes back, every buffer returns to the ring.
/// (`net_echo::tiny_buffer_ring_32_busy_peers` does the same one-way with 2 MiB each.)
#[test]
fn s06_buffer_ring_exhaustion_32_peers() {
    let _g = serial();
    if on_epoll() {
        eprintln!("s06: the buffer ring is io_uring's; this scenario runs on the uring engine");
    }
    const PEERS: u64 = 32;
    const LEN: usize = 1 << 20;
    let fds = open_fds();
    let srv = EchoServerThread::start(uring().recv_buffers(4, 4096), "127.0.0.1:0");
    let addr = srv.addr;
    let started = Instant::now();
    let verifiers = run_on(EventLoop::builder(), Duration::from_secs(30), async move {
        let handles: Vec<_> = (0..PEERS)
            .map(|seed| ringloop::spawn(echo_client(addr, seed, LEN, 64 * 1024)))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.expect("client task"));
        }
        out
    });
    let elapsed = started.elapsed();
    let stats = srv.stats.clone();
    let report = srv.stop();
    for v in &verifiers {
        v.assert_complete(LEN as u64, &format!("peer {}", v.seed));
    }
    assert_eq!(stats.made.load(Ordering::Relaxed), PEERS as usize);
    assert_eq!(
        stats.lost_error.load(Ordering::Relaxed),
        0,
        "a peer was lost"
    );
    assert_eq!(report.recv_buffers_in_use, 0, "{report:?}");
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s06: {PEERS} peers x 1 MiB echoed through 4 x 4 KiB provided buffers in {elapsed:.2?}: {} ENOBUFS re-armed, {} multishot receives ended by the kernel, 0 connections lost",
        report.stats.enobufs, report.stats.multishot_ended
    );
    assert!(
        report.stats.enobufs > 0,
        "the ring never ran dry: {report:?}"
    );
}

// ----- 7 and 8: multishot accept ended by EMFILE, and the EMFILE back-off -----

/// An echo protocol whose first 8 bytes name the connection; it records the name, the
/// bytes that followed and how the connection ended.
struct Named {
    transport: Option<StreamTransport>,
    head: Vec<u8>,
    id: Option<u64>,
    verifier: Verifier,
    done: Rc<RefCell<Vec<NamedEnd>>>,
}

/// A [`Named`] connection's name, stream, and `connection_lost` error code.
type NamedEnd = (u64, Verifier, Option<i32>);

impl Protocol for Named {
    fn connection_made(&mut self, t: &StreamTransport) {
        self.transport = Some(t.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data).expect("echo write");
        }
        let mut rest = data;
        if self.id.is_none() {
            let take = (8 - self.head.len()).min(rest.len());
            self.head.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.head.len() == 8 {
                let id = u64::from_le_bytes(self.head[..].try_into().unwrap());
                self.id = Some(id);
                self.verifier = Verifier::new(id);
            }
        }
        if self.id.is_some() {
            self.verifier.feed(rest);
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let code = exc.map(|e| e.raw_os_error().unwrap_or(-1));
        let id = self.id.unwrap_or(u64::MAX);
        self.done
            .borrow_mut()
            .push((id, std::mem::take(&mut self.verifier), code));
        self.transport = None;
    }
}

/// What an [`emfile_round`] saw.
struct Round {
    /// Per connection name, how often the server saw it, and its stream.
    seen: HashMap<u64, (usize, Verifier, Option<i32>)>,
    emfile_reports: usize,
    other_reports: Vec<String>,
    /// Loop-thread CPU time and wall time from the first EMFILE to the last echo.
    cpu: Duration,
    wall: Duration,
    stats: ringloop::DriverStats,
    buffers_in_use: usize,
}

/// A new TCP socket, not connected yet (made before the fd limit is lowered).
fn raw_tcp_socket() -> OwnedFd {
    // SAFETY: socket takes no pointers; on success we own the new fd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", io::Error::last_os_error());
    // SAFETY: a fresh fd nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn connect_raw(fd: OwnedFd, addr: SocketAddr) -> std::net::TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: connect reads a sockaddr_in of the length we pass.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "connect: {}", io::Error::last_os_error());
    std::net::TcpStream::from(fd)
}

/// `clients` connections made at once against a server with room for only `room` more
/// fds: each sends its 8-byte name and `len` patterned bytes, half-closes, and reads the
/// echo back. The client sockets exist before the limit is lowered, so only the server
/// runs out; it must back off, resume as connections end, and serve every client once.
fn emfile_round(builder: LoopBuilder, clients: usize, room: u64, len: usize) -> Round {
    let done = Rc::new(RefCell::new(Vec::new()));
    let d2 = done.clone();
    let sockets: Vec<OwnedFd> = (0..clients).map(|_| raw_tcp_socket()).collect();
    let first_emfile: Rc<Cell<Option<(Instant, Duration)>>> = Rc::new(Cell::new(None));
    let emfile = Rc::new(Cell::new(0usize));
    let other = Rc::new(RefCell::new(Vec::new()));
    let (f2, e2, o2) = (first_emfile.clone(), emfile.clone(), other.clone());
    let (stats, buffers_in_use, cpu, wall) = run_on(builder, Duration::from_secs(60), async move {
        let l = get_running_loop().unwrap();
        l.set_exception_handler(Some(
            move |_: &EventLoop, ctx: &ringloop::ExceptionContext| {
                let text = format!("{}: {:?}", ctx.message, ctx.error);
                if ctx.message.contains("accept") && text.contains("Too many open files") {
                    if f2.get().is_none() {
                        f2.set(Some((Instant::now(), thread_cpu())));
                    }
                    e2.set(e2.get() + 1);
                } else {
                    o2.borrow_mut().push(text);
                }
            },
        ));
        let server = l
            .create_server(
                move || Named {
                    transport: None,
                    head: Vec::new(),
                    id: None,
                    verifier: Verifier::default(),
                    done: d2.clone(),
                },
                "127.0.0.1:0",
            )
            .await
            .unwrap();
        let addr = server.sockets()[0];
        let old = nofile();
        let _restore = NofileGuard(old);
        set_nofile(libc::rlimit {
            // `room` fd numbers past those in use, and one more: the bound these
            // scenarios were tuned with counted the `/proc/self/fd` stream's own fd too.
            rlim_cur: open_fds() as u64 + room + 1,
            rlim_max: old.rlim_max,
        });
        // One blocking thread: connect everything (the backlog holds it all), send
        // everything, then read each echo in turn.
        let client = l.run_in_executor(move || {
            let mut streams: Vec<_> = sockets
                .into_iter()
                .map(|fd| connect_raw(fd, addr))
                .collect();
            for (id, s) in streams.iter_mut().enumerate() {
                let mut data = (id as u64).to_le_bytes().to_vec();
                data.extend_from_slice(&pattern(id as u64, len));
                s.write_all(&data).expect("client write");
                s.shutdown(std::net::Shutdown::Write).expect("shutdown");
            }
            let mut bad = Vec::new();
            for (id, mut s) in streams.into_iter().enumerate() {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut back = Vec::new();
                let ok = s.read_to_end(&mut back).is_ok()
                    && back.len() == len + 8
                    && back[..8] == (id as u64).to_le_bytes()
                    && back[8..] == pattern(id as u64, len)[..];
                if !ok {
                    bad.push(id);
                }
            }
            bad
        });
        let bad = client.await.expect("the client thread");
        assert!(bad.is_empty(), "clients not served right: {bad:?}");
        let (cpu, wall) = match first_emfile.get() {
            Some((at, c)) => (thread_cpu() - c, at.elapsed()),
            None => (Duration::ZERO, Duration::ZERO),
        };
        drop(_restore);
        wait_until(Duration::from_secs(10), "every connection ended", || {
            server.active_connections() == 0
        })
        .await;
        assert!(server.is_serving(), "the server stopped serving");
        server.close();
        server.wait_closed().await;
        (l.driver_stats(), l.recv_buffers_in_use(), cpu, wall)
    });
    let mut seen: HashMap<u64, (usize, Verifier, Option<i32>)> = HashMap::new();
    for (id, v, err) in done.borrow().iter() {
        let e = seen.entry(*id).or_insert((0, v.clone(), *err));
        e.0 += 1;
    }
    let emfile_reports = emfile.get();
    let other_reports = other.borrow().clone();
    Round {
        seen,
        emfile_reports,
        other_reports,
        cpu,
        wall,
        stats,
        buffers_in_use,
    }
}

/// Asserts that the server saw connections `0..n` exactly once each, all bytes right.
fn assert_each_once(r: &Round, n: usize, len: usize) {
    assert_eq!(r.seen.len(), n, "distinct connections seen by the server");
    for id in 0..n as u64 {
        let (count, v, err) = r
            .seen
            .get(&id)
            .unwrap_or_else(|| panic!("connection {id} was never accepted"));
        assert_eq!(*count, 1, "connection {id} accepted {count} times");
        assert_eq!(*err, None, "connection {id} lost with an error");
        v.assert_complete(len as u64, &format!("connection {id}"));
    }
    assert!(r.other_reports.is_empty(), "{:?}", r.other_reports);
}

/// Multishot ops ended by the kernel (no `F_MORE`): the accept ends with `EMFILE` when
/// the fd limit is hit, and the receives end with `ENOBUFS` when a 4-buffer ring runs
/// dry. Both are re-armed; 64 connections are each accepted exactly once, all bytes
/// echoed.
#[test]
fn s07_multishot_ended_by_the_kernel_rearms() {
    let _g = serial();
    const N: usize = 64;
    const LEN: usize = 16 * 1024;
    let fds = open_fds();
    if on_epoll() {
        eprintln!("s07: the multishot receive and its buffer ring are io_uring's: uring engine");
    }
    let r = emfile_round(uring().recv_buffers(4, 1024), N, 8, LEN);
    assert_each_once(&r, N, LEN);
    assert!(r.emfile_reports >= 1, "the accept never hit EMFILE");
    assert_eq!(r.buffers_in_use, 0);
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s07: {N} connections, each accepted exactly once; {} multishot ops ended by the kernel and re-armed ({} EMFILE accepts, {} ENOBUFS receives)",
        r.stats.multishot_ended, r.emfile_reports, r.stats.enobufs
    );
    assert!(r.stats.enobufs > 0, "the ring never ran dry: {:?}", r.stats);
    assert!(
        r.stats.multishot_ended >= 2,
        "the kernel ended too few multishot ops: {:?}",
        r.stats
    );
}

/// 200 connections arrive at once at a server with room for 12 more fds: accept fails
/// with `EMFILE`, the server backs off (its loop thread stays nearly idle), resumes as
/// connections end, and serves all 200, each once.
#[test]
fn s08_emfile_backs_off_200_connects() {
    let _g = serial();
    const N: usize = 200;
    const LEN: usize = 8 * 1024;
    let fds = open_fds();
    let r = emfile_round(EventLoop::builder(), N, 12, LEN);
    assert_each_once(&r, N, LEN);
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s08: {N} concurrent connects, 12 fds of room: {} EMFILE back-offs, loop thread CPU {:.1?} in {:.2?} after the first, all {N} served once",
        r.emfile_reports, r.cpu, r.wall
    );
    assert!(r.emfile_reports >= 1, "accept never hit EMFILE");
    assert!(
        r.cpu * 4 < r.wall,
        "spinning while out of fds: {:?} CPU in {:?}",
        r.cpu,
        r.wall
    );
}

// ----- 9 and 10: tiny socket buffers, and a protocol that ignores backpressure -----

/// Records pause/resume and whether the protocol is paused.
struct Flow {
    paused: Rc<Cell<bool>>,
    pauses: Rc<Cell<usize>>,
    resumes: Rc<Cell<usize>>,
    lost: Rc<RefCell<Vec<Option<i32>>>>,
}

impl Protocol for Flow {
    fn pause_writing(&mut self) {
        assert!(!self.paused.get(), "pause_writing twice in a row");
        self.paused.set(true);
        self.pauses.set(self.pauses.get() + 1);
    }
    fn resume_writing(&mut self) {
        assert!(self.paused.get(), "resume_writing without a pause");
        self.paused.set(false);
        self.resumes.set(self.resumes.get() + 1);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.lost
            .borrow_mut()
            .push(exc.map(|e| e.raw_os_error().unwrap_or(-1)));
    }
}

/// A blocking listener whose accepted sockets get a 4 KiB receive buffer; the peer thread
/// waits for `go`, then reads everything and checks it against `seed`.
/// Also returns the accepted socket's fd number (valid until `go`, as the thread holds it).
#[allow(clippy::type_complexity)]
fn slow_peer(
    seed: u64,
) -> (
    SocketAddr,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<i32>,
    std::thread::JoinHandle<Verifier>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    setsockopt_int(
        listener.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        4096,
    );
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (fd_tx, fd_rx) = std::sync::mpsc::channel::<i32>();
    let join = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        fd_tx.send(s.as_raw_fd()).unwrap();
        rx.recv_timeout(Duration::from_secs(30)).expect("go");
        read_verify(&mut s, seed)
    });
    (addr, tx, fd_rx, join)
}

/// Our side has a 4 KiB send buffer, the peer a 4 KiB receive buffer and it does not read:
/// `pause_writing` fires and the write buffer stays under the high-water mark plus one
/// write. Then the peer reads: `resume_writing`, and all 4 MiB arrive in order.
#[test]
fn s09_tiny_socket_buffers_peer_never_reads() {
    let _g = serial();
    const TOTAL: usize = 4 << 20;
    const CHUNK: usize = 16 * 1024;
    const HIGH: usize = 64 * 1024;
    let fds = open_fds();
    let (addr, go, _peer_fd, peer) = slow_peer(9);
    let (paused, pauses, resumes) = (
        Rc::new(Cell::new(false)),
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
    );
    let lost = Rc::new(RefCell::new(Vec::new()));
    let (p2, pa2, r2, l2) = (
        paused.clone(),
        pauses.clone(),
        resumes.clone(),
        lost.clone(),
    );
    let (paused_in, lost_in) = (paused.clone(), lost.clone());
    let (max_held, max_before_go) = run(async move {
        let (paused, lost) = (paused_in, lost_in);
        let l = get_running_loop().unwrap();
        let exceptions = count_exceptions();
        let (t, _p) = l
            .create_connection(
                move || Flow {
                    paused: p2,
                    pauses: pa2,
                    resumes: r2,
                    lost: l2,
                },
                &addr.to_string(),
            )
            .await
            .unwrap();
        setsockopt_int(transport_fd(&t), libc::SOL_SOCKET, libc::SO_SNDBUF, 4096);
        t.set_write_buffer_limits(Some(HIGH), Some(HIGH / 4))
            .unwrap();
        let mut off = 0;
        let mut max_held = 0;
        let mut max_before_go = 0;
        let mut go = Some(go);
        let mut waited = Duration::ZERO;
        while off < TOTAL {
            if paused.get() {
                // Hold the peer back a while once paused, then let it read.
                ringloop::sleep(Duration::from_millis(5)).await;
                waited += Duration::from_millis(5);
                max_before_go = max_before_go.max(t.get_write_buffer_size());
                if waited >= Duration::from_millis(200)
                    && let Some(g) = go.take()
                {
                    g.send(()).unwrap();
                }
                continue;
            }
            let mut chunk = vec![0; CHUNK];
            fill_pattern(9, off as u64, &mut chunk);
            t.write(&chunk).unwrap();
            off += CHUNK;
            max_held = max_held.max(t.get_write_buffer_size());
            // Yield now and then so sends run (and the buffers fill).
            ringloop::sleep(Duration::ZERO).await;
        }
        if let Some(g) = go.take() {
            g.send(()).unwrap();
        }
        t.close();
        wait_until(Duration::from_secs(20), "connection_lost", || {
            !lost.borrow().is_empty()
        })
        .await;
        assert!(exceptions.borrow().is_empty(), "{:?}", exceptions.borrow());
        (max_held, max_before_go)
    });
    let v = peer.join().expect("peer");
    v.assert_complete(TOTAL as u64, "peer");
    assert_eq!(*lost.borrow(), vec![None]);
    assert!(pauses.get() >= 1, "pause_writing never fired");
    assert_eq!(pauses.get(), resumes.get(), "pauses and resumes alternate");
    assert!(
        max_held <= HIGH + CHUNK,
        "write buffer reached {max_held} > high {HIGH} + one write {CHUNK}"
    );
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s09: 4 KiB socket buffers, peer not reading: {} pauses, write buffer peaked at {max_held} B (paused: {max_before_go} B; bound {} B); 4 MiB verified after",
        pauses.get(),
        HIGH + CHUNK
    );
}

/// A protocol that ignores `pause_writing` writes 8 MiB while the peer reads nothing: the
/// buffer grows, `get_write_buffer_size` reports it exactly (written minus what the
/// kernel holds or delivered), and once the peer reads, nothing is lost.
#[test]
fn s10_protocol_ignoring_pause_writing() {
    let _g = serial();
    const TOTAL: usize = 8 << 20;
    const CHUNK: usize = 64 * 1024;
    let fds = open_fds();
    let (addr, go, peer_fd, peer) = slow_peer(10);
    let (paused, pauses, resumes) = (
        Rc::new(Cell::new(false)),
        Rc::new(Cell::new(0)),
        Rc::new(Cell::new(0)),
    );
    let lost = Rc::new(RefCell::new(Vec::new()));
    let (p2, pa2, r2, l2) = (
        paused.clone(),
        pauses.clone(),
        resumes.clone(),
        lost.clone(),
    );
    let lost_in = lost.clone();
    let (before_flush, held, ours, theirs) = run(async move {
        let lost = lost_in;
        let l = get_running_loop().unwrap();
        let (t, _p) = l
            .create_connection(
                move || Flow {
                    paused: p2,
                    pauses: pa2,
                    resumes: r2,
                    lost: l2,
                },
                &addr.to_string(),
            )
            .await
            .unwrap();
        let fd = transport_fd(&t);
        let peer_fd = peer_fd.recv_timeout(Duration::from_secs(10)).unwrap();
        let mut chunk = vec![0; CHUNK];
        for off in (0..TOTAL).step_by(CHUNK) {
            fill_pattern(10, off as u64, &mut chunk);
            t.write(&chunk).unwrap();
        }
        // Nothing was sent yet (the flush runs before the loop's next submit).
        let before_flush = t.get_write_buffer_size();
        // Let the kernel take what it can, until nothing moves.
        let mut last = usize::MAX;
        loop {
            ringloop::sleep(Duration::from_millis(50)).await;
            let now = t.get_write_buffer_size();
            if now == last {
                break;
            }
            last = now;
        }
        let held = t.get_write_buffer_size();
        // What left our buffer sits in our send queue (SIOCOUTQ) or the peer's
        // receive queue (FIONREAD); the peer reads nothing yet.
        let ours = ioctl_int(fd, libc::TIOCOUTQ);
        let theirs = ioctl_int(peer_fd, libc::FIONREAD);
        go.send(()).unwrap();
        t.close();
        wait_until(Duration::from_secs(20), "connection_lost", || {
            !lost.borrow().is_empty()
        })
        .await;
        (before_flush, held, ours, theirs)
    });
    let v = peer.join().expect("peer");
    v.assert_complete(TOTAL as u64, "peer");
    assert_eq!(before_flush, TOTAL, "the buffer holds every byte written");
    assert!(held > TOTAL / 2, "the buffer did not grow: {held}");
    assert!(pauses.get() >= 1, "pause_writing was not even called");
    assert_eq!(
        held + ours + theirs,
        TOTAL,
        "buffer {held} + our send queue {ours} + the peer's receive queue {theirs}"
    );
    assert_eq!(*lost.borrow(), vec![None]);
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s10: 8 MiB written ignoring pause_writing: get_write_buffer_size = {before_flush} before the first send, {held} once the kernel was full (+ {ours} in our send queue + {theirs} in the peer's = {TOTAL} exactly); 8 MiB verified after"
    );
}

// ----- 11: resets mid-transfer -----

fn is_reset_code(code: Option<i32>) -> bool {
    matches!(code, Some(libc::ECONNRESET | libc::EPIPE))
}

/// Checks that `bytes` is a prefix of stream `seed`.
fn assert_prefix(bytes: &[u8], seed: u64, what: &str) {
    let mut v = Verifier::new(seed);
    v.feed(bytes);
    v.assert_complete(bytes.len() as u64, what);
}

/// Both ends ours, 4 MiB each way; the client aborts (`SO_LINGER` 0) after 256 KiB:
/// the client hears `connection_lost(None)`, the server `connection_lost(Some(reset))`,
/// each exactly once, and nothing reaches the exception handler.
#[test]
fn s11_reset_mid_transfer_our_side_aborts() {
    let _g = serial();
    const LEN: usize = 4 << 20;
    let fds = open_fds();
    let (server_seen, client_seen, exceptions) = run(async move {
        let l = get_running_loop().unwrap();
        let exceptions = count_exceptions();
        let (server, list) = recorder_server(|r| {
            r.on_made = Some(Box::new(|t| t.write(&pattern(111, LEN)).unwrap()));
        })
        .await;
        let addr = server.sockets()[0].to_string();
        let (mut rec, client_seen) = Recorder::new();
        rec.on_made = Some(Box::new(|t| t.write(&pattern(112, LEN)).unwrap()));
        let got = Rc::new(Cell::new(0usize));
        rec.on_data = Some(Box::new(move |t, data| {
            got.set(got.get() + data.len());
            if got.get() >= 256 * 1024 && !t.is_closing() {
                t.abort();
            }
        }));
        let (_t, _p) = l.create_connection(move || rec, &addr).await.unwrap();
        let server_seen = accepted(&list, 0).await;
        wait_until(Duration::from_secs(20), "both ends lost", || {
            server_seen.lost() && client_seen.lost()
        })
        .await;
        // Late callbacks would show up here.
        ringloop::sleep(Duration::from_millis(50)).await;
        server.close();
        server.wait_closed().await;
        let ex = exceptions.borrow().clone();
        (server_seen, client_seen, ex)
    });
    server_seen.assert_order();
    client_seen.assert_order();
    let s_lost = server_seen.events().last().cloned();
    assert_eq!(client_seen.events().last(), Some(&Ev::Lost(None)));
    assert!(
        matches!(s_lost, Some(Ev::Lost(c)) if is_reset_code(c)),
        "server: {s_lost:?}"
    );
    assert_prefix(&client_seen.bytes.borrow(), 111, "client received");
    assert_prefix(&server_seen.bytes.borrow(), 112, "server received");
    assert!(exceptions.is_empty(), "{exceptions:?}");
    forget_transport(&server_seen);
    forget_transport(&client_seen);
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s11a: client aborted after {} B in, server had {} B: server connection_lost({s_lost:?}) once, client connection_lost(None) once, 0 exception reports",
        client_seen.bytes.borrow().len(),
        server_seen.bytes.borrow().len()
    );
}

/// The peer (a plain socket) resets (`SO_LINGER` 0) while both directions carry data:
/// our server hears `connection_lost(Some(reset))` exactly once, nothing reaches the
/// exception handler.
#[test]
fn s11_reset_mid_transfer_peer_resets() {
    let _g = serial();
    const LEN: usize = 4 << 20;
    let fds = open_fds();
    let (seen, exceptions) = run(async move {
        let l = get_running_loop().unwrap();
        let exceptions = count_exceptions();
        let (server, list) = recorder_server(|r| {
            r.on_made = Some(Box::new(|t| t.write(&pattern(113, LEN)).unwrap()));
        })
        .await;
        let addr = server.sockets()[0];
        let peer = l.run_in_executor(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            // Alternate: 64 KiB out, up to 64 KiB in, until 1 MiB went out and 256 KiB
            // came in; then reset with both directions still busy.
            let (mut sent, mut got) = (0usize, Vec::new());
            let mut chunk = vec![0u8; 64 * 1024];
            let mut buf = vec![0u8; 64 * 1024];
            while sent < (1 << 20) || got.len() < 256 * 1024 {
                fill_pattern(114, sent as u64, &mut chunk);
                s.write_all(&chunk).unwrap();
                sent += chunk.len();
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "early end of stream");
                got.extend_from_slice(&buf[..n]);
            }
            assert_prefix(&got, 113, "peer received");
            linger_zero(&s);
            drop(s);
            sent
        });
        let seen = accepted(&list, 0).await;
        let sent = peer.await.expect("peer");
        wait_until(Duration::from_secs(20), "connection_lost", || seen.lost()).await;
        ringloop::sleep(Duration::from_millis(50)).await;
        server.close();
        server.wait_closed().await;
        let ex = exceptions.borrow().clone();
        assert!(seen.bytes.borrow().len() <= sent);
        (seen, ex)
    });
    seen.assert_order();
    let lost = seen.events().last().cloned();
    assert!(
        matches!(lost, Some(Ev::Lost(c)) if is_reset_code(c)),
        "server: {lost:?}"
    );
    assert_prefix(&seen.bytes.borrow(), 114, "server received");
    assert!(exceptions.is_empty(), "{exceptions:?}");
    forget_transport(&seen);
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s11b: peer reset after {} B had reached our server: connection_lost({lost:?}) once, 0 exception reports",
        seen.bytes.borrow().len()
    );
}

// ----- 12: SIGPIPE at its default action -----

const SIGPIPE_CHILD: &str = "RINGLOOP_FAULTS_SIGPIPE_CHILD";

/// A peer that accepts one connection and closes it at once.
fn closing_peer() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let join = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        drop(s);
    });
    (addr, join)
}

/// In the child (`SIGPIPE` at `SIG_DFL`): writes to closed sockets through the
/// transport, `write_all` and `writev` of `TcpStream`, and `write_all` of `UnixStream`
/// must all come back as errors.
fn sigpipe_child() {
    // SAFETY: restoring the default disposition; no loop exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let out = run(async {
        let l = get_running_loop().unwrap();
        let mut report = Vec::new();
        // The stream transport.
        let (addr, peer) = closing_peer();
        let (mut rec, seen) = Recorder::new();
        // Keep writing after the peer's FIN, into its reset.
        rec.keep_open_on_eof = true;
        let (t, _p) = l
            .create_connection(move || rec, &addr.to_string())
            .await
            .unwrap();
        peer.join().unwrap();
        while !seen.lost() {
            let _ = t.write(&[7u8; 64 * 1024]);
            ringloop::sleep(Duration::from_millis(2)).await;
        }
        report.push(format!("transport {:?}", seen.events().last()));
        eprintln!("child: {}", report.last().unwrap());
        // The async TcpStream: send, then writev (a vectored write).
        for vectored in [false, true] {
            let (addr, peer) = closing_peer();
            let s = ringloop::net::TcpStream::connect(addr).await.unwrap();
            peer.join().unwrap();
            let err = loop {
                let res = if vectored {
                    s.writev(vec![vec![1u8; 32 * 1024], vec![2u8; 32 * 1024]])
                        .await
                        .0
                        .map(|_| ())
                } else {
                    s.write_all(vec![1u8; 64 * 1024]).await.0
                };
                if let Err(e) = res {
                    break e;
                }
                ringloop::sleep(Duration::from_millis(2)).await;
            };
            report.push(format!("tcp writev={vectored} {:?}", err.kind()));
            eprintln!("child: {}", report.last().unwrap());
        }
        // A Unix stream pair whose other end is gone.
        let (a, b) = ringloop::net::UnixStream::pair().unwrap();
        drop(b);
        let (res, _) = a.write_all(vec![3u8; 1024]).await;
        report.push(format!("unix {:?}", res.map_err(|e| e.kind())));
        report
    });
    println!("CHILD {}", out.join("; "));
}

/// `SIGPIPE` left at its default (in a child process: Rust's runtime ignores it):
/// writes to closed sockets return errors and the process lives. (Writes to a pipe with
/// no reader, through the subprocess pipe transport: `tests/subprocess_sigpipe.rs`.)
#[test]
fn s12_sigpipe_default_sends_to_closed_sockets() {
    if std::env::var_os(SIGPIPE_CHILD).is_some() {
        sigpipe_child();
        return;
    }
    let _g = serial();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "s12_sigpipe_default_sends_to_closed_sockets",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGPIPE_CHILD, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "the child was killed by a signal: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "child: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("CHILD ").map(|i| &l[i + 6..]))
        .expect("the child's report");
    eprintln!("s12: SIGPIPE at SIG_DFL, the child lived: {line}");
    for part in line.split("; ") {
        assert!(
            part.contains("BrokenPipe")
                || part.contains("ConnectionReset")
                || part.contains("Some(Lost(Some(32)))")
                || part.contains("Some(Lost(Some(104)))"),
            "not an error: {part}"
        );
    }
}

// ----- 13: half-close both ways with data in flight -----

/// Both ends write 4 MiB and at once `write_eof`, with everything still in flight: each
/// side receives the other's 4 MiB then its end of stream, keeps its transport open
/// (`eof_received` true), and closes cleanly once both are done.
#[test]
fn s13_half_close_both_ways_data_in_flight() {
    let _g = serial();
    const LEN: usize = 4 << 20;
    let fds = open_fds();
    let (server_seen, client_seen) = run(async move {
        let l = get_running_loop().unwrap();
        let exceptions = count_exceptions();
        let (server, list) = recorder_server(|r| {
            r.keep_open_on_eof = true;
            r.on_made = Some(Box::new(|t| {
                t.write(&pattern(131, LEN)).unwrap();
                t.write_eof().unwrap();
            }));
        })
        .await;
        let (mut rec, client_seen) = Recorder::new();
        rec.keep_open_on_eof = true;
        rec.on_made = Some(Box::new(|t| {
            t.write(&pattern(132, LEN)).unwrap();
            t.write_eof().unwrap();
        }));
        let (ct, _p) = l
            .create_connection(move || rec, &server.sockets()[0].to_string())
            .await
            .unwrap();
        let server_seen = accepted(&list, 0).await;
        wait_until(Duration::from_secs(20), "both ends' EOF", || {
            server_seen.count(|e| *e == Ev::Eof) == 1 && client_seen.count(|e| *e == Ev::Eof) == 1
        })
        .await;
        assert!(
            !server_seen.lost() && !client_seen.lost(),
            "lost before close"
        );
        wait_until(
            Duration::from_secs(20),
            "both write buffers drained",
            || {
                ct.get_write_buffer_size() == 0
                    && server_seen.transport().get_write_buffer_size() == 0
            },
        )
        .await;
        ct.close();
        server_seen.transport().close();
        wait_until(Duration::from_secs(20), "both lost", || {
            server_seen.lost() && client_seen.lost()
        })
        .await;
        server.close();
        server.wait_closed().await;
        assert!(exceptions.borrow().is_empty(), "{:?}", exceptions.borrow());
        (server_seen, client_seen)
    });
    for (seen, seed, who) in [(&server_seen, 132, "server"), (&client_seen, 131, "client")] {
        seen.assert_order();
        let mut v = Verifier::new(seed);
        v.feed(&seen.bytes.borrow());
        v.assert_complete(LEN as u64, who);
        assert_eq!(seen.events().last(), Some(&Ev::Lost(None)), "{who}");
        forget_transport(seen);
    }
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s13: 4 MiB each way with write_eof right behind: both sides got 4 MiB + EOF in order ({} + {} data callbacks), clean close",
        server_seen.count(|e| matches!(e, Ev::Data(_))),
        client_seen.count(|e| matches!(e, Ev::Data(_)))
    );
}

// ----- 20: UDP edge cases -----

#[derive(Default)]
struct DgLog {
    datagrams: Vec<Vec<u8>>,
    errors: Vec<Option<i32>>,
    lost: Vec<Option<i32>>,
}

struct DgRecorder(Rc<RefCell<DgLog>>);

impl DatagramProtocol for DgRecorder {
    fn datagram_received(&mut self, data: &[u8], _addr: Option<SocketAddr>) {
        self.0.borrow_mut().datagrams.push(data.to_vec());
    }
    fn error_received(&mut self, exc: io::Error) {
        self.0.borrow_mut().errors.push(exc.raw_os_error());
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.0
            .borrow_mut()
            .lost
            .push(exc.map(|e| e.raw_os_error().unwrap_or(-1)));
    }
}

/// Truncation (`MSG_TRUNC` reported by `recv_from_truncated`; the transport's 64 KiB
/// buffer holds the largest UDP datagram whole), ICMP port-unreachable to
/// `error_received` on a connected endpoint, and 0-byte datagrams delivered in order.
#[test]
fn s20_udp_truncation_icmp_and_empty_datagrams() {
    let _g = serial();
    let fds = open_fds();
    let (log, icmp_log, trunc) = run(async {
        let l = get_running_loop().unwrap();
        // Receiver: a transport; sender: the async socket.
        let log = Rc::new(RefCell::new(DgLog::default()));
        let l2 = log.clone();
        let (rt, _p) = l
            .create_datagram_endpoint(
                move || DgRecorder(l2),
                Some("127.0.0.1:0"),
                None,
                Default::default(),
            )
            .await
            .unwrap();
        let raddr = rt.local_addr().unwrap();
        let tx = ringloop::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // The largest IPv4 UDP payload, empty datagrams in between.
        let sizes = [0usize, 1, 0, 65_507, 0, 1000, 0];
        for (i, &n) in sizes.iter().enumerate() {
            let (res, _) = tx.send_to(pattern(200 + i as u64, n), raddr).await;
            assert_eq!(res.unwrap(), n);
        }
        wait_until(Duration::from_secs(10), "every datagram", || {
            log.borrow().datagrams.len() == sizes.len()
        })
        .await;
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(
                log.borrow().datagrams[i],
                pattern(200 + i as u64, n),
                "datagram {i}"
            );
        }
        // Truncation: a 1000-byte datagram into a 100-byte buffer, then an empty one.
        let rx = ringloop::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let rxaddr = rx.local_addr().unwrap();
        let _ = tx.send_to(pattern(1, 1000), rxaddr).await.0.unwrap();
        let _ = tx.send_to(Vec::new(), rxaddr).await.0.unwrap();
        let (res, buf) = rx.recv_from_truncated(Vec::with_capacity(100)).await;
        let (n, _, truncated) = res.unwrap();
        assert_eq!((n, truncated), (100, true));
        assert_eq!(buf[..], pattern(1, 100)[..]);
        let (res, _) = rx.recv_from_truncated(Vec::with_capacity(100)).await;
        let (n0, _, t0) = res.unwrap();
        assert_eq!((n0, t0), (0, false), "an empty datagram, not truncated");
        // ICMP port unreachable: a connected endpoint sending to a closed port.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let closed_addr = closed.local_addr().unwrap().to_string();
        drop(closed);
        let icmp_log = Rc::new(RefCell::new(DgLog::default()));
        let i2 = icmp_log.clone();
        let (ct, _p) = l
            .create_datagram_endpoint(
                move || DgRecorder(i2),
                None,
                Some(&closed_addr),
                Default::default(),
            )
            .await
            .unwrap();
        for _ in 0..3 {
            ct.sendto(b"anyone?", None).unwrap();
            ringloop::sleep(Duration::from_millis(20)).await;
        }
        wait_until(Duration::from_secs(10), "error_received", || {
            !icmp_log.borrow().errors.is_empty()
        })
        .await;
        assert!(!ct.is_closing(), "the endpoint stays open after the error");
        ct.close();
        rt.close();
        drop((tx, rx));
        wait_until(Duration::from_secs(10), "both endpoints lost", || {
            icmp_log.borrow().lost.len() == 1 && log.borrow().lost.len() == 1
        })
        .await;
        (log, icmp_log, (n, truncated))
    });
    let icmp = icmp_log.borrow();
    assert!(
        icmp.errors.iter().all(|e| *e == Some(libc::ECONNREFUSED)),
        "{:?}",
        icmp.errors
    );
    assert_eq!(icmp.lost, vec![None]);
    assert_eq!(log.borrow().lost, vec![None]);
    assert!(log.borrow().errors.is_empty(), "{:?}", log.borrow().errors);
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s20: 4 empty + 3 non-empty datagrams (up to 65,507 B) delivered in order; 1000 B into 100 B: {} B, truncated={}; {} ICMP port-unreachable -> error_received(ECONNREFUSED), endpoint stayed open",
        trunc.0,
        trunc.1,
        icmp.errors.len()
    );
}

// ----- 21: 2,000 idle connections -----

/// Opens `n` idle connections to an echo server on this loop and measures what each
/// costs the process (RSS delta / n); returns (bytes per connection, receive buffers held
/// while idle).
fn idle_round(builder: LoopBuilder, n: usize) -> (usize, usize, usize) {
    run_on(builder, Duration::from_secs(60), async move {
        let l = get_running_loop().unwrap();
        let stats = Arc::new(EchoStats::default());
        let s2 = stats.clone();
        let server = l
            .create_server(move || Echo::new(&s2), "127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.sockets()[0];
        // Warm up the allocator and the slab with a few connections first.
        let warm: Vec<_> = (0..50)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        wait_until(Duration::from_secs(10), "warm-up accepted", || {
            server.active_connections() == 50
        })
        .await;
        drop(warm);
        wait_until(Duration::from_secs(10), "warm-up closed", || {
            server.active_connections() == 0
        })
        .await;
        let before = rss_bytes();
        // Blocking sockets, parked here (a future's value must be Clone).
        let clients: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let c2 = clients.clone();
        l.run_in_executor(move || {
            let mut c = c2.lock().unwrap();
            c.extend((0..n).map(|_| std::net::TcpStream::connect(addr).unwrap()));
        })
        .await
        .expect("connect");
        wait_until(Duration::from_secs(20), "all accepted", || {
            server.active_connections() == n
        })
        .await;
        ringloop::sleep(Duration::from_millis(200)).await;
        let held = l.recv_buffers_in_use();
        let per_conn = rss_bytes().saturating_sub(before) / n;
        // Still alive: a few of them echo.
        let c2 = clients.clone();
        l.run_in_executor(move || {
            let c = c2.lock().unwrap();
            for (i, mut c) in c.iter().enumerate().step_by(n / 8) {
                let msg = pattern(i as u64, 100);
                c.write_all(&msg).unwrap();
                let mut back = vec![0; 100];
                c.read_exact(&mut back).unwrap();
                assert_eq!(back, msg);
            }
        })
        .await
        .expect("echo");
        clients.lock().unwrap().clear();
        wait_until(Duration::from_secs(20), "all closed", || {
            server.active_connections() == 0
        })
        .await;
        server.close();
        server.wait_closed().await;
        assert_eq!(stats.lost_error.load(Ordering::Relaxed), 0);
        (per_conn, held, l.recv_buffers_in_use())
    })
}

/// 2,000 idle connections held open: per-connection memory measured; with multishot
/// receives from the buffer ring an idle connection holds no receive buffer (compared
/// with single-shot receives, which keep one per connection).
#[test]
fn s21_two_thousand_idle_connections() {
    let _g = serial();
    const N: usize = 2000;
    let old = nofile();
    let _restore = NofileGuard(old);
    if old.rlim_cur < 2 * N as u64 + 200 {
        set_nofile(libc::rlimit {
            rlim_cur: old.rlim_max,
            rlim_max: old.rlim_max,
        });
    }
    if nofile().rlim_cur < 2 * N as u64 + 200 {
        eprintln!(
            "s21: skipped: the hard fd limit {} is below {}",
            old.rlim_max,
            2 * N + 200
        );
        return;
    }
    let fds = open_fds();
    let mut figures = Vec::new();
    if !on_epoll() {
        let (per_conn, held, after) = idle_round(uring(), N);
        assert_eq!(held, 0, "idle connections hold provided buffers");
        assert_eq!(after, 0);
        figures.push(format!(
            "multishot + buffer ring {per_conn} B/conn, {held} buffers held"
        ));
        assert!(per_conn < 16 * 1024, "{per_conn} B per idle connection");
    }
    let (per_conn, _, _) = idle_round(EventLoop::builder().multishot_recv(false), N);
    figures.push(format!("single-shot receives {per_conn} B/conn"));
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!(
        "s21: {N} idle connections (RSS delta / {N}, both ends in this process): {}",
        figures.join("; ")
    );
}

// ----- found by the write-path fuzz: closing a loop with connections still open -----

/// A protocol that keeps its transport, as asyncio protocols do.
struct Keeper(Option<StreamTransport>);

impl Protocol for Keeper {
    fn connection_made(&mut self, t: &StreamTransport) {
        self.0 = Some(t.clone());
    }
}

struct DgKeeper(Option<ringloop::DatagramTransport>);

impl DatagramProtocol for DgKeeper {
    fn connection_made(&mut self, t: &ringloop::DatagramTransport) {
        self.0 = Some(t.clone());
    }
}

/// The loop closes while connections and a datagram endpoint are open, their protocols
/// holding their transports: close lets go of the protocols, so the sockets and the
/// loop's own fds close (a protocol <-> transport cycle kept them open for good before).
#[test]
fn loop_close_releases_open_transports() {
    let _g = serial();
    let fds = open_fds();
    run(async {
        let l = get_running_loop().unwrap();
        let server = l
            .create_server(|| Keeper(None), "127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.sockets()[0].to_string();
        for _ in 0..10 {
            let (t, _p) = l.create_connection(|| Keeper(None), &addr).await.unwrap();
            t.write(&pattern(1, 100_000)).unwrap();
        }
        let (_d, _p) = l
            .create_datagram_endpoint(
                || DgKeeper(None),
                Some("127.0.0.1:0"),
                None,
                Default::default(),
            )
            .await
            .unwrap();
        wait_until(Duration::from_secs(10), "all accepted", || {
            server.active_connections() == 10
        })
        .await;
        // The listening socket closes; the connections stay open (asyncio's rule).
        server.close();
    });
    assert_fds_back_to(fds, FDS_SETTLE, "fds leaked");
    eprintln!("loop close: 20 connection ends and a UDP endpoint still open, all fds released");
}
