//! TCP echo: a server on the Protocol/Transport API and a verifying client on the async
//! socket API.
//!
//! ```text
//! cargo run --release --example tcp_echo                  # server + client in one process
//! cargo run --release --example tcp_echo -- server [ADDR] # default 127.0.0.1:7000
//! cargo run --release --example tcp_echo -- server ADDR --threads N # N loops, SO_REUSEPORT
//! cargo run --release --example tcp_echo -- server ADDR --work-us US # CPU work per echo
//! cargo run --release --example tcp_echo -- client ADDR [--conns N] [--size BYTES] [--count M]
//! (any of them) --engine uring|epoll|auto                 # default: RINGLOOP_ENGINE, else uring
//! ```
//!
//! The server prints `listening on <ip:port>` first, echoes every byte in order, handles
//! half-close (echoes what remains, then closes its side), pauses reading from a client
//! that does not read its echoes (so its memory stays bounded), and exits 0 on SIGINT or
//! SIGTERM. With `--threads N` (N > 1) the server is a [`ringloop::Runtime`] of N loops,
//! each listening on ADDR with `SO_REUSEPORT` (the kernel spreads the connections); SIGINT
//! or SIGTERM stops every loop, and the driver-counter line sums the loops' counters. The
//! client checks every echoed byte against a pattern and exits non-zero on
//! any mismatch or error.

mod common;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::net::{Server, ServerOptions, TcpStream};
use ringloop::{LoopBuilder, Protocol, Runtime, StreamTransport, get_running_loop, spawn};

/// Echoes what it receives; mirrors write backpressure onto reading. With `work_us`,
/// burns that much CPU per received chunk first (`--work-us`, a server-bound load for the
/// multi-core benchmark).
struct Echo {
    transport: Option<StreamTransport>,
    work_us: u64,
}

/// `us` microseconds of hashing on this thread (the result is kept, so it is not elided).
fn burn(us: u64, seed: &[u8]) -> u64 {
    let until = Instant::now() + Duration::from_micros(us);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    while Instant::now() < until {
        for _ in 0..64 {
            for &b in seed.iter().take(64) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
    }
    std::hint::black_box(h)
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        if self.work_us > 0 {
            burn(self.work_us, data);
        }
        if let Some(t) = &self.transport {
            // A write only fails once the transport is closing; nothing to echo then.
            let _ = t.write(data);
        }
    }

    fn eof_received(&mut self) -> bool {
        // Returning false closes the transport, which first flushes what is buffered.
        false
    }

    fn pause_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }

    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.transport = None;
    }
}

struct ClientConfig {
    conns: usize,
    size: usize,
    count: usize,
}

/// The byte at `offset` of message `msg` on connection `conn`.
fn pattern(conn: usize, msg: usize, offset: usize) -> u8 {
    ((conn * 131 + msg * 31 + offset) % 251) as u8
}

#[derive(Default)]
struct Totals {
    messages: Cell<u64>,
    bytes: Cell<u64>,
    mismatches: Cell<u64>,
    errors: Cell<u64>,
}

async fn client_connection(
    addr: SocketAddr,
    conn: usize,
    cfg: Rc<ClientConfig>,
    totals: Rc<Totals>,
) {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connection {conn}: {e}");
            totals.errors.set(totals.errors.get() + 1);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let mut out = vec![0u8; cfg.size];
    let mut inbuf = Vec::with_capacity(cfg.size.max(1));
    for msg in 0..cfg.count {
        for (i, b) in out.iter_mut().enumerate() {
            *b = pattern(conn, msg, i);
        }
        let (res, back) = stream.write_all(out).await;
        out = back;
        if let Err(e) = res {
            eprintln!("connection {conn}: send: {e}");
            totals.errors.set(totals.errors.get() + 1);
            return;
        }
        let mut got = 0;
        while got < cfg.size {
            let (res, buf) = stream.read(inbuf).await;
            inbuf = buf;
            match res {
                Ok(0) => {
                    eprintln!("connection {conn}: server closed early");
                    totals.errors.set(totals.errors.get() + 1);
                    return;
                }
                Ok(n) => {
                    let bad = inbuf[..n]
                        .iter()
                        .enumerate()
                        .filter(|(i, b)| **b != pattern(conn, msg, got + i))
                        .count();
                    totals.mismatches.set(totals.mismatches.get() + bad as u64);
                    got += n;
                }
                Err(e) => {
                    eprintln!("connection {conn}: recv: {e}");
                    totals.errors.set(totals.errors.get() + 1);
                    return;
                }
            }
        }
        totals.messages.set(totals.messages.get() + 1);
        totals.bytes.set(totals.bytes.get() + cfg.size as u64);
    }
}

