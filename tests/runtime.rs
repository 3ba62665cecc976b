//! The thread-per-core runtime on real sockets: N loops sharing a `SO_REUSEPORT` port, one
//! acceptor handing sockets to the others (`connect_accepted_socket`), storms of
//! `run_coroutine_threadsafe`, cancellation across threads, a channel crate between loops,
//! shutdown with work in flight (fds and threads back), a panicking loop, a blocked loop.
//!
//! The peers are `std::net` blocking sockets on plain threads. Every test holds the
//! binary's serial lock: they count the process's fds and threads, and each starts loops
//! of its own on a 2-core machine. The engine is `RINGLOOP_ENGINE`'s (CI runs both).

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ringloop::net::{Server, ServerOptions};
use ringloop::{
    Error, Protocol, Runtime, RuntimeError, StreamTransport, get_running_loop,
    run_coroutine_threadsafe,
};
use util::{Verifier, assert_fds_back_to, fill_pattern, serial, settled_open_fds};

/// The bound on anything a test waits for.
const LIMIT: Duration = Duration::from_secs(20);

thread_local! {
    /// Connections this loop thread's echo servers took, and the bytes they echoed.
    static ACCEPTED: Cell<usize> = const { Cell::new(0) };
    static ECHOED: Cell<u64> = const { Cell::new(0) };
    /// A server kept on its loop thread between two `Runtime::run`s.
    static SERVER: RefCell<Option<Server>> = const { RefCell::new(None) };
}

/// Echoes everything; counts its connection and bytes on the loop thread it runs on.
struct Echo(Option<StreamTransport>);

impl Protocol for Echo {
    fn connection_made(&mut self, t: &StreamTransport) {
        ACCEPTED.with(|c| c.set(c.get() + 1));
        self.0 = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        ECHOED.with(|c| c.set(c.get() + data.len() as u64));
        if let Some(t) = &self.0 {
            let _ = t.write(data);
        }
    }
}

/// Threads of this process (entries of `/proc/self/task`).
fn threads_now() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// A port free on 127.0.0.1 now (the runtime's loops bind it with `SO_REUSEPORT`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Payload length of connection `seed`: 1–4 KiB, varied so chunking differs.
fn payload_len(seed: u64) -> usize {
    1024 + (seed as usize * 37) % 3072
}

/// Connects, sends connection `seed`'s pattern, reads it back, checks every byte.
fn echo_once(addr: SocketAddr, seed: u64) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let mut payload = vec![0; payload_len(seed)];
    fill_pattern(seed, 0, &mut payload);
    s.write_all(&payload).unwrap();
    let mut back = vec![0; payload.len()];
    s.read_exact(&mut back).unwrap();
    let mut v = Verifier::new(seed);
    v.feed(&back);
    v.assert_complete(payload.len() as u64, &format!("connection {seed}"));
}

/// `conns` echo round trips over `clients` threads; connection ids `0..conns`.
fn echo_storm(addr: SocketAddr, conns: u64, clients: u64) -> u64 {
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            std::thread::spawn(move || {
                let mut bytes = 0;
                for seed in (c..conns).step_by(clients as usize) {
                    echo_once(addr, seed);
                    bytes += payload_len(seed) as u64;
                }
                bytes
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).sum()
}

/// Runs `f` on a helper thread and fails the test if it takes longer than `LIMIT`.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("{what}: no result within {LIMIT:?}"))
}

#[test]
fn four_loops_share_a_reuse_port_and_echo_1000_connections() {
    let _g = serial();
    let fds = settled_open_fds();
    let rt = Runtime::builder().threads(4).build().unwrap();
    let port = free_port();
    let bound = rt
        .run(move |ctx| async move {
            let options = ServerOptions {
                reuse_port: true,
                ..Default::default()
            };
            let server = ctx
                .event_loop()
                .create_server_with(|| Echo(None), ("127.0.0.1", port), options)
                .await
                .unwrap();
            let addr = server.sockets()[0];
            SERVER.with(|s| *s.borrow_mut() = Some(server));
            addr
        })
        .unwrap();
    assert!(bound.iter().all(|a| a.port() == port), "{bound:?}");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    let started = Instant::now();
    let sent = echo_storm(addr, 1000, 8);
    let took = started.elapsed();

    let per_loop = rt
        .run(|_| async {
            if let Some(s) = SERVER.with(|s| s.borrow_mut().take()) {
                s.close();
                s.wait_closed().await;
            }
            (ACCEPTED.with(Cell::get), ECHOED.with(Cell::get))
        })
        .unwrap();
    eprintln!("per loop (connections, bytes): {per_loop:?}, {took:?}");
    let conns: usize = per_loop.iter().map(|p| p.0).sum();
    let bytes: u64 = per_loop.iter().map(|p| p.1).sum();
    assert_eq!((conns, bytes), (1000, sent));
    // The kernel hashes connections over the four listeners: ~250 each, never starved.
    for (i, (n, _)) in per_loop.iter().enumerate() {
        assert!(*n >= 100, "loop {i} took {n} of 1000: {per_loop:?}");
    }
    rt.shutdown().unwrap();
    assert_fds_back_to(fds, Duration::from_secs(2), "after the runtime");
}

