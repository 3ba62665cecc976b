//! Helpers shared by the networking tests (`tests/net_*.rs`): patterned payloads and their
//! verification, fd counting, unique Unix socket paths, a protocol that records every
//! callback, an echo protocol with backpressure, and a bounded way to run a test's future.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ringloop::{BufferedProtocol, EventLoop, LoopBuilder, Protocol, StreamTransport};

// ----- patterned data -----

/// Byte `off` of stream `seed`: a hash of both, so a lost, repeated, reordered or crossed
/// chunk shows up as mismatches.
#[inline]
pub fn pattern_byte(seed: u64, off: u64) -> u8 {
    ((off ^ (seed << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// Fills `buf` with stream `seed`'s bytes starting at offset `off`.
pub fn fill_pattern(seed: u64, off: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, off + i as u64);
    }
}

/// `len` bytes of stream `seed` from offset 0.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_pattern(seed, 0, &mut v);
    v
}

/// Checks a received stream against its pattern, chunk by chunk.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    pub seed: u64,
    pub received: u64,
    pub mismatches: u64,
    /// Offset of the first wrong byte.
    pub first_bad: Option<u64>,
}

impl Verifier {
    pub fn new(seed: u64) -> Self {
        Verifier {
            seed,
            ..Default::default()
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let off = self.received + i as u64;
            if b != pattern_byte(self.seed, off) {
                self.mismatches += 1;
                self.first_bad.get_or_insert(off);
            }
        }
        self.received += data.len() as u64;
    }

    /// Asserts that exactly `len` bytes arrived, all right.
    pub fn assert_complete(&self, len: u64, what: &str) {
        assert_eq!(
            (self.received, self.mismatches, self.first_bad),
            (len, 0, None),
            "{what}: received/mismatches/first bad offset"
        );
    }
}

// ----- process and file system -----

/// Open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// [`fd_count`] once it holds still: the same over three reads 5 ms apart (at most 1 s).
/// A thread of the test before may still be winding down (or another thread may be
/// reading `/proc/self/fd` too) when a test takes its baseline.
pub fn settled_fd_count() -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut last = fd_count();
    let mut same = 0;
    while same < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        let now = fd_count();
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

/// Fails unless the fd count comes back to `before` (or below: an earlier test's thread
/// closed one meanwhile) within a second.
pub fn assert_fds_back_to(before: usize, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while fd_count() > before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = fd_count();
    assert!(after <= before, "{what}: {after} fds open, {before} before");
}

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

// ----- running -----

/// Runs `fut` on a new loop built by `builder`, failing the test after `limit`; then
/// closes the loop and checks the driver saw no stale CQE and no CQ overflow.
pub fn run_on<F, T>(builder: LoopBuilder, limit: Duration, fut: F) -> T
where
    F: std::future::Future<Output = T> + 'static,
    T: 'static,
{
    let event_loop = builder.build().expect("an io_uring event loop");
    ringloop::set_event_loop(Some(event_loop.clone()));
    let out = event_loop
        .run_until_complete(ringloop::timeout(limit, fut))
        .expect("run_until_complete");
    let stats = event_loop.driver_stats();
    event_loop.close().expect("close the loop");
    ringloop::set_event_loop(None);
    let out = match out {
        Ok(v) => v,
        Err(e) => panic!("the test did not finish within {limit:?}: {e}"),
    };
    assert_eq!(stats.stale_cqes, 0, "stale CQEs: {stats:?}");
    assert_eq!(stats.cq_overflow, 0, "CQ overflow: {stats:?}");
    out
}

/// [`run_on`] with a default loop and a 20 s limit.
pub fn run<F, T>(fut: F) -> T
where
    F: std::future::Future<Output = T> + 'static,
    T: 'static,
{
    run_on(EventLoop::builder(), Duration::from_secs(20), fut)
}

/// Waits (yielding to the loop) until `cond` holds; panics with `what` after `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        ringloop::sleep(Duration::from_millis(2)).await;
    }
}

// ----- protocols -----

/// One protocol callback, as recorded by [`Recorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(usize),
    Eof,
    /// `connection_lost`, with the error's raw OS code (or -1 for an error without one).
    Lost(Option<i32>),
    PauseWriting,
    ResumeWriting,
}

/// What a [`Recorder`] saw, shared with the test.
#[derive(Default)]
pub struct Seen {
    pub events: RefCell<Vec<Ev>>,
    pub bytes: RefCell<Vec<u8>>,
    pub transport: RefCell<Option<StreamTransport>>,
    /// Write-buffer size when `pause_writing`/`resume_writing`/`connection_lost` ran.
    pub size_at_pause: Cell<Option<usize>>,
    pub size_at_resume: Cell<Option<usize>>,
    pub size_at_lost: Cell<Option<usize>>,
}

impl Seen {
    pub fn events(&self) -> Vec<Ev> {
        self.events.borrow().clone()
    }

    pub fn transport(&self) -> StreamTransport {
        self.transport
            .borrow()
            .clone()
            .expect("connection_made ran")
    }

    pub fn count(&self, f: impl Fn(&Ev) -> bool) -> usize {
        self.events.borrow().iter().filter(|e| f(e)).count()
    }

