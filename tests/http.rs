//! HTTP on ringloop over real loopback sockets (feature `hyper`; both engines through
//! `RINGLOOP_ENGINE`): hyper HTTP/1.1 keep-alive with bodies checked, h2c with 100
//! concurrent streams, request bodies dropped mid-way, bad input (400, 431, the
//! header-read timeout), and CPython's `http.client` — a peer nobody here wrote — against
//! the `http_hello` and `http_protocol` example servers, pipelined requests included.
//!
//! The example servers run as child processes; build them first:
//! `cargo build --release --features hyper --example http_hello --example http_protocol`
//! (`.ci/run` does).

mod util;

// The examples' shared server and client code, so the tests exercise what they ship.
#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/common/http.rs"]
mod http;

use std::convert::Infallible;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use ringloop::compat::{LoopExecutor, LoopTimer};
use ringloop::net::{TcpListener, TcpStream};

fn bounded<F: std::future::Future + 'static>(fut: F) -> F::Output {
    ringloop::run(async move {
        ringloop::timeout(Duration::from_secs(30), fut)
            .await
            .expect("test timed out")
    })
    .unwrap()
}

/// A hello server on a free port, as a task of the current loop.
fn start_hello(header_timeout: Duration) -> (std::net::SocketAddr, ringloop::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (
        addr,
        ringloop::spawn(http::serve_hello(listener, header_timeout)),
    )
}

#[test]
fn a_thousand_keep_alive_requests_over_eight_connections() {
    let _serial = util::serial();
    let before = util::settled_open_fds();
    let ok = bounded(async {
        let (addr, server) = start_hello(Duration::from_secs(5));
        let ok = http::run_load(http::Load {
            url: http::Url::parse(&format!("http://{addr}/")).unwrap(),
            requests: 1000,
            conns: 8,
            status: 200,
            body: http::HELLO.to_string(),
        })
        .await;
        server.cancel();
        ok
    });
    assert!(ok, "some request got a wrong answer (see stdout)");
    util::assert_fds_back_to(before, Duration::from_secs(2), "after 1,000 requests");
}

/// Echoes the request body (the h2c and dropped-body tests).
async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    Ok(Response::new(Full::new(body)))
}

async fn serve_h2(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        drop(ringloop::spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(LoopExecutor::current().unwrap())
                .timer(LoopTimer)
                .max_concurrent_streams(200)
                .serve_connection(stream.compat(), hyper::service::service_fn(echo))
                .await;
        }));
    }
}

#[test]
fn h2c_a_hundred_concurrent_streams_on_one_connection() {
    let _serial = util::serial();
    let before = util::settled_open_fds();
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ringloop::spawn(serve_h2(listener));
        let stream = TcpStream::connect(addr).await.unwrap();
        let (send, conn) =
            hyper::client::conn::http2::Builder::new(LoopExecutor::current().unwrap())
                .timer(LoopTimer)
                .handshake::<_, Full<Bytes>>(stream.compat())
                .await
                .unwrap();
        let driver = ringloop::spawn(conn);
        let started = Instant::now();
        let streams: Vec<_> = (0..100u64)
            .map(|i| {
                let mut send = send.clone();
                ringloop::spawn(async move {
                    let body = util::pattern(i, 1000 + i as usize * 37);
                    let req = Request::post("/")
                        .header(hyper::header::HOST, "x")
                        .body(Full::new(Bytes::from(body.clone())))
                        .unwrap();
                    let resp = send.send_request(req).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let got = resp.into_body().collect().await.unwrap().to_bytes();
                    assert!(got == body, "stream {i}: the echoed body differs");
                })
            })
            .collect();
        for s in streams {
            s.await.unwrap();
        }
        eprintln!("h2c: 100 streams in {:?}", started.elapsed());
        drop(send);
        let _ = driver.await;
        server.cancel();
    });
    util::assert_fds_back_to(before, Duration::from_secs(2), "after h2c");
}

