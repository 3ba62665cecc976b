//! An axum `Router` served by hyper on ringloop: `GET /` answers `Hello, World!`
//! (`text/plain`), `GET /json` answers `{"message":"Hello, World!"}` (`application/json`),
//! anything else 404. HTTP/1.1 (keep-alive, header-read timeout) and HTTP/2 with prior
//! knowledge (h2c) on the same port, through hyper-util's auto builder.
//!
//! ```text
//! cargo run --release --features hyper --example axum_hello                  # server + checks
//! cargo run --release --features hyper --example axum_hello -- server [ADDR] # 127.0.0.1:8080
//! (either) --engine uring|epoll|auto   --header-timeout SECS (default 10)
//! ```
//!
//! axum's own `serve` needs tokio's runtime; here each accepted connection goes to hyper
//! with the router as its service (`TowerToHyperService`), the loop's executor and timer.
//! `server` prints `listening on <ip:port>` first and exits 0 on SIGINT or SIGTERM.
//! Without a command it checks itself: 1,000 GETs of `/` over 4 connections, `/json`
//! parsed and compared, a 404 and the bad-input cases.

mod common;
#[path = "common/http.rs"]
mod http;

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use ringloop::compat::LoopTimer;
use ringloop::net::{TcpListener, TcpStream};

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { http::HELLO }))
        .route(
            "/json",
            get(|| async { axum::Json(serde_json::json!({ "message": http::HELLO })) }),
        )
}

async fn serve(listener: TcpListener, header_timeout: Duration) {
    let service = TowerToHyperService::new(router());
    http::accept_loop(listener, move |io| {
        let service = service.clone();
        async move {
            let mut builder = auto::Builder::new(http::executor());
            builder
                .http1()
                .keep_alive(true)
                .timer(LoopTimer)
                .header_read_timeout(header_timeout)
                .max_buf_size(http::MAX_HEAD);
            builder.http2().timer(LoopTimer);
            // A connection's error ends that connection only.
            let _ = builder.serve_connection(io, service).await;
        }
    })
    .await
}

/// `GET /json` on a new connection: status 200, `application/json`, the message back.
async fn check_json(addr: std::net::SocketAddr) -> Result<(), String> {
    let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(s.compat())
        .await
        .map_err(|e| e.to_string())?;
    let driver = ringloop::spawn(conn);
    let req = hyper::Request::get("/json")
        .header("host", "x")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let ctype = resp.headers().get("content-type").cloned();
    if resp.status() != 200 || ctype.as_ref().map(|v| v.as_bytes()) != Some(b"application/json") {
        return Err(format!("status {} content-type {ctype:?}", resp.status()));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if v != serde_json::json!({ "message": http::HELLO }) {
        return Err(format!("body {v}"));
    }
    drop(send);
    let _ = driver.await;
    Ok(())
}

fn self_check(args: &[String]) -> Result<bool, String> {
    let header_timeout = http::header_timeout(args)?;
    common::loop_builder(args)?
        .run(async move {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            println!("listening on {addr}");
            let server = ringloop::spawn(serve(listener, header_timeout));
            let mut ok = http::run_load(http::Load {
                url: http::Url::parse(&format!("http://{addr}/"))?,
                requests: 1000,
                conns: 4,
                status: 200,
                body: http::HELLO.to_string(),
            })
            .await;
            match check_json(addr).await {
                Ok(()) => println!("GET /json: ok"),
                Err(e) => {
                    println!("GET /json: {e}");
                    ok = false;
                }
            }
            ok &= http::check_bad_input(addr).await;
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
            http::run_server(&args, "127.0.0.1:8080", move |l| serve(l, t)).map(|()| true)
        }),
        None => self_check(&args),
        Some(other) => Err(format!(
            "unknown command {other:?}; usage: axum_hello [server [ADDR]] [--engine uring|epoll|auto] [--header-timeout SECS]"
        )),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("axum_hello: {e}");
            ExitCode::from(2)
        }
    }
}