    pub fn lost(&self) -> bool {
        self.count(|e| matches!(e, Ev::Lost(_))) > 0
    }

    /// Asserts asyncio's callback order: made, data*, eof?, lost exactly once and last.
    pub fn assert_order(&self) {
        let ev = self.events();
        let core: Vec<&Ev> = ev
            .iter()
            .filter(|e| !matches!(e, Ev::PauseWriting | Ev::ResumeWriting))
            .collect();
        assert_eq!(core.first(), Some(&&Ev::Made), "made first: {ev:?}");
        assert!(
            matches!(core.last(), Some(Ev::Lost(_))),
            "lost last: {ev:?}"
        );
        assert_eq!(self.count(|e| matches!(e, Ev::Lost(_))), 1, "{ev:?}");
        assert_eq!(self.count(|e| *e == Ev::Made), 1, "{ev:?}");
        assert!(self.count(|e| *e == Ev::Eof) <= 1, "{ev:?}");
        if let Some(eof) = core.iter().position(|e| **e == Ev::Eof) {
            assert!(
                core[eof..].iter().all(|e| !matches!(e, Ev::Data(_))),
                "no data after eof: {ev:?}"
            );
        }
    }
}

type Hook = Box<dyn FnMut(&StreamTransport, &[u8])>;
type TransportHook = Box<dyn FnMut(&StreamTransport)>;

/// A protocol that records every callback into a shared [`Seen`].
pub struct Recorder {
    pub seen: Rc<Seen>,
    /// What `eof_received` returns.
    pub keep_open_on_eof: bool,
    /// Called after each `data_received` is recorded.
    pub on_data: Option<Hook>,
    /// Called at `connection_made`.
    pub on_made: Option<TransportHook>,
    /// Called at `eof_received` (before it returns).
    pub on_eof: Option<TransportHook>,
}

impl Recorder {
    pub fn new() -> (Recorder, Rc<Seen>) {
        let seen = Rc::new(Seen::default());
        (
            Recorder {
                seen: seen.clone(),
                keep_open_on_eof: false,
                on_data: None,
                on_made: None,
                on_eof: None,
            },
            seen,
        )
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.seen.events.borrow_mut().push(Ev::Made);
        *self.seen.transport.borrow_mut() = Some(transport.clone());
        if let Some(f) = &mut self.on_made {
            f(transport);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.seen.events.borrow_mut().push(Ev::Data(data.len()));
        self.seen.bytes.borrow_mut().extend_from_slice(data);
        if let Some(f) = &mut self.on_data {
            let t = self.seen.transport();
            f(&t, data);
        }
    }

    fn eof_received(&mut self) -> bool {
        self.seen.events.borrow_mut().push(Ev::Eof);
        if let Some(f) = &mut self.on_eof {
            let t = self.seen.transport();
            f(&t);
        }
        self.keep_open_on_eof
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let code = exc.map(|e| e.raw_os_error().unwrap_or(-1));
        self.seen.events.borrow_mut().push(Ev::Lost(code));
        if let Some(t) = self.seen.transport.borrow().as_ref() {
            self.seen.size_at_lost.set(Some(t.get_write_buffer_size()));
        }
    }

    fn pause_writing(&mut self) {
        self.seen.events.borrow_mut().push(Ev::PauseWriting);
        if let Some(t) = self.seen.transport.borrow().as_ref() {
            self.seen.size_at_pause.set(Some(t.get_write_buffer_size()));
        }
    }

    fn resume_writing(&mut self) {
        self.seen.events.borrow_mut().push(Ev::ResumeWriting);
        if let Some(t) = self.seen.transport.borrow().as_ref() {
            self.seen
                .size_at_resume
                .set(Some(t.get_write_buffer_size()));
        }
    }
}

/// Counters an [`Echo`] server shares with its test (plain atomics: servers may run on
/// their own thread).
#[derive(Default)]
pub struct EchoStats {
    pub made: AtomicUsize,
    pub lost_clean: AtomicUsize,
    pub lost_error: AtomicUsize,
    pub bytes: AtomicUsize,
    pub paused: AtomicUsize,
}

/// Echoes every byte; mirrors write backpressure onto reading; closes (after flushing) at
/// end of stream.
pub struct Echo {
    pub transport: Option<StreamTransport>,
    pub stats: std::sync::Arc<EchoStats>,
}

impl Echo {
    pub fn new(stats: &std::sync::Arc<EchoStats>) -> Echo {
        Echo {
            transport: None,
            stats: stats.clone(),
        }
    }
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.stats.made.fetch_add(1, Ordering::Relaxed);
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.stats.bytes.fetch_add(data.len(), Ordering::Relaxed);
        if let Some(t) = &self.transport {
            t.write(data).expect("echo write");
        }
    }

    fn pause_writing(&mut self) {
        self.stats.paused.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        match exc {
            None => self.stats.lost_clean.fetch_add(1, Ordering::Relaxed),
            Some(_) => self.stats.lost_error.fetch_add(1, Ordering::Relaxed),
        };
        self.transport = None;
    }
}

