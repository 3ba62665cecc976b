//! What the HTTP examples share (`http_hello`, `axum_hello`, `http_client`; each includes
//! this file with `#[path = "common/http.rs"] mod http;` beside `mod common;`): the hello
//! responses, an accept loop, hyper's HTTP/1.1 server set-up on ringloop, the `http://`
//! URL parser and the verifying hyper client that drives load against a server.
//!
//! Not an example itself, and not part of `common/mod.rs` because it needs the `hyper`
//! feature the echo examples do not.

#![allow(dead_code)] // each example uses the part it needs

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use ringloop::compat::{CompatStream, LoopExecutor, LoopTimer};
use ringloop::net::{TcpListener, TcpStream};

/// The body of `GET /`.
pub const HELLO: &str = "Hello, World!";
/// The most request body a hello handler reads (and discards) before answering 413.
pub const MAX_BODY: usize = 1 << 20;
/// The most bytes a request head may take: a longer one is answered 431 and closed.
pub const MAX_HEAD: usize = 64 * 1024;
/// The default header-read timeout (slowloris clients are closed after it).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// `--header-timeout SECS` (fractions allowed), else [`HEADER_TIMEOUT`].
pub fn header_timeout(args: &[String]) -> Result<Duration, String> {
    match args.iter().position(|a| a == "--header-timeout") {
        Some(i) => {
            let secs: f64 = args
                .get(i + 1)
                .ok_or("--header-timeout needs seconds")?
                .parse()
                .map_err(|e| format!("--header-timeout: {e}"))?;
            if !(secs > 0.0 && secs < 1e6) {
                return Err(format!("--header-timeout: {secs} is out of range"));
            }
            Ok(Duration::from_secs_f64(secs))
        }
        None => Ok(HEADER_TIMEOUT),
    }
}

/// The server's address: the argument after `server` unless it is a flag, else `default`.
pub fn server_addr(args: &[String], default: &str) -> String {
    args.get(1)
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// A `text/plain` response.
pub fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    resp
}

/// The hello service: `/` answers 200 `Hello, World!` (any method; a request body is read
/// and discarded first, up to [`MAX_BODY`], so every request gets its answer), any other
/// path 404.
pub async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let found = req.uri().path() == "/";
    // Read the body whatever the path: an unread body would end the keep-alive.
    if Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .is_err()
    {
        return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"));
    }
    Ok(if found {
        text(StatusCode::OK, HELLO)
    } else {
        text(StatusCode::NOT_FOUND, "not found\n")
    })
}

/// hyper's HTTP/1.1 server options for the examples: keep-alive, the loop's timer, a
/// header-read timeout (slowloris), and heads capped at [`MAX_HEAD`] (hyper answers 431).
pub fn http1_builder(header_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.keep_alive(true)
        .timer(LoopTimer)
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD);
    b
}

/// Accepts connections on `listener` until the task is cancelled, spawning `handle` for
/// each on the loop. Accept errors (EMFILE and friends) are reported and retried after a
/// short pause, so the server keeps serving the connections it has.
pub async fn accept_loop<F, Fut>(listener: TcpListener, handle: F)
where
    F: Fn(CompatStream<TcpStream>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                drop(ringloop::spawn(handle(stream.compat())));
            }
            Err(e) => {
                eprintln!("accept: {e}");
                ringloop::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves the hello service over HTTP/1.1 on every connection `listener` accepts.
pub async fn serve_hello(listener: TcpListener, header_timeout: Duration) {
    let builder = Rc::new(http1_builder(header_timeout));
    accept_loop(listener, move |io| {
        let builder = builder.clone();
        async move {
            // A connection's error (a reset, a malformed request hyper answered 400, a
            // header timeout) ends that connection only.
            let _ = builder
                .serve_connection(io, hyper::service::service_fn(hello))
                .await;
        }
    })
    .await
}

/// Binds `addr`, runs `serve` on the listener, prints `listening on <ip:port>`, and waits
/// for SIGINT/SIGTERM; then stops serving and returns (the process exits 0).
pub fn run_server<F, Fut>(args: &[String], default_addr: &str, serve: F) -> Result<(), String>
where
    F: FnOnce(TcpListener) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let addr = server_addr(args, default_addr);
    let event_loop = crate::common::loop_builder(args)?
        .build()
        .map_err(|e| e.to_string())?;
    let l = event_loop.clone();
    let result = event_loop.run_until_complete(async move {
        let listener = TcpListener::bind(addr.as_str()).map_err(|e| format!("bind {addr}: {e}"))?;
        crate::common::announce(listener.local_addr().ok());
        let server = ringloop::spawn(serve(listener));
        crate::common::until_stop_signal(&l).await?;
        server.cancel();
        crate::common::report_driver(&l);
        Ok::<(), String>(())
    });
    event_loop.close().map_err(|e| e.to_string())?;
    result.map_err(|e| e.to_string())?
}

