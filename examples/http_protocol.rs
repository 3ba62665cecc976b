//! The uvloop-style HTTP benchmark server: an asyncio-style [`Protocol`] that parses with
//! `httparse` (no hyper on the server side) and answers **pipelined** requests in order,
//! all the answers to one received batch in one write.
//!
//! ```text
//! cargo run --release --features hyper --example http_protocol                  # server + checks
//! cargo run --release --features hyper --example http_protocol -- server [ADDR] # 127.0.0.1:8080
//! (either) --engine uring|epoll|auto   --header-timeout SECS (default 10)
//! ```
//!
//! The same answers as `http_hello`: `/` is 200 `Hello, World!` (`text/plain`), any other
//! path 404; a `Content-Length` body is read and discarded; a malformed request gets 400
//! and a head over 64 KiB 431, then the connection closes (after the answers to the
//! requests before it); a chunked body gets 501 and a close; HTTP/1.0 without keep-alive
//! and `Connection: close` close after their answer. A connection holding an unfinished
//! request for longer than the header timeout is closed (slowloris).
//!
//! `server` prints `listening on <ip:port>` first and exits 0 on SIGINT or SIGTERM.
//! Without a command it checks itself on a free port: 200 pipelined batches of 16
//! requests on raw connections (every answer checked, in order), then the hyper client of
//! `http_client`, then the bad-input cases.

mod common;
#[path = "common/http.rs"]
mod http;

use std::process::ExitCode;
use std::time::Duration;

use ringloop::net::TcpStream;
use ringloop::{Protocol, StreamTransport, TimerHandle, get_running_loop};

const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, World!";
const NOT_FOUND: &[u8] =
    b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 10\r\n\r\nnot found\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const NOT_IMPLEMENTED: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
/// Headers one request may carry.
const MAX_HEADERS: usize = 64;

/// What parsing the front of the input found.
enum Parsed {
    /// A whole request: its head and body take `len` bytes; answer with `answer`.
    Request {
        len: usize,
        answer: &'static [u8],
        close: bool,
    },
    /// The request is not all here yet.
    Partial,
    /// Answer with this and close.
    Fatal(&'static [u8]),
}

fn parse(input: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() > http::MAX_HEAD => {
            return Parsed::Fatal(TOO_LARGE);
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Fatal(TOO_LARGE),
        Err(_) => return Parsed::Fatal(BAD_REQUEST),
    };
    if head > http::MAX_HEAD {
        return Parsed::Fatal(TOO_LARGE);
    }
    let mut body = 0usize;
    let mut close = req.version == Some(0);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => body = n,
                None => return Parsed::Fatal(BAD_REQUEST),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Fatal(NOT_IMPLEMENTED);
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = h.value;
            if v.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if v.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    if body > http::MAX_BODY {
        return Parsed::Fatal(BAD_REQUEST);
    }
    if input.len() < head + body {
        return Parsed::Partial;
    }
    let answer = if req.path == Some("/") { OK } else { NOT_FOUND };
    Parsed::Request {
        len: head + body,
        answer,
        close,
    }
}

/// One connection: unparsed input, and the timer that closes it when a request stays
/// unfinished for too long.
struct HttpProtocol {
    transport: Option<StreamTransport>,
    input: Vec<u8>,
    out: Vec<u8>,
    header_timeout: Duration,
    timer: Option<TimerHandle>,
}

impl HttpProtocol {
    fn new(header_timeout: Duration) -> Self {
        HttpProtocol {
            transport: None,
            input: Vec::new(),
            out: Vec::with_capacity(4096),
            header_timeout,
            timer: None,
        }
    }

    /// Answers every whole request at the front of `data` (after what was held back).
    /// Returns (the connection must close after the answers, a request was answered).
    fn answer(&mut self, data: &[u8]) -> (bool, bool) {
        // Most batches end on a request boundary: parse `data` in place, keep only a tail.
        let held = !self.input.is_empty();
        if held {
            self.input.extend_from_slice(data);
        }
        let input: &[u8] = if held { &self.input } else { data };
        let mut at = 0;
        let mut close = false;
        while at < input.len() {
            match parse(&input[at..]) {
                Parsed::Request {
                    len,
                    answer,
                    close: c,
                } => {
                    self.out.extend_from_slice(answer);
                    at += len;
                    if c {
                        close = true;
                        break;
                    }
                }
                Parsed::Partial => break,
                Parsed::Fatal(answer) => {
                    self.out.extend_from_slice(answer);
                    close = true;
                    break;
                }
            }
        }
        let rest = if close { 0 } else { input.len() - at };
        let answered = at > 0 || close;
        if held {
            self.input.drain(..self.input.len() - rest);
        } else {
            self.input.extend_from_slice(&data[data.len() - rest..]);
        }
        (close, answered)
    }

