//! UDP echo: a server on the DatagramProtocol/DatagramTransport API and a verifying client
//! on the async `UdpSocket` API.
//!
//! ```text
//! cargo run --release --example udp_echo                  # server + client in one process
//! cargo run --release --example udp_echo -- server [ADDR] # default 127.0.0.1:7000
//! cargo run --release --example udp_echo -- server ADDR --threads N # N loops, SO_REUSEPORT
//! cargo run --release --example udp_echo -- client ADDR [--conns N] [--size BYTES] [--count M] [--timeout-ms T]
//! ```
//!
//! The server sends each datagram back to its sender, byte for byte (never more than it
//! received), and exits 0 on SIGINT or SIGTERM. With `--threads N` (N > 1), N loops of a
//! [`ringloop::Runtime`] each bind ADDR with `SO_REUSEPORT` (the kernel spreads senders over
//! them); SIGINT/SIGTERM stop every loop and the driver-counter line sums them. Each client socket sends one datagram at a
//! time and waits for its echo; a reply that does not come within the timeout counts as
//! lost. The client exits non-zero on any mismatch or error.

mod common;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::net::DatagramOptions;
use ringloop::net::UdpSocket;
use ringloop::{
    DatagramProtocol, DatagramTransport, LoopBuilder, Runtime, get_running_loop, spawn,
};

/// Sends every datagram back to where it came from.
struct Echo {
    transport: Option<DatagramTransport>,
}

impl DatagramProtocol for Echo {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
    }

    fn datagram_received(&mut self, data: &[u8], addr: Option<SocketAddr>) {
        if let (Some(t), Some(addr)) = (&self.transport, addr) {
            // Only fails on a closing endpoint or a bad address; nothing to echo then.
            let _ = t.sendto(data, Some(addr));
        }
    }

    fn error_received(&mut self, exc: std::io::Error) {
        eprintln!("udp_echo server: {exc}");
    }
}

struct ClientConfig {
    conns: usize,
    size: usize,
    count: usize,
    timeout: Duration,
}

fn pattern(conn: usize, msg: usize, offset: usize) -> u8 {
    ((conn * 131 + msg * 31 + offset) % 251) as u8
}

#[derive(Default)]
struct Totals {
    messages: Cell<u64>,
    lost: Cell<u64>,
    mismatches: Cell<u64>,
    errors: Cell<u64>,
}

fn bump(c: &Cell<u64>, n: u64) {
    c.set(c.get() + n);
}

async fn client_socket(addr: SocketAddr, conn: usize, cfg: Rc<ClientConfig>, totals: Rc<Totals>) {
    let local: SocketAddr = if addr.is_ipv4() {
        "127.0.0.1:0".parse().expect("literal address")
    } else {
        "[::1]:0".parse().expect("literal address")
    };
    let socket = match UdpSocket::bind(local) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("socket {conn}: {e}");
            bump(&totals.errors, 1);
            return;
        }
    };
    let mut out = vec![0u8; cfg.size];
    let mut inbuf = Vec::with_capacity(cfg.size.max(1) + 1);
    for msg in 0..cfg.count {
        for (i, b) in out.iter_mut().enumerate() {
            *b = pattern(conn, msg, i);
        }
        let (res, back) = socket.send_to(out, addr).await;
        out = back;
        if let Err(e) = res {
            eprintln!("socket {conn}: send: {e}");
            bump(&totals.errors, 1);
            return;
        }
        // Wait for the echo of this message; stale echoes of lost ones are skipped.
        let deadline = Instant::now() + cfg.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match ringloop::timeout(left, socket.recv_from(inbuf)).await {
                Err(_) => {
                    bump(&totals.lost, 1);
                    // The dropped receive took the buffer with it; start a new one.
                    inbuf = Vec::with_capacity(cfg.size.max(1) + 1);
                    break;
                }
                Ok((Err(e), _buf)) => {
                    eprintln!("socket {conn}: recv: {e}");
                    bump(&totals.errors, 1);
                    return;
                }
                Ok((Ok((n, _from)), buf)) => {
                    inbuf = buf;
                    let is_this =
                        n == cfg.size && inbuf.first().is_none_or(|b| *b == pattern(conn, msg, 0));
                    if !is_this && n == cfg.size && cfg.size > 0 {
                        continue; // a late echo of an earlier message
                    }
                    let bad = if n != cfg.size {
                        n.abs_diff(cfg.size)
                    } else {
                        inbuf[..n]
                            .iter()
                            .enumerate()
                            .filter(|(i, b)| **b != pattern(conn, msg, *i))
                            .count()
                    };
                    bump(&totals.mismatches, bad as u64);
                    bump(&totals.messages, 1);
                    break;
                }
            }
        }
    }
}

async fn run_client(addr: SocketAddr, cfg: ClientConfig) -> bool {
    let cfg = Rc::new(cfg);
    let totals = Rc::new(Totals::default());
    let started = Instant::now();
    let handles: Vec<_> = (0..cfg.conns)
        .map(|conn| spawn(client_socket(addr, conn, cfg.clone(), totals.clone())))
        .collect();
    for h in handles {
        if h.await.is_err() {
            bump(&totals.errors, 1);
        }
    }
    let elapsed = started.elapsed();
    println!(
        "messages={} bytes={} elapsed={:.3}s msgs/s={:.0} lost={} mismatches={} errors={}",
        totals.messages.get(),
        totals.messages.get() * cfg.size as u64,
        elapsed.as_secs_f64(),
        totals.messages.get() as f64 / elapsed.as_secs_f64().max(1e-9),
        totals.lost.get(),
        totals.mismatches.get(),
        totals.errors.get(),
    );
    totals.mismatches.get() == 0 && totals.errors.get() == 0
}