#[test]
fn request_bodies_dropped_mid_way_leave_the_server_serving() {
    let _serial = util::serial();
    let before = util::settled_open_fds();
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let builder = Rc::new(http::http1_builder(Duration::from_secs(5)));
        let server = ringloop::spawn(http::accept_loop(listener, move |io| {
            let builder = builder.clone();
            async move {
                let _ = builder
                    .serve_connection(io, hyper::service::service_fn(echo))
                    .await;
            }
        }));
        // Ten clients each start a POST with a streamed body, send half, and go away.
        for i in 0..10u64 {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(stream.compat())
                .await
                .unwrap();
            let driver = ringloop::spawn(conn);
            let (tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
            let req = Request::post("/")
                .header(hyper::header::HOST, "x")
                .header(hyper::header::CONTENT_LENGTH, "100000")
                .body(StreamBody::new(rx))
                .unwrap();
            let pending = ringloop::spawn(async move { send.send_request(req).await.map(|_| ()) });
            let mut tx = tx;
            futures::SinkExt::send(
                &mut tx,
                Ok(Frame::data(Bytes::from(util::pattern(i, 50_000)))),
            )
            .await
            .unwrap();
            ringloop::sleep(Duration::from_millis(5)).await;
            // The request future and its connection are dropped with half the body sent.
            pending.cancel();
            driver.cancel();
            drop(tx);
        }
        // The server still answers a whole request.
        let ok = http::run_load(http::Load {
            url: http::Url::parse(&format!("http://{addr}/")).unwrap(),
            requests: 20,
            conns: 2,
            status: 200,
            body: String::new(),
        })
        .await;
        assert!(ok, "the server stopped answering after dropped bodies");
        server.cancel();
    });
    util::assert_fds_back_to(
        before,
        Duration::from_secs(3),
        "after dropped request bodies",
    );
}

#[test]
fn bad_input_gets_400_or_431_and_a_slowloris_is_closed_by_the_header_timeout() {
    let _serial = util::serial();
    let before = util::settled_open_fds();
    bounded(async {
        let timeout = Duration::from_secs(1);
        let (addr, server) = start_hello(timeout);
        assert!(http::check_bad_input(addr).await, "see stdout");
        // Half a head, then nothing.
        let started = Instant::now();
        let s = TcpStream::connect(addr).await.unwrap();
        let (res, _) = s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n".to_vec()).await;
        res.unwrap();
        let (res, buf) = s.read(Vec::with_capacity(1024)).await;
        let waited = started.elapsed();
        match res {
            // hyper may answer 408 before closing; then the close follows.
            Ok(n) if n > 0 => {
                assert_eq!(http::status_of(&buf[..n]), Some(408), "{buf:?}");
                let (res, _) = s.read(Vec::with_capacity(1024)).await;
                assert!(matches!(res, Ok(0)) || res.is_err());
            }
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        assert!(
            waited >= timeout.mul_f64(0.9) && waited < timeout * 3,
            "closed after {waited:?} (header timeout {timeout:?})"
        );
        server.cancel();
    });
    util::assert_fds_back_to(before, Duration::from_secs(2), "after bad input");
}

/// CPython's `http.client` against a server at `addr`: keep-alive GETs on one connection,
/// a 404, and `depth` pipelined requests in one send on a raw socket, answered in order.
const PY_CLIENT: &str = r#"
import http.client, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection(host, port, timeout=10)
for i in range(200):
    c.request("GET", "/")
    r = c.getresponse()
    body = r.read()
    assert r.status == 200 and body == b"Hello, World!", (i, r.status, body)
    assert r.getheader("content-type", "").startswith("text/plain"), r.getheaders()
c.request("GET", "/missing")
r = c.getresponse(); r.read()
assert r.status == 404, r.status
c.close()
depth = 32
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * depth)
got = b""
while got.count(b"Hello, World!") < depth:
    chunk = s.recv(65536)
    assert chunk, "closed after %d answers" % got.count(b"Hello, World!")
    got += chunk
assert got.count(b"HTTP/1.1 200") == depth, got[:200]
s.close()
print("ok")
"#;

fn python_against(example: &str) {
    let _serial = util::serial();
    let bin = util::example_binary(example).unwrap_or_else(|| {
        panic!(
            "examples/{example} is not built: cargo build --release --features hyper \
             --example http_hello --example http_protocol"
        )
    });
    let engine = std::env::var("RINGLOOP_ENGINE").unwrap_or_else(|_| "auto".into());
    let (mut child, addr) =
        util::start_listening_child(&bin, &["server", "127.0.0.1:0", "--engine", &engine]);
    let out = Command::new("python3")
        .args([
            "-c",
            PY_CLIENT,
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ])
        .output()
        .expect("python3 runs");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = util::wait_exit(&mut child, Duration::from_secs(5));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "{}",
        util::describe(&out)
    );
    assert!(
        status.success(),
        "{example} server exited with {status:?} on SIGTERM"
    );
}

#[test]
fn cpython_http_client_against_http_hello() {
    python_against("http_hello");
}

#[test]
fn cpython_http_client_against_http_protocol() {
    python_against("http_protocol");
}