/// An `http://host:port/path` URL (the only form the client takes).
#[derive(Debug, Clone)]
pub struct Url {
    pub authority: String,
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url:?}: no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Url {
            authority,
            path: path.to_string(),
        })
    }
}

/// What the client sends and expects.
#[derive(Debug, Clone)]
pub struct Load {
    pub url: Url,
    pub requests: usize,
    pub conns: usize,
    pub status: u16,
    pub body: String,
}

#[derive(Default)]
struct Tally {
    ok: Cell<u64>,
    wrong: Cell<u64>,
    errors: Cell<u64>,
    next: Cell<usize>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

async fn client_connection(load: Rc<Load>, tally: Rc<Tally>) {
    let stream = match TcpStream::connect(load.url.authority.as_str()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connect {}: {e}", load.url.authority);
            bump(&tally.errors);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut send, conn) = match hyper::client::conn::http1::handshake(stream.compat()).await {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("handshake: {e}");
            bump(&tally.errors);
            return;
        }
    };
    let driver = ringloop::spawn(conn);
    // Requests are shared out as the connections free up.
    while tally.next.get() < load.requests {
        tally.next.set(tally.next.get() + 1);
        let req = Request::get(load.url.path.as_str())
            .header(hyper::header::HOST, load.url.authority.as_str())
            .body(Empty::<Bytes>::new())
            .expect("a GET request");
        let resp = match send.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("request: {e}");
                bump(&tally.errors);
                break;
            }
        };
        let status = resp.status().as_u16();
        match resp.into_body().collect().await {
            Ok(body) => {
                if status == load.status && body.to_bytes() == load.body.as_bytes() {
                    bump(&tally.ok)
                } else {
                    bump(&tally.wrong)
                }
            }
            Err(e) => {
                eprintln!("body: {e}");
                bump(&tally.errors);
                break;
            }
        }
    }
    drop(send);
    let _ = driver.await;
}

/// Runs `load` on the current loop: `conns` keep-alive connections share `requests` GETs;
/// each response's status and body are checked. Prints a summary line; true when every
/// request got the expected answer.
pub async fn run_load(load: Load) -> bool {
    let load = Rc::new(load);
    let tally = Rc::new(Tally::default());
    let started = Instant::now();
    let conns: Vec<_> = (0..load.conns.max(1))
        .map(|_| ringloop::spawn(client_connection(load.clone(), tally.clone())))
        .collect();
    for c in conns {
        if c.await.is_err() {
            bump(&tally.errors);
        }
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let ok = tally.ok.get();
    println!(
        "requests={ok} elapsed={secs:.3}s requests/s={:.0} wrong={} errors={}",
        ok as f64 / secs,
        tally.wrong.get(),
        tally.errors.get()
    );
    ok == load.requests as u64 && tally.wrong.get() == 0 && tally.errors.get() == 0
}

/// The executor hyper's HTTP/2 and auto builders need, on this thread's loop.
pub fn executor() -> LoopExecutor {
    LoopExecutor::current().expect("a loop on this thread")
}

/// Sends `raw` on a new connection to `addr` and reads until the server closes (at most
/// `limit`); the bytes received. For the self-checks' bad-input cases.
pub async fn raw_exchange(
    addr: SocketAddr,
    raw: Vec<u8>,
    limit: Duration,
) -> Result<Vec<u8>, String> {
    ringloop::timeout(limit, async move {
        let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (res, _) = s.write_all(raw).await;
        res.map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        let mut buf = Vec::with_capacity(16 * 1024);
        loop {
            let (res, b) = s.read(buf).await;
            buf = b;
            match res {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // A reset after the answer (the server closed with unread input) ends it too.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
                Err(e) => return Err(e.to_string()),
            }
            buf.clear();
        }
    })
    .await
    .map_err(|_| "the server did not close the connection in time".to_string())?
}

/// The status code of the first response in `raw`, if it starts with one.
pub fn status_of(raw: &[u8]) -> Option<u16> {
    let line = raw.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The self-check's bad-input cases against a server at `addr`: a malformed request line
/// gets 400 and a close, a head over [`MAX_HEAD`] gets 431 (or 400) and a close, a missing
/// path 404. Prints one line per case; true when all held.
pub async fn check_bad_input(addr: SocketAddr) -> bool {
    let mut big = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    big.resize(big.len() + MAX_HEAD + 1024, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("malformed request line", b"BLAH\r\n\r\n".to_vec(), &[400]),
        ("head over 64 KiB", big, &[431, 400]),
        (
            "unknown path",
            b"GET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(),
            &[404],
        ),
    ];
    let mut all = true;
    for (what, raw, want) in cases {
        match raw_exchange(addr, raw, Duration::from_secs(10)).await {
            Ok(got) => {
                let status = status_of(&got);
                let ok = status.is_some_and(|s| want.contains(&s));
                println!(
                    "bad input: {what}: {status:?} then close: {}",
                    if ok { "ok" } else { "WRONG" }
                );
                all &= ok;
            }
            Err(e) => {
                println!("bad input: {what}: {e}");
                all = false;
            }
        }
    }
    all
}