/// A [`BufferedProtocol`] that verifies a patterned stream through a small buffer of its
/// own (several `get_buffer` calls per receive), optionally echoing it.
pub struct BufferedCheck {
    pub buf: Vec<u8>,
    pub verifier: Rc<RefCell<Verifier>>,
    pub transport: Option<StreamTransport>,
    pub echo: bool,
    pub eof: Rc<Cell<bool>>,
    pub lost: Rc<Cell<usize>>,
}

impl BufferedProtocol for BufferedCheck {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.transport = Some(transport.clone());
    }

    fn get_buffer(&mut self, _size_hint: usize) -> &mut [u8] {
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        self.verifier.borrow_mut().feed(&self.buf[..nbytes]);
        if self.echo
            && let Some(t) = &self.transport
        {
            t.write(&self.buf[..nbytes]).expect("echo write");
        }
    }

    fn eof_received(&mut self) -> bool {
        self.eof.set(true);
        false
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        assert!(exc.is_none(), "buffered connection lost: {exc:?}");
        self.lost.set(self.lost.get() + 1);
        self.transport = None;
    }
}

// ----- an echo server on a thread of its own -----

/// What an [`EchoServerThread`] reports when stopped.
#[derive(Debug)]
pub struct ServerReport {
    /// Connections still open when the stop was requested.
    pub active_at_stop: usize,
    /// Provided receive buffers still handed out after the server closed.
    pub recv_buffers_in_use: usize,
    pub stats: ringloop::DriverStats,
    pub engine: ringloop::Engine,
}

/// An [`Echo`] server (`create_server`) running on its own thread and loop.
pub struct EchoServerThread {
    pub addr: std::net::SocketAddr,
    pub stats: std::sync::Arc<EchoStats>,
    remote: ringloop::RemoteHandle,
    join: Option<std::thread::JoinHandle<ServerReport>>,
}

impl EchoServerThread {
    pub fn start(builder: LoopBuilder, addr: &str) -> EchoServerThread {
        let stats = std::sync::Arc::new(EchoStats::default());
        let theirs = stats.clone();
        let addr = addr.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let join = std::thread::Builder::new()
            .name("echo-server".into())
            .spawn(move || {
                let l = builder.build().expect("server loop");
                let l2 = l.clone();
                let server = l
                    .run_until_complete(async move {
                        l2.create_server(move || Echo::new(&theirs), &addr).await
                    })
                    .expect("run")
                    .expect("create_server");
                tx.send((server.sockets()[0], l.remote()))
                    .expect("send addr");
                l.run_forever().expect("run_forever");
                let active_at_stop = server.active_connections();
                server.close();
                let s = server.clone();
                l.run_until_complete(async move {
                    ringloop::timeout(Duration::from_secs(10), s.wait_closed()).await
                })
                .expect("run")
                .expect("wait_closed in time");
                let report = ServerReport {
                    active_at_stop,
                    recv_buffers_in_use: l.recv_buffers_in_use(),
                    stats: l.driver_stats(),
                    engine: l.engine(),
                };
                l.close().expect("close server loop");
                report
            })
            .expect("spawn the server thread");
        let (addr, remote) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server thread started");
        EchoServerThread {
            addr,
            stats,
            remote,
            join: Some(join),
        }
    }

    /// Stops the server loop, closes the server, waits for its connections to end.
    pub fn stop(mut self) -> ServerReport {
        self.remote
            .call_soon_threadsafe(|| {
                ringloop::get_running_loop()
                    .expect("running on the server loop")
                    .stop()
            })
            .expect("reach the server loop");
        let report = self
            .join
            .take()
            .expect("joined once")
            .join()
            .expect("the server thread panicked");
        assert_eq!(report.stats.stale_cqes, 0, "{report:?}");
        assert_eq!(report.stats.cq_overflow, 0, "{report:?}");
        report
    }
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

/// Counts reports reaching the running loop's exception handler; returns the messages.
pub fn count_exceptions() -> Rc<RefCell<Vec<String>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s2 = seen.clone();
    ringloop::get_running_loop()
        .expect("a running loop")
        .set_exception_handler(Some(
            move |_: &EventLoop, ctx: &ringloop::ExceptionContext| {
                s2.borrow_mut()
                    .push(format!("{}: {:?}", ctx.message, ctx.error));
            },
        ));
    seen
}

// ----- processes and CPU time -----

/// User + system CPU time of the calling thread (a loop's own cost, unaffected by other
/// test threads).
pub fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let ru = unsafe {
        let mut ru = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The path of example `name` built beside this test binary
/// (`target/<profile>/deps/<test>-<hash>` → `target/<profile>/examples/<name>`), or `None`
/// (said on stderr) when it was not built.
pub fn example_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: {} not built", path.display());
        None
    }
}

/// Starts a server binary with `args` (stdout and stderr piped) and reads the
/// `listening on <ip:port>` line it must print first.
pub fn start_listening_child(
    bin: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut first)
        .expect("the first stdout line");
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {first:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("first line {first:?}: {e}"));
    (child, addr)
}

/// Waits for `child` to exit, killing it and failing the test after `limit`.
pub fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("child {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
