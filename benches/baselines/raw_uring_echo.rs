//! A hand-written, single-threaded io_uring TCP echo server: a calibration baseline for
//! `BENCHMARKS.md`, not part of the library.
//!
//! It answers "how cheap can an io_uring echo be on this machine?", so that ringloop's
//! uring engine can be judged against a ceiling measured here rather than one quoted from
//! elsewhere. It uses only the `io-uring` crate and `libc`, and does the things a tuned
//! io_uring server does:
//!
//! - the ring is set up with `SINGLE_ISSUER | DEFER_TASKRUN` (plain if the kernel refuses);
//! - one multishot accept on the listener;
//! - one multishot recv per connection, with buffers from a registered provided-buffer ring
//!   (`--bufs N` buffers of 4 KiB, default 1024). The received bytes are copied into the
//!   connection's pending buffer and the provided buffer goes back to the ring at once;
//! - at most one SEND in flight per connection, issued once per loop iteration from the
//!   connection's out buffer; what arrives meanwhile is appended to the pending buffer and
//!   sent when the SEND completes. Short sends are resubmitted for the remainder;
//! - one `io_uring_enter` per loop iteration (`submit_and_wait(1)`), after reaping every CQE.
//!
//! Variants, by flag:
//!
//! - `--skip-success`: SENDs carry `IOSQE_CQE_SKIP_SUCCESS` and `MSG_DONTWAIT | MSG_WAITALL`,
//!   so a send that goes through whole posts no CQE. With `MSG_DONTWAIT` the send is tried
//!   inline during `io_uring_enter` and never parked, so once the enter that submitted it has
//!   returned (and its failure CQE, if any, has been reaped) the out buffer is free again. A
//!   failure CQE (short send: `res` = bytes sent; `-EAGAIN`; an error) is resubmitted as a
//!   plain SEND, which posts a CQE.
//! - `--fixed-files`: sockets are direct descriptors. The file table is registered sparse,
//!   the multishot accept allocates a slot per connection, and recv/send/shutdown/close use
//!   `types::Fixed`. Accepted sockets get `TCP_NODELAY` by inheriting it from the listener.
//!
//! Usage: `raw_uring_echo server 127.0.0.1:0 [--skip-success] [--fixed-files] [--bufs N]`.
//! Prints `listening on ADDR` first, echoes every byte in order, stops on SIGINT/SIGTERM (a
//! signalfd read on the ring) and prints `shutting down; driver: enters=N ...` on stderr,
//! the line `benches/compare.sh` reads.

mod common;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::squeue::{Entry, Flags};
use io_uring::{IoUring, cqueue, opcode, types};

use common::{set_nodelay, stop_signal_fd};

const BUF_SIZE: usize = 4096;
const BGID: u16 = 0;
const FIXED_SLOTS: u32 = 4096;

// user_data: tag in the top byte, connection index in the low 32 bits.
const TAG_ACCEPT: u64 = 1;
const TAG_RECV: u64 = 2;
const TAG_SEND: u64 = 3;
const TAG_CLOSE: u64 = 4;
const TAG_SHUTDOWN: u64 = 5;
const TAG_SIGNAL: u64 = 6;

fn ud(tag: u64, idx: usize) -> u64 {
    (tag << 56) | idx as u64
}

struct Options {
    addr: SocketAddr,
    skip_success: bool,
    fixed_files: bool,
    bufs: u16,
}

fn parse_args() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("server") {
        return Err(
            "usage: raw_uring_echo server ADDR [--skip-success] [--fixed-files] [--bufs N]".into(),
        );
    }
    let addr = args
        .get(1)
        .ok_or("server needs an address")?
        .parse()
        .map_err(|e| format!("address: {e}"))?;
    let mut opts = Options {
        addr,
        skip_success: false,
        fixed_files: false,
        bufs: 1024,
    };
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "--skip-success" => opts.skip_success = true,
            "--fixed-files" => opts.fixed_files = true,
            "--bufs" => {
                i += 1;
                let n: u16 = args
                    .get(i)
                    .ok_or("--bufs needs a value")?
                    .parse()
                    .map_err(|e| format!("--bufs: {e}"))?;
                if !n.is_power_of_two() || n > 32768 {
                    return Err("--bufs must be a power of two <= 32768".into());
                }
                opts.bufs = n;
            }
            other => return Err(format!("unknown argument {other}")),
        }
        i += 1;
    }
    Ok(opts)
}

/// The provided-buffer ring: `n` entries in page-aligned memory shared with the kernel, and
/// the `n` buffers of `BUF_SIZE` bytes they point into.
struct BufRing {
    entries: *mut types::BufRingEntry,
    ring_bytes: usize,
    mask: u16,
    tail: u16,
    data: Vec<u8>,
}