/// Runs the client against `addr`; true when every byte came back right.
async fn run_client(addr: SocketAddr, cfg: ClientConfig) -> bool {
    let cfg = Rc::new(cfg);
    let totals = Rc::new(Totals::default());
    let started = Instant::now();
    let handles: Vec<_> = (0..cfg.conns)
        .map(|conn| spawn(client_connection(addr, conn, cfg.clone(), totals.clone())))
        .collect();
    for h in handles {
        if h.await.is_err() {
            totals.errors.set(totals.errors.get() + 1);
        }
    }
    let elapsed = started.elapsed();
    let messages = totals.messages.get();
    println!(
        "messages={messages} bytes={} elapsed={:.3}s msgs/s={:.0} mismatches={} errors={}",
        totals.bytes.get(),
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64().max(1e-9),
        totals.mismatches.get(),
        totals.errors.get(),
    );
    let expected = (cfg.conns * cfg.count) as u64;
    totals.mismatches.get() == 0 && totals.errors.get() == 0 && messages == expected
}

fn serve(addr: &str, builder: LoopBuilder, work_us: u64) -> Result<(), String> {
    let event_loop = builder.build().map_err(|e| e.to_string())?;
    let l = event_loop.clone();
    let addr = addr.to_string();
    let result = event_loop.run_until_complete(async move {
        let server = l
            .create_server(
                move || Echo {
                    transport: None,
                    work_us,
                },
                &addr,
            )
            .await
            .map_err(|e| e.to_string())?;
        common::announce(server.sockets().first().copied());
        common::until_stop_signal(&l).await?;
        server.close();
        common::report_driver(&l);
        Ok::<(), String>(())
    });
    event_loop.close().map_err(|e| e.to_string())?;
    result.map_err(|e| e.to_string())?
}

thread_local! {
    /// The server of this loop thread of a `--threads N` runtime, between `Runtime::run`s.
    static SERVER: RefCell<Option<Server>> = const { RefCell::new(None) };
}

/// Listens on `addr` with `SO_REUSEPORT` and keeps the server on this loop thread.
async fn listen_shared(addr: String, work_us: u64) -> Result<SocketAddr, String> {
    let l = get_running_loop().map_err(|e| e.to_string())?;
    let options = ServerOptions {
        reuse_port: true,
        ..Default::default()
    };
    let server = l
        .create_server_with(
            move || Echo {
                transport: None,
                work_us,
            },
            addr.as_str(),
            options,
        )
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let bound = server.sockets()[0];
    SERVER.with(|s| *s.borrow_mut() = Some(server));
    Ok(bound)
}

/// `server ADDR --threads N`: N loops, each listening on ADDR with `SO_REUSEPORT`.
fn serve_threads(
    addr: &str,
    builder: LoopBuilder,
    threads: usize,
    work_us: u64,
) -> Result<(), String> {
    let rt = Runtime::builder()
        .threads(threads)
        .loop_builder(builder)
        .thread_name("tcp_echo")
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
                    0 => listen_shared(addr, work_us).await.map(Some),
                    _ => Ok(None),
                }
            }
        })
        .map_err(run_err)?
        .remove(0)?
        .ok_or("loop 0 did not listen")?;
    for bound in rt
        .run(move |ctx| async move {
            match ctx.index() {
                0 => Ok(first),
                _ => listen_shared(first.to_string(), work_us).await,
            }
        })
        .map_err(run_err)?
    {
        bound?;
    }
    common::announce(Some(first));
    common::serve_until_signal(rt, || {
        if let Some(server) = SERVER.with(|s| s.borrow_mut().take()) {
            server.close();
        }
    })
}

fn client_config(args: &[String], defaults: (usize, usize, usize)) -> Result<ClientConfig, String> {
    Ok(ClientConfig {
        conns: common::parse_flag(args, "--conns", defaults.0)?,
        size: common::parse_flag(args, "--size", defaults.1)?,
        count: common::parse_flag(args, "--count", defaults.2)?,
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
                let work_us = common::parse_flag(&args, "--work-us", 0)? as u64;
                let builder = common::loop_builder(&args)?;
                match threads {
                    0 => Err("--threads needs at least 1".to_string()),
                    1 => serve(&addr, builder, work_us).map(|()| true),
                    n => serve_threads(&addr, builder, n, work_us).map(|()| true),
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
            let cfg = client_config(&args, (64, 1024, 500))?;
            common::loop_builder(&args)?
                .run(async move {
                    let l = get_running_loop().map_err(|e| e.to_string())?;
                    let server = l
                        .create_server(
                            || Echo {
                                transport: None,
                                work_us: 0,
                            },
                            "127.0.0.1:0",
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    let addr = server.sockets()[0];
                    println!("listening on {addr}");
                    println!(
                        "client: {} connections x {} messages x {} bytes, every byte verified",
                        cfg.conns, cfg.count, cfg.size
                    );
                    let ok = run_client(addr, cfg).await;
                    server.close();
                    ringloop::timeout(Duration::from_secs(5), server.wait_closed())
                        .await
                        .map_err(|e| format!("server did not close: {e}"))?;
                    Ok(ok)
                })
                .map_err(|e| e.to_string())?
        })(),
        Some(other) => Err(format!(
            "unknown command {other:?}; usage: tcp_echo [server [ADDR] [--threads N] [--work-us US] | client ADDR [--conns N] [--size BYTES] [--count M]] [--engine uring|epoll|auto]"
        )),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tcp_echo: {e}");
            ExitCode::from(2)
        }
    }
}
