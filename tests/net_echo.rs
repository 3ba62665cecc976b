//! Echo at scale: `create_server` echo protocols on a loop of their own, clients on the
//! async `TcpStream` API checking every byte — IPv4 and IPv6, multishot receives from the
//! buffer ring and the single-shot fallback, a tiny buffer ring (the `ENOBUFS` path), and
//! `BufferedProtocol` on both ends.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::{EventLoop, Protocol, StreamTransport, get_running_loop};
use util::*;

/// `conns` concurrent clients each echoing `len` bytes against a server built by `server`.
fn echo_round(
    server: ringloop::LoopBuilder,
    bind: &str,
    conns: usize,
    len: usize,
    limit: Duration,
) {
    let srv = EchoServerThread::start(server, bind);
    let addr = srv.addr;
    let started = Instant::now();
    let verifiers = run_on(EventLoop::builder(), limit, async move {
        let handles: Vec<_> = (0..conns as u64)
            .map(|seed| ringloop::spawn(echo_client(addr, seed, len, 64 * 1024)))
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.expect("client task"));
        }
        out
    });
    let elapsed = started.elapsed();
    for (i, v) in verifiers.iter().enumerate() {
        v.assert_complete(len as u64, &format!("connection {i}"));
    }
    let report = srv.stop();
    let stats = &srv_stats(&report);
    eprintln!(
        "echo {bind}: {conns} connections x {len} bytes in {elapsed:.2?} ({:.0} MiB/s each way); server: {stats}",
        (conns * len) as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(report.recv_buffers_in_use, 0, "{report:?}");
}

fn srv_stats(r: &ServerReport) -> String {
    format!(
        "{} enters, {} sqes, {} cqes",
        r.stats.enters, r.stats.sqes, r.stats.cqes
    )
}

#[test]
fn echo_1000_connections_1mib_each_ipv4() {
    echo_round(
        EventLoop::builder(),
        "127.0.0.1:0",
        1000,
        1 << 20,
        Duration::from_secs(90),
    );
}

#[test]
fn echo_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    echo_round(
        EventLoop::builder(),
        "[::1]:0",
        100,
        256 * 1024,
        Duration::from_secs(30),
    );
}

#[test]
fn echo_with_single_shot_receives() {
    echo_round(
        EventLoop::builder().multishot_recv(false),
        "127.0.0.1:0",
        100,
        256 * 1024,
        Duration::from_secs(30),
    );
}

/// A peer's seed, what arrived, and the error `connection_lost` got.
type SinkResult = (u64, Verifier, Option<i32>);

/// Counts and checks one peer's patterned stream; at its end replies with the count.
struct Sink {
    seed: u64,
    verifier: Option<Verifier>,
    transport: Option<StreamTransport>,
    results: Rc<RefCell<Vec<SinkResult>>>,
}

impl Protocol for Sink {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if self.verifier.is_none() {
            // The peer's first byte names its seed; the pattern follows from offset 1.
            self.seed = u64::from(data[0]);
            let mut v = Verifier::new(self.seed);
            v.received = 1;
            v.feed(&data[1..]);
            self.verifier = Some(v);
            return;
        }
        self.verifier.as_mut().unwrap().feed(data);
    }

    fn eof_received(&mut self) -> bool {
        let v = self.verifier.clone().unwrap_or_default();
        let t = self.transport.as_ref().unwrap();
        t.write(format!("{} {}\n", v.received, v.mismatches).as_bytes())
            .unwrap();
        false
    }

    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        let v = self.verifier.take().unwrap_or_default();
        let code = exc.map(|e| e.raw_os_error().unwrap_or(-1));
        self.results.borrow_mut().push((self.seed, v, code));
        self.transport = None;
    }
}

