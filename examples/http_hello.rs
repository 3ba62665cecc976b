//! hyper HTTP/1.1 on ringloop: `GET /` answers 200 `Hello, World!` (`text/plain`), any
//! other path 404, a malformed request 400 and a close, a head over 64 KiB 431 and a
//! close; connections stay open between requests (keep-alive) and a client that does not
//! finish its head within the header-read timeout (slowloris) is closed.
//!
//! ```text
//! cargo run --release --features hyper --example http_hello                  # server + checks
//! cargo run --release --features hyper --example http_hello -- server [ADDR] # 127.0.0.1:8080
//! (either) --engine uring|epoll|auto   --header-timeout SECS (default 10)
//! ```
//!
//! `server` prints `listening on <ip:port>` first and exits 0 on SIGINT or SIGTERM.
//! Without a command the server starts on a free port and a hyper client in the same
//! process checks it: 2,000 keep-alive GETs over 8 connections (status and body), a 404,
//! a malformed request, an oversized head and a slowloris client.

mod common;
#[path = "common/http.rs"]
mod http;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use ringloop::net::{TcpListener, TcpStream};

/// A client that sends half a head and then nothing: the server must close it after the
/// header-read timeout (and not much later).
async fn check_slowloris(addr: std::net::SocketAddr, header_timeout: Duration) -> bool {
    let started = Instant::now();
    let res = ringloop::timeout(header_timeout * 3 + Duration::from_secs(2), async move {
        let s = TcpStream::connect(addr).await?;
        let (res, _) = s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n".to_vec()).await;
        res?;
        let (res, _) = s.read(Vec::with_capacity(1024)).await;
        res
    })
    .await;
    let waited = started.elapsed();
    // Closed (EOF, or a reset) after at least the timeout; hyper may answer 408 first.
    let closed = match res {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Err(_) => false,
    };
    let ok = closed && waited >= header_timeout.mul_f64(0.9);
    println!(
        "slowloris: closed={closed} after {:.2}s (timeout {:.2}s): {}",
        waited.as_secs_f64(),
        header_timeout.as_secs_f64(),
        if ok { "ok" } else { "WRONG" }
    );
    ok
}

fn self_check(args: &[String]) -> Result<bool, String> {
    // A short timeout so the slowloris check ends quickly (a flag overrides it).
    let header_timeout = if args.iter().any(|a| a == "--header-timeout") {
        http::header_timeout(args)?
    } else {
        Duration::from_millis(500)
    };
    common::loop_builder(args)?
        .run(async move {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("listening on {addr}");
            let server = ringloop::spawn(http::serve_hello(listener, header_timeout));
            let url = http::Url::parse(&format!("http://{addr}/"))?;
            let mut ok = http::run_load(http::Load {
                url,
                requests: 2000,
                conns: 8,
                status: 200,
                body: http::HELLO.to_string(),
            })
            .await;
            ok &= http::check_bad_input(addr).await;
            ok &= check_slowloris(addr, header_timeout).await;
            server.cancel();
            Ok(ok)
        })
        .map_err(|e| e.to_string())?
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args
        .first()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"));
    let outcome = match command {
        Some("server") => http::header_timeout(&args).and_then(|t| {
            http::run_server(&args, "127.0.0.1:8080", move |l| http::serve_hello(l, t))
                .map(|()| true)
        }),
        None => self_check(&args),
        Some(other) => Err(format!(
            "unknown command {other:?}; usage: http_hello [server [ADDR]] [--engine uring|epoll|auto] [--header-timeout SECS]"
        )),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("http_hello: {e}");
            ExitCode::from(2)
        }
    }
}