fn serve(addr: &str, builder: LoopBuilder) -> Result<(), String> {
    let event_loop = builder.build().map_err(|e| e.to_string())?;
    let l = event_loop.clone();
    let addr = addr.to_string();
    let result = event_loop.run_until_complete(async move {
        let (transport, _) = l
            .create_datagram_endpoint(
                || Echo { transport: None },
                Some(&addr),
                None,
                Default::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
        let bound = transport.local_addr().map_err(|e| e.to_string())?;
        common::announce(Some(bound));
        common::until_stop_signal(&l).await?;
        common::report_driver(&l);
        transport.close();
        Ok::<(), String>(())
    });
    event_loop.close().map_err(|e| e.to_string())?;
    result.map_err(|e| e.to_string())?
}

thread_local! {
    /// This loop thread's endpoint in a `--threads N` server, between `Runtime::run`s.
    static ENDPOINT: RefCell<Option<DatagramTransport>> = const { RefCell::new(None) };
}

/// Binds `addr` with `SO_REUSEPORT` and keeps the endpoint on this loop thread.
async fn bind_shared(addr: String) -> Result<SocketAddr, String> {
    let l = get_running_loop().map_err(|e| e.to_string())?;
    let options = DatagramOptions {
        reuse_port: true,
        ..Default::default()
    };
    let (transport, _) = l
        .create_datagram_endpoint(|| Echo { transport: None }, Some(&addr), None, options)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let bound = transport.local_addr().map_err(|e| e.to_string())?;
    ENDPOINT.with(|e| *e.borrow_mut() = Some(transport));
    Ok(bound)
}

/// `server ADDR --threads N`: N loops, each bound to ADDR with `SO_REUSEPORT`.
fn serve_threads(addr: &str, builder: LoopBuilder, threads: usize) -> Result<(), String> {
    let rt = Runtime::builder()
        .threads(threads)
        .loop_builder(builder)
        .thread_name("udp_echo")
        // Blocked in every thread, so only loop 0's signal handlers see them.
        .block_signals(&[libc::SIGINT, libc::SIGTERM])
        .build()
        .map_err(|e| e.to_string())?;
    let run_err = |e: ringloop::RuntimeError| e.to_string();
    // Loop 0 binds first (ADDR may say port 0), the others join on the port it got.
    let addr = addr.to_string();
    let first = rt
        .run(move |ctx| {
            let addr = addr.clone();
            async move {
                match ctx.index() {
                    0 => bind_shared(addr).await.map(Some),
                    _ => Ok(None),
                }
            }
        })
        .map_err(run_err)?
        .remove(0)?
        .ok_or("loop 0 did not bind")?;
    for bound in rt
        .run(move |ctx| async move {
            match ctx.index() {
                0 => Ok(first),
                _ => bind_shared(first.to_string()).await,
            }
        })
        .map_err(run_err)?
    {
        bound?;
    }
    common::announce(Some(first));
    common::serve_until_signal(rt, || {
        if let Some(t) = ENDPOINT.with(|s| s.borrow_mut().take()) {
            t.close();
        }
    })
}

fn client_config(args: &[String], defaults: (usize, usize, usize)) -> Result<ClientConfig, String> {
    Ok(ClientConfig {
        conns: common::parse_flag(args, "--conns", defaults.0)?,
        size: common::parse_flag(args, "--size", defaults.1)?,
        count: common::parse_flag(args, "--count", defaults.2)?,
        timeout: Duration::from_millis(common::parse_flag(args, "--timeout-ms", 1000)? as u64),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Flags alone (no command) tune the in-process run.
    let command = args
        .first()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"));
    let outcome = match command {
        Some("server") => {
            let addr = args
                .get(1)
                .filter(|a| !a.starts_with("--"))
                .cloned()
                .unwrap_or_else(|| "127.0.0.1:7000".to_string());
            (|| {
                let threads = common::parse_flag(&args, "--threads", 1)?;
                let builder = common::loop_builder(&args)?;
                match threads {
                    0 => Err("--threads needs at least 1".to_string()),
                    1 => serve(&addr, builder).map(|()| true),
                    n => serve_threads(&addr, builder, n).map(|()| true),
                }
            })()
        }
        Some("client") => (|| {
            let addr: SocketAddr = args
                .get(1)
                .ok_or("client needs ADDR")?
                .parse()
                .map_err(|e| format!("ADDR: {e}"))?;
            let cfg = client_config(&args, (16, 64, 1000))?;
            common::loop_builder(&args)?
                .run(run_client(addr, cfg))
                .map_err(|e| e.to_string())
        })(),
        None => (|| {
            let cfg = client_config(&args, (16, 512, 1000))?;
            common::loop_builder(&args)?
                .run(async move {
                    let l = get_running_loop().map_err(|e| e.to_string())?;
                    let (server, _) = l
                        .create_datagram_endpoint(
                            || Echo { transport: None },
                            Some("127.0.0.1:0"),
                            None,
                            Default::default(),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    let addr = server.local_addr().map_err(|e| e.to_string())?;
                    println!("listening on {addr}");
                    println!(
                        "client: {} sockets x {} datagrams x {} bytes, every byte verified",
                        cfg.conns, cfg.count, cfg.size
                    );
                    let ok = run_client(addr, cfg).await;
                    server.close();
                    Ok(ok)
                })
                .map_err(|e| e.to_string())?
        })(),
        Some(other) => Err(format!(
            "unknown command {other:?}; usage: udp_echo [server [ADDR] | client ADDR [--conns N] [--size BYTES] [--count M] [--timeout-ms T]] [--engine uring|epoll|auto]"
        )),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("udp_echo: {e}");
            ExitCode::from(2)
        }
    }
}