#[test]
fn one_acceptor_hands_sockets_round_robin_to_the_other_loops() {
    let _g = serial();
    let fds = settled_open_fds();
    let rt = Runtime::builder().threads(4).build().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = Mutex::new(Some(listener));
    let conns = 300u64;
    let client = std::thread::spawn(move || echo_storm(addr, conns, 4));
    rt.run(move |ctx| {
        let listener = if ctx.index() == 0 {
            listener.lock().unwrap().take()
        } else {
            None
        };
        async move {
            if let Some(std_listener) = listener {
                // Loop 0 accepts on the ring and hands each socket to loop 1, 2, 3, 1...
                let l = ringloop::net::TcpListener::from_std(std_listener).unwrap();
                for k in 0..conns {
                    let (stream, _) = l.accept().await.unwrap();
                    let std_stream = stream.into_std().expect("no op holds the socket");
                    let target = ctx.handle(1 + (k as usize % 3)).unwrap();
                    run_coroutine_threadsafe(target, move || async move {
                        get_running_loop()
                            .unwrap()
                            .connect_accepted_socket(|| Echo(None), std_stream)
                            .map(drop)
                    })
                    .await
                    .unwrap()
                    .unwrap();
                }
            }
        }
    })
    .unwrap();
    let sent = bounded("the clients", move || client.join().unwrap());
    // The mains returned once the sockets were handed over; the echoes ran on after.
    let per_loop = rt
        .run(|_| async { (ACCEPTED.with(Cell::get), ECHOED.with(Cell::get)) })
        .unwrap();
    eprintln!("per loop (connections, bytes): {per_loop:?}");
    assert_eq!(per_loop[0], (0, 0), "the acceptor serves nothing itself");
    for (i, (n, _)) in per_loop.iter().enumerate().skip(1) {
        assert_eq!(*n, conns as usize / 3, "loop {i}: exact round robin");
    }
    let bytes: u64 = per_loop.iter().map(|p| p.1).sum();
    assert_eq!(bytes, sent);
    rt.shutdown().unwrap();
    assert_fds_back_to(fds, Duration::from_secs(2), "after the runtime");
}

#[test]
fn eight_threads_times_10000_coroutines_come_back_in_order_per_sender() {
    let _g = serial();
    let rt = Runtime::builder().threads(2).build().unwrap();
    let handles = rt.handles().to_vec();
    const SENDERS: usize = 8;
    const CALLS: usize = 10_000;
    const BATCH: usize = 100;
    thread_local! {
        /// The (sender, call) pairs this loop ran, in the order it ran them.
        static LOG: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
    }
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let handles = handles.clone();
            std::thread::spawn(move || {
                let mut next = 0;
                while next < CALLS {
                    // A batch in flight at once, then waited in order.
                    let futures: Vec<_> = (next..next + BATCH)
                        .map(|i| {
                            let target = &handles[(s + i) % handles.len()];
                            run_coroutine_threadsafe(target, move || {
                                LOG.with(|l| l.borrow_mut().push((s, i)));
                                // Not Send: built and run on the target loop.
                                let local = std::rc::Rc::new(i);
                                async move { (s, *local) }
                            })
                        })
                        .collect();
                    for (k, f) in futures.into_iter().enumerate() {
                        assert_eq!(f.wait().unwrap(), (s, next + k));
                    }
                    next += BATCH;
                }
            })
        })
        .collect();
    bounded("the senders", move || {
        for t in senders {
            t.join().unwrap();
        }
    });
    let logs = rt
        .run(|_| async { LOG.with(|l| std::mem::take(&mut *l.borrow_mut())) })
        .unwrap();
    let mut total = 0;
    for (index, log) in logs.iter().enumerate() {
        // Each loop started each sender's calls in the order they were sent.
        let mut last = [None::<usize>; SENDERS];
        for &(s, i) in log {
            assert!(
                last[s].is_none_or(|p| p < i),
                "loop {index}: sender {s} call {i} after {:?}",
                last[s]
            );
            last[s] = Some(i);
        }
        total += log.len();
    }
    assert_eq!(total, SENDERS * CALLS);
    rt.shutdown().unwrap();
}

