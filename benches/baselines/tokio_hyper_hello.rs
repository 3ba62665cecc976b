//! The peer `benches/http.sh` measures ringloop's HTTP servers against: hyper HTTP/1.1 on
//! tokio's current-thread runtime, with the same answers as `http_hello` (`/` → 200
//! `Hello, World!` `text/plain`, other paths 404, request bodies read and discarded).
//!
//! ```text
//! cargo run --release --example tokio_hyper_hello -- [ADDR]   # default 127.0.0.1:8080
//! ```
//!
//! Prints `listening on <ip:port>` first. hyper's `pipeline_flush` is on (answers to
//! pipelined requests leave in one write, as `http_protocol`'s do), keep-alive on. It
//! runs until killed (SIGTERM's default action); the bench reads its CPU time from
//! `/proc` before stopping it.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    resp
}

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let found = req.uri().path() == "/";
    // An unread body would end the keep-alive (with pipeline_flush, without an answer).
    if Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .is_err()
    {
        return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"));
    }
    Ok(if found {
        text(StatusCode::OK, "Hello, World!")
    } else {
        text(StatusCode::NOT_FOUND, "not found\n")
    })
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    println!("listening on {}", listener.local_addr()?);
    let _ = std::io::stdout().flush();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true).pipeline_flush(true);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let conn = builder
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello));
                tokio::task::spawn_local(async move {
                    let _ = conn.await;
                });
            }
            // EMFILE and friends: keep serving the connections there are.
            Err(e) => eprintln!("tokio_hyper_hello: accept: {e}"),
        }
    }
}

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    let addr = arg.as_deref().unwrap_or("127.0.0.1:8080");
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tokio_hyper_hello: ADDR {addr:?}: {e}; usage: tokio_hyper_hello [ADDR]");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio_hyper_hello: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, serve(addr)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_hyper_hello: {e}");
            ExitCode::FAILURE
        }
    }
}