impl BufRing {
    fn new(n: u16) -> io::Result<BufRing> {
        let ring_bytes = n as usize * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut ring = BufRing {
            entries: p.cast(),
            ring_bytes,
            mask: n - 1,
            tail: 0,
            data: vec![0; n as usize * BUF_SIZE],
        };
        for bid in 0..n {
            ring.recycle(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// Puts buffer `bid` back at the (local) tail; the kernel sees it after `publish`.
    fn recycle(&mut self, bid: u16) {
        let addr = self.data.as_ptr() as u64 + bid as u64 * BUF_SIZE as u64;
        // SAFETY: `tail & mask` < n, so the entry lies inside the mapping; the kernel only
        // reads entries between its head and the published tail, and this one is past it.
        let e = unsafe { &mut *self.entries.add((self.tail & self.mask) as usize) };
        e.set_addr(addr);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the recycled buffers visible to the kernel (a release store of the tail).
    fn publish(&self) {
        // SAFETY: `entries` is the ring's base (page aligned, initialized entries); the tail
        // is the 16-bit, 2-aligned `resv` field of entry 0, which the kernel reads atomically
        // and never writes, so an atomic store through it is sound.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }

    fn buf(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * BUF_SIZE;
        &self.data[start..start + len]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once (the ring, which could still
        // read it, is dropped before this: see `Server`'s field order).
        unsafe { libc::munmap(self.entries.cast(), self.ring_bytes) };
    }
}

#[derive(Default)]
struct Conn {
    /// A raw fd, or a fixed-file slot with `--fixed-files`.
    fd: i32,
    /// What the SEND in flight (if any) sends: `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
    send_in_flight: bool,
    /// A `--skip-success` send submitted and not yet known to be done.
    skip_pending: bool,
    /// The failure CQE of that skip-success send, if one came.
    skip_failed: Option<i32>,
    /// Received bytes waiting for the next SEND.
    pending: Vec<u8>,
    /// The multishot recv has ended for good (EOF or error).
    recv_done: bool,
    /// A send failed: drop what is left and close once the recv has ended.
    write_failed: bool,
    shutdown_sent: bool,
    dirty: bool,
}

struct Server {
    // Field order matters for Drop: the ring goes before the buffer memory it uses.
    ring: IoUring,
    bufs: BufRing,
    opts: Options,
    listen_fd: i32,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    dirty: Vec<usize>,
    skip_sent: Vec<usize>,
    enters: u64,
    sqes: u64,
    cqes: u64,
    stop: bool,
}

impl Server {
    fn push(&mut self, e: Entry) -> io::Result<()> {
        self.sqes += 1;
        loop {
            // SAFETY: every buffer an SQE points at outlives the operation: connection out
            // buffers are not touched while their SEND is in flight (and connections are
            // freed only when nothing is in flight), the provided buffers and the signalfd
            // read buffer live as long as the ring.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return Ok(());
            }
            // SQ full: submit what is there (skip-success sends submitted here are tried
            // inline now; their failure CQEs are reaped before they are treated as done).
            self.enters += 1;
            self.ring.submit()?;
        }
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        let e = opcode::AcceptMulti::new(types::Fd(self.listen_fd))
            .allocate_file_index(self.opts.fixed_files)
            // Direct descriptors have no close-on-exec flag (the kernel refuses it).
            .flags(if self.opts.fixed_files {
                0
            } else {
                libc::SOCK_CLOEXEC
            })
            .build()
            .user_data(ud(TAG_ACCEPT, 0));
        self.push(e)
    }

    fn arm_recv(&mut self, idx: usize, fd: i32) -> io::Result<()> {
        let e = match sock(self.opts.fixed_files, fd) {
            SockTarget::Fd(f) => opcode::RecvMulti::new(f, BGID).build(),
            SockTarget::Fixed(f) => opcode::RecvMulti::new(f, BGID).build(),
        };
        self.push(e.user_data(ud(TAG_RECV, idx)))
    }

    /// Submits `out[sent..]` of connection `idx`; `skip` for a skip-success send.
    fn submit_send(&mut self, idx: usize, skip: bool) -> io::Result<()> {
        let c = self.conns[idx].as_mut().unwrap();
        let ptr = c.out[c.sent..].as_ptr();
        let len = (c.out.len() - c.sent) as u32;
        let fd = c.fd;
        c.send_in_flight = true;
        let flags = if skip {
            libc::MSG_DONTWAIT | libc::MSG_WAITALL
        } else {
            0
        };
        let e = match sock(self.opts.fixed_files, fd) {
            SockTarget::Fd(f) => opcode::Send::new(f, ptr, len).flags(flags).build(),
            SockTarget::Fixed(f) => opcode::Send::new(f, ptr, len).flags(flags).build(),
        };
        let mut e = e.user_data(ud(TAG_SEND, idx));
        if skip {
            e = e.flags(Flags::SKIP_SUCCESS);
            c.skip_pending = true;
            c.skip_failed = None;
            self.skip_sent.push(idx);
        }
        self.push(e)
    }

    fn mark_dirty(&mut self, idx: usize) {
        let c = self.conns[idx].as_mut().unwrap();
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(idx);
        }
    }

    fn on_accept(&mut self, res: i32, flags: u32) -> io::Result<()> {
        if res >= 0 {
            if !self.opts.fixed_files {
                set_nodelay(res);
            }
            let conn = Conn {
                fd: res,
                ..Conn::default()
            };
            let idx = match self.free.pop() {
                Some(i) => {
                    self.conns[i] = Some(conn);
                    i
                }
                None => {
                    self.conns.push(Some(conn));
                    self.conns.len() - 1
                }
            };
            self.arm_recv(idx, res)?;
        } else {
            let err = io::Error::from_raw_os_error(-res);
            match -res {
                libc::ECONNABORTED | libc::EINTR => {}
                // Out of descriptors or fixed slots: say so and keep going.
                libc::EMFILE | libc::ENFILE => eprintln!("accept: {err}"),
                _ => return Err(err),
            }
        }
        if !cqueue::more(flags) {
            self.arm_accept()?;
        }
        Ok(())
    }

    fn on_recv(&mut self, idx: usize, res: i32, flags: u32) -> io::Result<()> {
        let more = cqueue::more(flags);
        let bid = cqueue::buffer_select(flags);
        let c = self.conns[idx].as_mut().unwrap();
        if res > 0 {
            let bid = bid.expect("recv CQE with data but no buffer");
            if !c.write_failed {
                c.pending
                    .extend_from_slice(self.bufs.buf(bid, res as usize));
            }
            self.bufs.recycle(bid);
        } else {
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            if res != -libc::ENOBUFS {
                // EOF or an error: this multishot recv is over and is not re-armed.
                c.recv_done = true;
            }
        }
        let rearm = !more && !c.recv_done;
        let fd = c.fd;
        self.mark_dirty(idx);
        if rearm {
            self.arm_recv(idx, fd)?;
        }
        Ok(())
    }

    fn on_send(&mut self, idx: usize, res: i32) {
        let c = self.conns[idx].as_mut().unwrap();
        if c.skip_pending {
            // Only failures post a CQE: remember it; `settle_skip_sends` handles it.
            assert!(
                c.skip_failed.is_none(),
                "two CQEs for one skip-success send"
            );
            c.skip_failed = Some(res);
            return;
        }
        assert!(c.send_in_flight, "send CQE with no send in flight");
        c.send_in_flight = false;
        apply_send_result(c, res);
        self.mark_dirty(idx);
    }

    /// After an enter: every skip-success send submitted before it has been tried; those
    /// with no failure CQE went through whole.
    fn settle_skip_sends(&mut self) {
        if self.skip_sent.is_empty() {
            return;
        }
        // Only sends that have left the SQ have been tried (the SQ is normally empty here).
        if !self.ring.submission().is_empty() {
            return;
        }
        for idx in std::mem::take(&mut self.skip_sent) {
            let c = self.conns[idx].as_mut().unwrap();
            c.skip_pending = false;
            c.send_in_flight = false;
            match c.skip_failed.take() {
                None => {
                    c.out.clear();
                    c.sent = 0;
                }
                // Nothing sent yet (socket buffer full): resend as a plain send.
                Some(res) if res == -libc::EAGAIN => {}
                Some(res) => apply_send_result(c, res),
            }
            self.mark_dirty(idx);
        }
    }

    /// For each connection touched this iteration: start its next SEND, or close it.
    fn flush(&mut self) -> io::Result<()> {
        for idx in std::mem::take(&mut self.dirty) {
            let c = self.conns[idx].as_mut().unwrap();
            c.dirty = false;
            if c.send_in_flight {
                continue;
            }
            if c.write_failed {
                c.out.clear();
                c.pending.clear();
                if !c.recv_done {
                    if !c.shutdown_sent {
                        // End the multishot recv; the connection closes when it has.
                        c.shutdown_sent = true;
                        let fd = c.fd;
                        let e = match sock(self.opts.fixed_files, fd) {
                            SockTarget::Fd(f) => opcode::Shutdown::new(f, libc::SHUT_RDWR).build(),
                            SockTarget::Fixed(f) => {
                                opcode::Shutdown::new(f, libc::SHUT_RDWR).build()
                            }
                        };
                        self.push(e.user_data(ud(TAG_SHUTDOWN, idx)))?;
                    }
                    continue;
                }
            }
            if c.sent < c.out.len() {
                // The rest of a short send (or of a failed skip-success send).
                self.submit_send(idx, false)?;
                continue;
            }
            if !c.pending.is_empty() {
                // The out buffer is free: the pending bytes become the next SEND.
                c.out.clear();
                c.sent = 0;
                std::mem::swap(&mut c.out, &mut c.pending);
                let skip = self.opts.skip_success;
                self.submit_send(idx, skip)?;
                continue;
            }
            if c.recv_done {
                let fd = c.fd;
                self.conns[idx] = None;
                self.free.push(idx);
                let e = match sock(self.opts.fixed_files, fd) {
                    SockTarget::Fd(f) => opcode::Close::new(f).build(),
                    SockTarget::Fixed(f) => opcode::Close::new(f).build(),
                };
                self.push(e.user_data(ud(TAG_CLOSE, idx)))?;
            }
        }
        Ok(())
    }

    fn run(&mut self, signal_fd: i32, sig_buf: &mut [u8]) -> io::Result<()> {
        self.arm_accept()?;
        let e = opcode::Read::new(
            types::Fd(signal_fd),
            sig_buf.as_mut_ptr(),
            sig_buf.len() as u32,
        )
        .build()
        .user_data(ud(TAG_SIGNAL, 0));
        self.push(e)?;
        let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        while !self.stop {
            self.bufs.publish();
            self.enters += 1;
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {} // CQ overflow: reap
                Err(e) => return Err(e),
            }
            // Reap everything before handling (handling pushes SQEs).
            cqes.clear();
            cqes.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            self.cqes += cqes.len() as u64;
            for &(data, res, flags) in &cqes {
                let idx = (data & 0xffff_ffff) as usize;
                match data >> 56 {
                    TAG_ACCEPT => self.on_accept(res, flags)?,
                    TAG_RECV => self.on_recv(idx, res, flags)?,
                    TAG_SEND => self.on_send(idx, res),
                    TAG_SIGNAL => self.stop = true,
                    TAG_CLOSE | TAG_SHUTDOWN => {}
                    t => panic!("unknown CQE tag {t}"),
                }
            }
            self.settle_skip_sends();
            self.flush()?;
        }
        Ok(())
    }
}

enum SockTarget {
    Fd(types::Fd),
    Fixed(types::Fixed),
}

/// A socket as an SQE target: a raw fd, or a fixed-file slot with `--fixed-files`.
fn sock(fixed: bool, fd: i32) -> SockTarget {
    if fixed {
        SockTarget::Fixed(types::Fixed(fd as u32))
    } else {
        SockTarget::Fd(types::Fd(fd))
    }
}

/// Applies a SEND's result (not a skip-success success) to `c`.
fn apply_send_result(c: &mut Conn, res: i32) {
    if res >= 0 {
        c.sent += res as usize;
        if c.sent >= c.out.len() {
            c.out.clear();
            c.sent = 0;
        }
    } else if res != -libc::EAGAIN && res != -libc::EINTR {
        c.write_failed = true;
    }
}

fn build_ring() -> io::Result<IoUring> {
    let entries = 2048;
    match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(8192)
        .build(entries)
    {
        Ok(r) => Ok(r),
        Err(e) => {
            eprintln!("SINGLE_ISSUER|DEFER_TASKRUN refused ({e}); plain ring");
            IoUring::builder().setup_cqsize(8192).build(entries)
        }
    }
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(opts) {
        eprintln!("raw_uring_echo: {e}");
        std::process::exit(1);
    }
}

fn serve(opts: Options) -> io::Result<()> {
    let signal_fd = stop_signal_fd(false)?;
    let listener = TcpListener::bind(opts.addr)?;
    // Accepted sockets inherit TCP_NODELAY (needed with --fixed-files: no raw fd to set it on).
    set_nodelay(listener.as_raw_fd());
    let ring = build_ring()?;
    let bufs = BufRing::new(opts.bufs)?;
    // SAFETY: the ring memory (`bufs.entries`, n entries) stays mapped until `bufs` drops,
    // which is after the ring (field order in `Server`).
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(bufs.entries as u64, opts.bufs, BGID, 0)?;
    }
    if opts.fixed_files {
        ring.submitter().register_files_sparse(FIXED_SLOTS)?;
    }
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    io::stdout().flush()?;
    let mut server = Server {
        ring,
        bufs,
        listen_fd: listener.as_raw_fd(),
        opts,
        conns: Vec::new(),
        free: Vec::new(),
        dirty: Vec::new(),
        skip_sent: Vec::new(),
        enters: 0,
        sqes: 0,
        cqes: 0,
        stop: false,
    };
    let mut sig_buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    server.run(signal_fd, &mut sig_buf)?;
    eprintln!(
        "shutting down; driver: enters={} sqes={} cqes={}",
        server.enters, server.sqes, server.cqes
    );
    // Dropping the server closes the ring first (cancelling what is still in flight, e.g.
    // reads into `sig_buf`), then the buffer memory.
    drop(server);
    drop(listener);
    Ok(())
}