#[test]
fn coroutines_awaited_from_another_loop_come_back_in_order() {
    let _g = serial();
    let rt = Runtime::builder().threads(3).build().unwrap();
    let sums = rt
        .run(|ctx| async move {
            let next = ctx.handle((ctx.index() + 1) % ctx.count()).unwrap().clone();
            let mut sum = 0u64;
            for i in 0..2000u64 {
                let asker = ctx.index();
                let (from, v) = run_coroutine_threadsafe(&next, move || async move {
                    ringloop::sleep(Duration::ZERO).await;
                    (asker, i * 2)
                })
                .await
                .unwrap();
                assert_eq!((from, v), (asker, i * 2));
                sum += v;
            }
            sum
        })
        .unwrap();
    assert_eq!(sums, vec![1999 * 2000; 3]);
    rt.shutdown().unwrap();
}

/// Sets its flag when dropped, and says on which thread.
struct DropFlag(Arc<Mutex<Option<String>>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        *self.0.lock().unwrap() = Some(name);
    }
}

#[test]
fn dropping_or_cancelling_the_concurrent_future_cancels_the_remote_task() {
    let _g = serial();
    let rt = Runtime::builder()
        .threads(2)
        .thread_name("cancel")
        .build()
        .unwrap();
    for how in ["drop", "cancel"] {
        let dropped_on = Arc::new(Mutex::new(None));
        let started = Arc::new(AtomicBool::new(false));
        let (d, s) = (dropped_on.clone(), started.clone());
        let f = run_coroutine_threadsafe(rt.handle(1).unwrap(), move || {
            let flag = DropFlag(d);
            async move {
                s.store(true, Ordering::SeqCst);
                ringloop::sleep(Duration::from_secs(3600)).await;
                drop(flag);
            }
        });
        let deadline = Instant::now() + LIMIT;
        while !started.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "{how}: the coroutine never started"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!f.done());
        if how == "drop" {
            drop(f);
        } else {
            assert!(f.cancel());
            assert!(matches!(f.wait(), Err(Error::Cancelled)), "{how}");
        }
        while dropped_on.lock().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "{how}: the remote future lives on"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Its destructors ran on the loop that built it.
        assert_eq!(dropped_on.lock().unwrap().as_deref(), Some("cancel-1"));
    }
    rt.shutdown().unwrap();
}

#[test]
fn a_futures_channel_carries_messages_between_loops() {
    use futures::{SinkExt, StreamExt};
    let _g = serial();
    let rt = Runtime::builder().threads(2).build().unwrap();
    const N: u64 = 10_000;
    // A small bound: both sides keep waking each other across threads.
    let (tx, rx) = futures::channel::mpsc::channel::<u64>(8);
    let (back_tx, back_rx) = futures::channel::mpsc::unbounded::<(u64, String)>();
    let sender_end = Mutex::new(Some((tx, back_rx)));
    let relay_end = Mutex::new(Some((rx, back_tx)));
    let out = rt
        .run(move |ctx| {
            let sender = (ctx.index() == 0).then(|| sender_end.lock().unwrap().take().unwrap());
            let relay = (ctx.index() == 1).then(|| relay_end.lock().unwrap().take().unwrap());
            async move {
                if let Some((mut tx, mut back)) = sender {
                    // Loop 0 sends 0..N, then reads the doubled values loop 1 sent back.
                    for i in 0..N {
                        tx.send(i).await.unwrap();
                    }
                    drop(tx);
                    let mut expect = 0;
                    let mut sum = 0;
                    while let Some((v, thread)) = back.next().await {
                        assert_eq!((v, thread.as_str()), (expect * 2, "ringloop-1"));
                        expect += 1;
                        sum += v;
                    }
                    assert_eq!(expect, N);
                    sum
                } else if let Some((mut rx, back)) = relay {
                    let me = std::thread::current().name().unwrap().to_string();
                    let mut n = 0;
                    while let Some(v) = rx.next().await {
                        back.unbounded_send((v * 2, me.clone())).unwrap();
                        n += 1;
                    }
                    n
                } else {
                    unreachable!("two loops")
                }
            }
        })
        .unwrap();
    assert_eq!(out, vec![(N - 1) * N, N]);
    rt.shutdown().unwrap();
}

