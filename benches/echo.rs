//! Echo benchmarks: in-process round trips over loopback on ringloop's two engines and on
//! tokio's current-thread runtime, in the same run.
//!
//! `cargo bench --bench echo`. One iteration is one round trip on every connection (or
//! socket): each client sends a message and reads the whole echo back before the next,
//! all connections concurrently; the server and the clients share one thread (the loop, or
//! the tokio runtime). Cells: TCP at 1, 16 and 128 connections × 64 B and 4 KiB, UDP at 1
//! and 16 sockets × 64 B. The ringloop server is the `Protocol` echo of `examples/tcp_echo`
//! (multishot receive from the buffer ring on io_uring), its clients the async socket API;
//! tokio's is a task per connection with `read`/`write_all`.
//!
//! Every echo is compared with what was sent (its first byte changes with each message).
//! Kept short (10 samples of ~1 s) so the whole run takes about a minute; the
//! whole-process comparison (`benches/compare.sh`) is the one that measures server CPU.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringloop::net::{TcpStream, UdpSocket};
use ringloop::{
    DatagramProtocol, DatagramTransport, Engine, EventLoop, Protocol, StreamTransport, spawn,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TCP_CONNS: [usize; 3] = [1, 16, 128];
const TCP_SIZES: [(usize, &str); 2] = [(64, "64B"), (4096, "4KiB")];
const UDP_SOCKETS: [usize; 2] = [1, 16];
const UDP_SIZE: usize = 64;
/// A datagram echo that takes longer than this on loopback is a failure, not a sample.
const UDP_TIMEOUT: Duration = Duration::from_secs(2);

/// The message a client sends on round trip `i`: the first byte changes every time.
fn message(size: usize, conn: usize) -> Vec<u8> {
    (0..size).map(|j| ((conn * 131 + j) % 251) as u8).collect()
}

fn stamp(out: &mut [u8], i: u64) {
    out[0] = i as u8;
}

// ---- ringloop --------------------------------------------------------------------------

/// Echoes what it receives (mirrors write backpressure onto reading).
struct StreamEcho(Option<StreamTransport>);

impl Protocol for StreamEcho {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.0 = Some(transport.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.0 {
            let _ = t.write(data);
        }
    }
    fn pause_writing(&mut self) {
        if let Some(t) = &self.0 {
            t.pause_reading();
        }
    }
    fn resume_writing(&mut self) {
        if let Some(t) = &self.0 {
            t.resume_reading();
        }
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.0 = None;
    }
}

/// Sends each datagram back to its sender.
struct DatagramEcho(Option<DatagramTransport>);

impl DatagramProtocol for DatagramEcho {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.0 = Some(transport.clone());
    }
    fn datagram_received(&mut self, data: &[u8], addr: Option<SocketAddr>) {
        if let (Some(t), Some(addr)) = (&self.0, addr) {
            let _ = t.sendto(data, Some(addr));
        }
    }
}

fn ringloop_loop(engine: Engine) -> EventLoop {
    EventLoop::builder()
        .engine(engine)
        .build()
        .expect("event loop")
}

/// `iters` round trips of `out` on one ringloop TCP connection; returns its buffers.
async fn ringloop_tcp_round_trips(
    stream: TcpStream,
    mut out: Vec<u8>,
    iters: u64,
) -> (TcpStream, Vec<u8>) {
    let size = out.len();
    let mut inbuf = Vec::with_capacity(size);
    for i in 0..iters {
        stamp(&mut out, i);
        let (res, back) = stream.write_all(out).await;
        out = back;
        res.expect("send");
        let mut got = 0;
        while got < size {
            let (res, buf) = stream.read(inbuf).await;
            inbuf = buf;
            let n = res.expect("recv");
            assert!(n > 0, "server closed the connection");
            assert_eq!(&inbuf[..n], &out[got..got + n], "echo differs");
            got += n;
        }
    }
    (stream, out)
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Benchmarks `clients` (each with its message) doing `iters` round trips at once, each
/// client a task on `l`; the clients come back after every sample for the next one.
fn bench_ringloop_clients<C, F, Fut>(
    group: &mut Group<'_>,
    l: &EventLoop,
    id: BenchmarkId,
    clients: Vec<(C, Vec<u8>)>,
    round_trips: F,
) where
    C: 'static,
    F: Fn(C, Vec<u8>, u64) -> Fut,
    Fut: std::future::Future<Output = (C, Vec<u8>)> + 'static,
{
    let clients = RefCell::new(clients);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let taken = std::mem::take(&mut *clients.borrow_mut());
            let runs: Vec<_> = taken
                .into_iter()
                .map(|(c, out)| round_trips(c, out, iters))
                .collect();
            let (elapsed, back) = l
                .run_until_complete(async move {
                    let start = Instant::now();
                    let handles: Vec<_> = runs.into_iter().map(spawn).collect();
                    let mut back = Vec::new();
                    for h in handles {
                        back.push(h.await.expect("client task"));
                    }
                    (start.elapsed(), back)
                })
                .expect("run");
            *clients.borrow_mut() = back;
            elapsed
        })
    });
}