/// 32 peers (plain blocking sockets on threads) blast data at a loop whose buffer ring has
/// 4 buffers of 4 KiB: receives keep finding the ring empty (`ENOBUFS`), which must never
/// look like end of stream. Every byte arrives in order, no connection closes early, and
/// every buffer goes back to the ring.
#[test]
fn tiny_buffer_ring_32_busy_peers() {
    const PEERS: u64 = 32;
    const LEN: usize = 2 << 20;
    let results = Rc::new(RefCell::new(Vec::new()));
    let r2 = results.clone();
    let builder = EventLoop::builder().recv_buffers(4, 4096);
    let in_use = run_on(builder, Duration::from_secs(60), async move {
        let l = get_running_loop().unwrap();
        let server = l
            .create_server(
                move || Sink {
                    seed: 0,
                    verifier: None,
                    transport: None,
                    results: r2.clone(),
                },
                "127.0.0.1:0",
            )
            .await
            .unwrap();
        let addr = server.sockets()[0];
        let peers: Vec<_> = (0..PEERS)
            .map(|seed| {
                std::thread::spawn(move || {
                    // Byte 0 tells the sink which seed to check against.
                    let mut data = pattern(seed, LEN);
                    data[0] = seed as u8;
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    for chunk in data.chunks(100_000) {
                        s.write_all(chunk).unwrap();
                    }
                    s.shutdown(std::net::Shutdown::Write).unwrap();
                    let mut reply = String::new();
                    s.read_to_string(&mut reply).unwrap();
                    reply
                })
            })
            .collect();
        let joiner = l.run_in_executor(move || {
            peers
                .into_iter()
                .map(|p| p.join().expect("peer thread"))
                .collect::<Vec<_>>()
        });
        let replies = joiner.await.expect("peers");
        server.close();
        server.wait_closed().await;
        (replies, l.recv_buffers_in_use())
    });
    let (replies, in_use) = in_use;
    let results = results.borrow();
    assert_eq!(results.len(), PEERS as usize);
    for (seed, v, err) in results.iter() {
        assert_eq!(*err, None, "peer {seed} lost with an error");
        v.assert_complete(LEN as u64, &format!("peer {seed}"));
    }
    for r in &replies {
        assert!(r.starts_with(&format!("{LEN} ")), "reply {r:?}");
    }
    assert_eq!(in_use, 0, "provided buffers still handed out");
}

#[test]
fn buffered_protocol_both_ends() {
    const LEN: usize = 4 << 20;
    let server_verifier = Rc::new(RefCell::new(Verifier::new(7)));
    let client_verifier = Rc::new(RefCell::new(Verifier::new(7)));
    let server_lost = Rc::new(Cell::new(0));
    let client_lost = Rc::new(Cell::new(0));
    let client_eof = Rc::new(Cell::new(false));
    let (sv, sl) = (server_verifier.clone(), server_lost.clone());
    let (cv, cl, ce) = (
        client_verifier.clone(),
        client_lost.clone(),
        client_eof.clone(),
    );
    run(async move {
        let l = get_running_loop().unwrap();
        let server = l
            .create_server_buffered(
                move || BufferedCheck {
                    buf: vec![0; 1000],
                    verifier: sv.clone(),
                    transport: None,
                    echo: true,
                    eof: Rc::new(Cell::new(false)),
                    lost: sl.clone(),
                },
                "127.0.0.1:0",
            )
            .await
            .unwrap();
        let addr = server.sockets()[0].to_string();
        let (t, _p) = l
            .create_connection_buffered(
                move || BufferedCheck {
                    buf: vec![0; 777],
                    verifier: cv,
                    transport: None,
                    echo: false,
                    eof: ce,
                    lost: cl,
                },
                &addr,
            )
            .await
            .unwrap();
        t.write(&pattern(7, LEN)).unwrap();
        t.write_eof().unwrap();
        wait_until(Duration::from_secs(20), "both ends lost", || {
            server_lost.get() == 1 && client_lost.get() == 1
        })
        .await;
        server.close();
        server.wait_closed().await;
    });
    server_verifier
        .borrow()
        .assert_complete(LEN as u64, "server");
    client_verifier
        .borrow()
        .assert_complete(LEN as u64, "client");
    assert!(client_eof.get());
}