#[test]
fn shutdown_with_work_in_flight_cancels_it_closes_every_fd_and_joins_every_thread() {
    let _g = serial();
    let fds = settled_open_fds();
    let threads = threads_now();
    let rt = Runtime::builder().threads(4).build().unwrap();
    let port = free_port();
    let handles = rt.handles().to_vec();
    rt.run(move |ctx| async move {
        let l = ctx.event_loop().clone();
        let options = ServerOptions {
            reuse_port: true,
            ..Default::default()
        };
        let server = l
            .create_server_with(|| Echo(None), ("127.0.0.1", port), options)
            .await
            .unwrap();
        SERVER.with(|s| *s.borrow_mut() = Some(server));
        // A read in flight on a connection to one of the servers; nobody sends, so it
        // ends only with the runtime (cancelled here, or EOF when the loop holding the
        // other end closes first) — never with bytes.
        let stream = ringloop::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        l.create_task(async move {
            let (r, _) = stream.read(vec![0u8; 64]).await;
            assert!(!matches!(r, Ok(n) if n > 0), "bytes from nowhere: {r:?}");
        });
        // A sleeper, and a coroutine on the next loop that never ends, awaited here.
        l.create_task(ringloop::sleep(Duration::from_secs(3600)));
        let next = ctx.handle((ctx.index() + 1) % ctx.count()).unwrap().clone();
        l.create_task(async move {
            let r = run_coroutine_threadsafe(&next, || ringloop::sleep(Duration::from_secs(3600)))
                .await;
            assert!(r.is_err(), "cancelled, never done");
        });
    })
    .unwrap();
    // Plain threads: one waiting on a coroutine that never ends, one with connections
    // holding unread echoes.
    let (waiter_tx, waiter_rx) = mpsc::channel();
    let target = handles[2].clone();
    let waiter = std::thread::spawn(move || {
        let f = run_coroutine_threadsafe(&target, || ringloop::sleep(Duration::from_secs(3600)));
        waiter_tx.send(()).unwrap();
        f.wait()
    });
    waiter_rx.recv().unwrap();
    let conns: Vec<TcpStream> = (0..16)
        .map(|k| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&util::pattern(k, 8192)).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));

    // Held handles keep their loop's wake-up fd; the test lets go of its copies.
    drop(handles);
    bounded("shutdown", move || rt.shutdown()).unwrap();
    let outcome = bounded("the waiting thread", move || waiter.join().unwrap());
    assert!(matches!(outcome, Err(Error::Cancelled)), "{outcome:?}");
    // The loops closed their ends: every client sees its stream end — EOF, or a reset
    // when the server closed with bytes still unread — never a read that times out.
    for (k, mut c) in conns.into_iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut sink = Vec::new();
        let r = c.read_to_end(&mut sink);
        assert!(
            r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "connection {k} not closed by shutdown: {r:?}"
        );
    }
    if util::open_fds() > fds {
        eprintln!("{:#?}", util::fd_targets());
    }
    assert_fds_back_to(fds, Duration::from_secs(2), "after shutdown");
    let deadline = Instant::now() + Duration::from_secs(2);
    while threads_now() > threads && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(threads_now() <= threads, "loop threads left after shutdown");
}

