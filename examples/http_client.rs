//! A hyper HTTP/1.1 client on ringloop that drives keep-alive load against a server and
//! verifies every answer.
//!
//! ```text
//! cargo run --release --features hyper --example http_client -- URL [--requests N] [--conns C]
//!     [--status S] [--body TEXT]   # expected answer; default 200 "Hello, World!"
//! cargo run --release --features hyper --example http_client                  # self-check
//! cargo run --release --features hyper --example http_client -- server [ADDR] # hello server
//! (any) --engine uring|epoll|auto
//! ```
//!
//! `URL` is `http://host:port/path`. `C` connections (default 8) share `N` GETs (default
//! 10,000); each answer's status and body are compared with the expected ones. It prints
//! `requests=… elapsed=… requests/s=… wrong=… errors=…` and exits 0 only when every
//! request got the expected answer. Without a URL it starts `http_hello`'s server in the
//! same process and runs against it; `server` runs that server alone (it prints
//! `listening on <ip:port>` and exits 0 on SIGINT or SIGTERM).

mod common;
#[path = "common/http.rs"]
mod http;

use std::process::ExitCode;

use ringloop::net::TcpListener;

fn load(args: &[String], url: http::Url) -> Result<http::Load, String> {
    let body = match args.iter().position(|a| a == "--body") {
        Some(i) => args.get(i + 1).ok_or("--body needs a value")?.clone(),
        None => http::HELLO.to_string(),
    };
    let status = common::parse_flag(args, "--status", 200)?;
    Ok(http::Load {
        url,
        requests: common::parse_flag(args, "--requests", 10_000)?,
        conns: common::parse_flag(args, "--conns", 8)?,
        status: u16::try_from(status).map_err(|e| format!("--status: {e}"))?,
        body,
    })
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
        Some(url) if url.starts_with("http://") => (|| {
            let load = load(&args, http::Url::parse(url)?)?;
            common::loop_builder(&args)?
                .run(http::run_load(load))
                .map_err(|e| e.to_string())
        })(),
        None => (|| {
            let header_timeout = http::header_timeout(&args)?;
            let args2 = args.clone();
            common::loop_builder(&args)?
                .run(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                    let addr = listener.local_addr().map_err(|e| e.to_string())?;
                    println!("listening on {addr}");
                    let server = ringloop::spawn(http::serve_hello(listener, header_timeout));
                    let ok = http::run_load(load(
                        &args2,
                        http::Url::parse(&format!("http://{addr}/"))?,
                    )?)
                    .await;
                    server.cancel();
                    Ok::<bool, String>(ok)
                })
                .map_err(|e| e.to_string())?
        })(),
        Some(other) => Err(format!(
            "unknown command {other:?}; usage: http_client [URL [--requests N] [--conns C] [--status S] [--body TEXT] | server [ADDR]] [--engine uring|epoll|auto]"
        )),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("http_client: {e}");
            ExitCode::from(2)
        }
    }
}