fn ringloop_tcp(group: &mut Group<'_>, engine: Engine, name: &str, size: usize, conns: usize) {
    let l = ringloop_loop(engine);
    let l2 = l.clone();
    let (server, clients) = l
        .run_until_complete(async move {
            let server = l2
                .create_server(|| StreamEcho(None), "127.0.0.1:0")
                .await
                .expect("create_server");
            let addr = server.sockets()[0];
            let mut clients = Vec::new();
            for conn in 0..conns {
                let s = TcpStream::connect(addr).await.expect("connect");
                s.set_nodelay(true).expect("nodelay");
                clients.push((s, message(size, conn)));
            }
            (server, clients)
        })
        .expect("set-up");
    bench_ringloop_clients(
        group,
        &l,
        BenchmarkId::new(name, conns),
        clients,
        ringloop_tcp_round_trips,
    );
    server.close();
    l.run_until_complete(async move { server.wait_closed().await })
        .expect("close");
    l.close().expect("loop close");
}

async fn ringloop_udp_round_trips(
    socket: UdpSocket,
    mut out: Vec<u8>,
    iters: u64,
) -> (UdpSocket, Vec<u8>) {
    let mut inbuf = Vec::with_capacity(out.len() + 1);
    for i in 0..iters {
        stamp(&mut out, i);
        let (res, back) = socket.send(out).await;
        out = back;
        res.expect("send");
        let (res, buf) = ringloop::timeout(UDP_TIMEOUT, socket.recv(inbuf))
            .await
            .expect("datagram lost on loopback");
        inbuf = buf;
        let n = res.expect("recv");
        assert_eq!(&inbuf[..n], &out[..], "echo differs");
    }
    (socket, out)
}

fn ringloop_udp(group: &mut Group<'_>, engine: Engine, name: &str, sockets: usize) {
    let l = ringloop_loop(engine);
    let l2 = l.clone();
    let (server, clients) = l
        .run_until_complete(async move {
            let (server, _) = l2
                .create_datagram_endpoint(
                    || DatagramEcho(None),
                    Some("127.0.0.1:0"),
                    None,
                    Default::default(),
                )
                .await
                .expect("datagram endpoint");
            let addr = server.local_addr().expect("local_addr");
            let mut clients = Vec::new();
            for conn in 0..sockets {
                let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
                s.connect(addr).await.expect("connect");
                clients.push((s, message(UDP_SIZE, conn)));
            }
            (server, clients)
        })
        .expect("set-up");
    bench_ringloop_clients(
        group,
        &l,
        BenchmarkId::new(name, sockets),
        clients,
        ringloop_udp_round_trips,
    );
    server.close();
    l.close().expect("loop close");
}

// ---- tokio -----------------------------------------------------------------------------