#[test]
fn a_panic_on_one_loop_stops_the_runtime_with_an_error_naming_it() {
    let _g = serial();
    let fds = settled_open_fds();
    // A main that panics, and a plain callback that panics while every main waits forever.
    for where_ in ["main", "callback"] {
        let err = bounded(where_, move || {
            let rt = Runtime::builder().threads(3).build().unwrap();
            if where_ == "callback" {
                let h = rt.handle(1).unwrap().clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(30));
                    h.call_soon_threadsafe(|| panic!("boom in a callback"))
                        .unwrap();
                });
            }
            let r = rt.run(move |ctx| async move {
                if where_ == "main" && ctx.index() == 2 {
                    panic!("boom in main 2");
                }
                ringloop::sleep(Duration::from_secs(3600)).await;
            });
            let again = rt.shutdown();
            (r.err(), again.err())
        });
        let (run_err, shutdown_err) = err;
        let run_err = run_err.expect("run must fail");
        let (index, text) = if where_ == "main" {
            (2, "boom in main 2")
        } else {
            (1, "boom in a callback")
        };
        assert!(
            matches!(&run_err, RuntimeError::Panicked { index: i, .. } if *i == index),
            "{where_}: {run_err:?}"
        );
        let shown = run_err.to_string();
        assert!(shown.contains(&format!("loop {index}")), "{shown}");
        assert!(shown.contains(text), "{shown}");
        assert_eq!(run_err.loop_index(), Some(index));
        // shutdown reports the same first failure.
        assert_eq!(shutdown_err.and_then(|e| e.loop_index()), Some(index));
    }
    assert_fds_back_to(fds, Duration::from_secs(2), "after the panicking runtimes");
}

/// Echoes, counting its connections in a counter the test reads from any thread.
struct CountedEcho(Arc<AtomicUsize>, Option<StreamTransport>);

impl Protocol for CountedEcho {
    fn connection_made(&mut self, t: &StreamTransport) {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1 = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.1 {
            let _ = t.write(data);
        }
    }
}

