//! Networking helpers: Unix socket paths, clients that send and verify patterned streams,
//! servers whose connections record their callbacks, and reads to end of stream.

use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{Recorder, Seen, Verifier, fill_pattern, wait_until};

/// A fresh path for a Unix socket in the temp dir (nothing exists there yet).
pub fn temp_sock_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "ringloop-{tag}-{}-{n}-{nanos}.sock",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// The raw OS error of an `io::Error`, for messages.
pub fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

/// One client connection on the async `TcpStream` API: sends `len` patterned bytes (in
/// `chunk`-sized writes, from a task of its own) while reading the echo back and checking
/// every byte; then half-closes and expects the server's end of stream.
pub async fn echo_client(
    addr: std::net::SocketAddr,
    seed: u64,
    len: usize,
    chunk: usize,
) -> Verifier {
    let stream = Rc::new(
        ringloop::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connection {seed}: {e}")),
    );
    let writer = {
        let stream = stream.clone();
        ringloop::spawn(async move {
            let mut buf = vec![0u8; chunk];
            let mut off = 0usize;
            while off < len {
                let n = chunk.min(len - off);
                buf.resize(n, 0);
                fill_pattern(seed, off as u64, &mut buf);
                let (res, back) = stream.write_all(buf).await;
                buf = back;
                res.unwrap_or_else(|e| panic!("connection {seed}: write: {e}"));
                off += n;
            }
            stream
                .shutdown(std::net::Shutdown::Write)
                .expect("shutdown(Write)");
        })
    };
    let mut verifier = Verifier::new(seed);
    let mut buf = Vec::with_capacity(chunk.max(1));
    loop {
        let (res, back) = stream.read(buf).await;
        buf = back;
        match res {
            Ok(0) => break,
            Ok(n) => verifier.feed(&buf[..n]),
            Err(e) => panic!(
                "connection {seed}: read after {} bytes: {e}",
                verifier.received
            ),
        }
    }
    writer.await.expect("the writer task");
    verifier
}

/// A `create_server` whose connections each get a [`Recorder`] set up by `setup`; the
/// returned list fills with each connection's [`Seen`] as it is accepted.
pub async fn recorder_server(
    setup: impl Fn(&mut Recorder) + 'static,
) -> (ringloop::net::Server, Rc<RefCell<Vec<Rc<Seen>>>>) {
    let list = Rc::new(RefCell::new(Vec::new()));
    let l2 = list.clone();
    let server = ringloop::get_running_loop()
        .expect("a running loop")
        .create_server(
            move || {
                let (mut r, seen) = Recorder::new();
                setup(&mut r);
                l2.borrow_mut().push(seen);
                r
            },
            "127.0.0.1:0",
        )
        .await
        .expect("create_server");
    (server, list)
}

/// Waits for the `n`th accepted connection's [`Seen`] (after its `connection_made`).
pub async fn accepted(list: &Rc<RefCell<Vec<Rc<Seen>>>>, n: usize) -> Rc<Seen> {
    wait_until(Duration::from_secs(10), "an accepted connection", || {
        list.borrow()
            .get(n)
            .is_some_and(|s| s.transport.borrow().is_some())
    })
    .await;
    list.borrow()[n].clone()
}

/// Reads until end of stream; the error (with what had arrived) if a read fails.
pub async fn read_to_end<S: AsyncRead>(s: &S) -> Result<Vec<u8>, (io::Error, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let (res, back) = s.read_buf(buf).await;
        buf = back;
        match res {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err((e, out)),
        }
    }
}

/// The async read both `TcpStream` and `UnixStream` have.
pub trait AsyncRead {
    fn read_buf(
        &self,
        buf: Vec<u8>,
    ) -> impl std::future::Future<Output = (io::Result<usize>, Vec<u8>)>;
}

impl AsyncRead for ringloop::net::TcpStream {
    fn read_buf(
        &self,
        buf: Vec<u8>,
    ) -> impl std::future::Future<Output = (io::Result<usize>, Vec<u8>)> {
        self.read(buf)
    }
}

impl AsyncRead for ringloop::net::UnixStream {
    fn read_buf(
        &self,
        buf: Vec<u8>,
    ) -> impl std::future::Future<Output = (io::Result<usize>, Vec<u8>)> {
        self.read(buf)
    }
}