/// [`bench_ringloop_clients`] on tokio's current-thread runtime: each client a tokio task.
fn bench_tokio_clients<C, F, Fut>(
    group: &mut Group<'_>,
    rt: &tokio::runtime::Runtime,
    id: BenchmarkId,
    clients: Vec<(C, Vec<u8>)>,
    round_trips: F,
) where
    C: Send + 'static,
    F: Fn(C, Vec<u8>, u64) -> Fut,
    Fut: std::future::Future<Output = (C, Vec<u8>)> + Send + 'static,
{
    let clients = RefCell::new(clients);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let taken = std::mem::take(&mut *clients.borrow_mut());
            let runs: Vec<_> = taken
                .into_iter()
                .map(|(c, out)| round_trips(c, out, iters))
                .collect();
            let (elapsed, back) = rt.block_on(async move {
                let start = Instant::now();
                let handles: Vec<_> = runs.into_iter().map(tokio::spawn).collect();
                let mut back = Vec::new();
                for h in handles {
                    back.push(h.await.expect("client task"));
                }
                (start.elapsed(), back)
            });
            *clients.borrow_mut() = back;
            elapsed
        })
    });
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn tokio_echo_stream(mut stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn tokio_tcp_round_trips(
    mut stream: tokio::net::TcpStream,
    mut out: Vec<u8>,
    iters: u64,
) -> (tokio::net::TcpStream, Vec<u8>) {
    let size = out.len();
    let mut inbuf = vec![0u8; size];
    for i in 0..iters {
        stamp(&mut out, i);
        stream.write_all(&out).await.expect("send");
        let mut got = 0;
        while got < size {
            let n = stream.read(&mut inbuf[got..]).await.expect("recv");
            assert!(n > 0, "server closed the connection");
            got += n;
        }
        assert_eq!(inbuf, out, "echo differs");
    }
    (stream, out)
}

fn tokio_tcp(group: &mut Group<'_>, size: usize, conns: usize) {
    let rt = tokio_rt();
    let (server, clients) = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let server = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(tokio_echo_stream(s));
            }
        });
        let mut clients = Vec::new();
        for conn in 0..conns {
            let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            clients.push((s, message(size, conn)));
        }
        (server, clients)
    });
    bench_tokio_clients(
        group,
        &rt,
        BenchmarkId::new("tokio", conns),
        clients,
        tokio_tcp_round_trips,
    );
    server.abort();
}

async fn tokio_udp_round_trips(
    socket: tokio::net::UdpSocket,
    mut out: Vec<u8>,
    iters: u64,
) -> (tokio::net::UdpSocket, Vec<u8>) {
    let mut inbuf = vec![0u8; out.len() + 1];
    for i in 0..iters {
        stamp(&mut out, i);
        socket.send(&out).await.expect("send");
        let n = tokio::time::timeout(UDP_TIMEOUT, socket.recv(&mut inbuf))
            .await
            .expect("datagram lost on loopback")
            .expect("recv");
        assert_eq!(&inbuf[..n], &out[..], "echo differs");
    }
    (socket, out)
}

fn tokio_udp(group: &mut Group<'_>, sockets: usize) {
    let rt = tokio_rt();
    let (server, clients) = rt.block_on(async move {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = server.local_addr().expect("local_addr");
        let server = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                let _ = server.send_to(&buf[..n], from).await;
            }
        });
        let mut clients = Vec::new();
        for conn in 0..sockets {
            let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            s.connect(addr).await.expect("connect");
            clients.push((s, message(UDP_SIZE, conn)));
        }
        (server, clients)
    });
    bench_tokio_clients(
        group,
        &rt,
        BenchmarkId::new("tokio", sockets),
        clients,
        tokio_udp_round_trips,
    );
    server.abort();
}

/// Each cell runs its three peers back to back, so they see the same machine load.
fn tcp(c: &mut Criterion) {
    for (size, size_name) in TCP_SIZES {
        let mut group = c.benchmark_group(format!("tcp_echo_{size_name}"));
        for conns in TCP_CONNS {
            group.throughput(Throughput::Elements(conns as u64));
            ringloop_tcp(&mut group, Engine::Uring, "ringloop_uring", size, conns);
            ringloop_tcp(&mut group, Engine::Epoll, "ringloop_epoll", size, conns);
            tokio_tcp(&mut group, size, conns);
        }
        group.finish();
    }
}

fn udp(c: &mut Criterion) {
    let mut group = c.benchmark_group("udp_echo_64B");
    for sockets in UDP_SOCKETS {
        group.throughput(Throughput::Elements(sockets as u64));
        ringloop_udp(&mut group, Engine::Uring, "ringloop_uring", sockets);
        ringloop_udp(&mut group, Engine::Epoll, "ringloop_epoll", sockets);
        tokio_udp(&mut group, sockets);
    }
    group.finish();
}

criterion_group! {
    name = echo;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = tcp, udp
}
criterion_main!(echo);