#[test]
fn a_loop_blocked_in_a_slow_callback_does_not_stop_the_others_accepting() {
    let _g = serial();
    let fds = settled_open_fds();
    let rt = Runtime::builder().threads(2).build().unwrap();
    let port = free_port();
    let counts: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let c = counts.clone();
    rt.run(move |ctx| {
        let c = c.clone();
        async move {
            let options = ServerOptions {
                reuse_port: true,
                ..Default::default()
            };
            let counter = Arc::new(AtomicUsize::new(0));
            let server = ctx
                .event_loop()
                .create_server_with(
                    {
                        let counter = counter.clone();
                        move || CountedEcho(counter.clone(), None)
                    },
                    ("127.0.0.1", port),
                    options,
                )
                .await
                .unwrap();
            SERVER.with(|s| *s.borrow_mut() = Some(server));
            // Publish this loop's counter through the shared array.
            let i = ctx.index();
            ctx.event_loop().create_task(async move {
                loop {
                    c[i].store(counter.load(Ordering::SeqCst), Ordering::SeqCst);
                    ringloop::sleep(Duration::from_millis(2)).await;
                }
            });
        }
    })
    .unwrap();

    // Loop 1 blocks in a callback until released (at most LIMIT).
    let blocked = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (b, r) = (blocked.clone(), release.clone());
    rt.handle(1)
        .unwrap()
        .call_soon_threadsafe(move || {
            b.store(true, Ordering::SeqCst);
            let until = Instant::now() + LIMIT;
            while !r.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    while !blocked.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }

    const CONNS: u64 = 40;
    const LEN: usize = 256;
    let mut conns: Vec<(TcpStream, Vec<u8>)> = (0..CONNS)
        .map(|k| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&util::pattern(k, LEN)).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, Vec::new())
        })
        .collect();
    // While loop 1 is blocked, loop 0 accepts and echoes its share.
    let deadline = Instant::now() + LIMIT;
    let mut last_change = Instant::now();
    let mut last = (0, 0);
    loop {
        for (s, got) in conns.iter_mut() {
            let mut buf = [0u8; LEN];
            if let Ok(n) = s.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        let answered = conns.iter().filter(|(_, g)| g.len() == LEN).count();
        let now = (answered, counts[0].load(Ordering::SeqCst));
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        if answered > 0 && now.0 == now.1 && last_change.elapsed() > Duration::from_millis(50) {
            break;
        }
        assert!(Instant::now() < deadline, "loop 0 did not serve: {now:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    let during = (last.0, counts[1].load(Ordering::SeqCst));
    assert_eq!(during.1, 0, "the blocked loop accepted");
    assert!(blocked.load(Ordering::SeqCst) && !release.load(Ordering::SeqCst));

    // Released, loop 1 serves the connections queued on its listener meanwhile.
    release.store(true, Ordering::SeqCst);
    for (k, (s, got)) in conns.iter_mut().enumerate() {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut rest = vec![0; LEN - got.len()];
        s.read_exact(&mut rest).unwrap();
        got.extend_from_slice(&rest);
        let mut v = Verifier::new(k as u64);
        v.feed(got);
        v.assert_complete(LEN as u64, &format!("connection {k}"));
    }
    let deadline = Instant::now() + LIMIT;
    let total = || counts[0].load(Ordering::SeqCst) + counts[1].load(Ordering::SeqCst);
    while total() < CONNS as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let after = (
        counts[0].load(Ordering::SeqCst),
        counts[1].load(Ordering::SeqCst),
    );
    eprintln!(
        "while blocked: loop 0 served {}; after: {after:?}",
        during.0
    );
    assert_eq!(after.0 + after.1, CONNS as usize);
    assert!(
        after.1 > 0,
        "loop 1 served its queue once released: {after:?}"
    );
    drop(conns);
    rt.shutdown().unwrap();
    assert_fds_back_to(fds, Duration::from_secs(2), "after the runtime");
}

#[test]
fn bad_options_are_errors_that_leave_no_thread_or_fd() {
    let _g = serial();
    let fds = settled_open_fds();
    let threads = threads_now();
    // A CPU nobody has: the loop thread cannot pin itself; the build fails naming it.
    let err = Runtime::builder()
        .threads(2)
        .cpus([1 << 20])
        .build()
        .unwrap_err();
    assert_eq!(err.loop_index(), Some(0), "{err}");
    assert!(err.to_string().contains("CPU"), "{err}");
    // Zero threads means one loop.
    let rt = Runtime::builder().threads(0).build().unwrap();
    assert_eq!(rt.len(), 1);
    // A main that waits on its own loop's coroutine with wait() is refused, not a hang.
    let h = rt.handle(0).unwrap().clone();
    let out = rt
        .run(move |_| {
            let h = h.clone();
            async move { run_coroutine_threadsafe(&h, || async { 1 }).wait() }
        })
        .unwrap();
    assert!(matches!(out[0], Err(Error::InvalidState(_))), "{out:?}");
    rt.shutdown().unwrap();
    assert_fds_back_to(fds, Duration::from_secs(2), "after the failed builds");
    assert!(
        threads_now() <= threads,
        "a loop thread outlived its runtime"
    );
}

#[test]
fn tcp_echo_example_serves_on_every_loop_with_threads_2_and_stops_on_sigterm() {
    let _g = serial();
    let Some(bin) = util::example_binary("tcp_echo") else {
        return;
    };
    let (mut server, addr) =
        util::start_listening_child(&bin, &["server", "127.0.0.1:0", "--threads", "2"]);
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", server.id()))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("tcp_echo-"))
        .collect();
    names.sort();
    assert_eq!(names, ["tcp_echo-0", "tcp_echo-1"]);
    bounded("clients of the example", move || echo_storm(addr, 200, 4));
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(server.id() as i32, libc::SIGTERM) }, 0);
    let status = util::wait_exit(&mut server, LIMIT);
    let mut err = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("shutting down; driver: enters="), "{err}");
}

#[test]
fn udp_echo_example_with_threads_2_echoes_and_stops_on_sigterm() {
    let _g = serial();
    let Some(bin) = util::example_binary("udp_echo") else {
        return;
    };
    let (mut server, addr) =
        util::start_listening_child(&bin, &["server", "127.0.0.1:0", "--threads", "2"]);
    // Eight sockets (eight source ports for the kernel to spread), 25 datagrams each.
    for k in 0..8u64 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for i in 0..25u64 {
            let seed = k * 100 + i;
            let out = util::pattern(seed, 512);
            let mut back = [0u8; 1024];
            // Loopback drops nothing at this rate; resend once in case it did.
            let n = (0..2)
                .find_map(|_| {
                    s.send_to(&out, addr).unwrap();
                    s.recv(&mut back).ok()
                })
                .unwrap_or_else(|| panic!("datagram {seed}: no echo"));
            assert_eq!(&back[..n], &out[..], "datagram {seed}");
        }
    }
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(server.id() as i32, libc::SIGTERM) }, 0);
    let status = util::wait_exit(&mut server, LIMIT);
    let mut err = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("shutting down; driver: enters="), "{err}");
}