    /// After a batch: a request answered stops the clock; a request unfinished starts it
    /// (if it is not running), and the connection closes unless that request completes
    /// within the header timeout (trickling bytes do not restart it).
    fn rearm_timer(&mut self, answered: bool) {
        if (answered || self.input.is_empty())
            && let Some(h) = self.timer.take()
        {
            h.cancel();
        }
        if let (None, false, Some(t)) = (&self.timer, self.input.is_empty(), &self.transport) {
            let t = t.clone();
            let l = t.get_loop();
            self.timer = Some(l.call_later(self.header_timeout, move || t.close()));
        }
    }
}

impl Protocol for HttpProtocol {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        let (close, answered) = self.answer(data);
        let Some(t) = self.transport.clone() else {
            return;
        };
        if !self.out.is_empty() {
            // One write for the whole batch; it fails only once the transport is closing.
            let _ = t.write(&self.out);
            self.out.clear();
        }
        if close {
            self.input.clear();
            self.rearm_timer(true);
            t.close();
            return;
        }
        self.rearm_timer(answered);
    }

    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        if let Some(h) = self.timer.take() {
            h.cancel();
        }
        self.transport = None;
    }
}

/// Sends `batches` writes of `depth` pipelined requests (every 7th for a missing path)
/// on one connection and checks every answer, in order.
async fn pipelined(addr: std::net::SocketAddr, batches: usize, depth: usize) -> Result<(), String> {
    let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut expected = Vec::new();
    let mut batch = Vec::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    for b in 0..batches {
        batch.clear();
        expected.clear();
        for i in 0..depth {
            if (b * depth + i) % 7 == 6 {
                batch.extend_from_slice(b"GET /missing HTTP/1.1\r\nhost: x\r\n\r\n");
                expected.extend_from_slice(NOT_FOUND);
            } else {
                batch.extend_from_slice(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
                expected.extend_from_slice(OK);
            }
        }
        let (res, back) = s.write_all(std::mem::take(&mut batch)).await;
        batch = back;
        res.map_err(|e| e.to_string())?;
        let mut got = 0;
        while got < expected.len() {
            buf.clear();
            let (res, back) = s.read(buf).await;
            buf = back;
            let n = res.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("closed after {got} bytes of batch {b}"));
            }
            if got + n > expected.len() || buf[..n] != expected[got..got + n] {
                return Err(format!("batch {b}: wrong answer at byte {got}"));
            }
            got += n;
        }
    }
    Ok(())
}

fn self_check(args: &[String]) -> Result<bool, String> {
    let header_timeout = http::header_timeout(args)?;
    common::loop_builder(args)?
        .run(async move {
            let l = get_running_loop().map_err(|e| e.to_string())?;
            let server = l
                .create_server(move || HttpProtocol::new(header_timeout), "127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let addr = server.sockets()[0];
            println!("listening on {addr}");
            let mut ok = true;
            let conns: Vec<_> = (0..4)
                .map(|_| ringloop::spawn(pipelined(addr, 200, 16)))
                .collect();
            for c in conns {
                match c.await.map_err(|e| e.to_string())? {
                    Ok(()) => {}
                    Err(e) => {
                        println!("pipelined: {e}");
                        ok = false;
                    }
                }
            }
            println!(
                "pipelined: 4 connections x 200 batches x 16 requests: {}",
                if ok { "ok" } else { "WRONG" }
            );
            ok &= http::run_load(http::Load {
                url: http::Url::parse(&format!("http://{addr}/"))?,
                requests: 2000,
                conns: 8,
                status: 200,
                body: http::HELLO.to_string(),
            })
            .await;
            ok &= http::check_bad_input(addr).await;
            server.close();
            Ok(ok)
        })
        .map_err(|e| e.to_string())?
}

fn serve(args: &[String]) -> Result<(), String> {
    let header_timeout = http::header_timeout(args)?;
    let addr = http::server_addr(args, "127.0.0.1:8080");
    let event_loop = common::loop_builder(args)?
        .build()
        .map_err(|e| e.to_string())?;
    let l = event_loop.clone();
    let result = event_loop.run_until_complete(async move {
        let server = l
            .create_server(move || HttpProtocol::new(header_timeout), addr.as_str())
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        common::announce(server.sockets().first().copied());
        common::until_stop_signal(&l).await?;
        server.close();
        common::report_driver(&l);
        Ok::<(), String>(())
    });
    event_loop.close().map_err(|e| e.to_string())?;
    result.map_err(|e| e.to_string())?
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args
        .first()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"));
    let outcome = match command {
        Some("server") => serve(&args).map(|()| true),
        None => self_check(&args),
        Some(other) => Err(format!(
            "unknown command {other:?}; usage: http_protocol [server [ADDR]] [--engine uring|epoll|auto] [--header-timeout SECS]"
        )),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("http_protocol: {e}");
            ExitCode::from(2)
        }
    }
}
