//! A hand-written, single-threaded epoll TCP echo server: a calibration baseline for
//! `BENCHMARKS.md`, not part of the library.
//!
//! It is the epoll counterpart of `raw_uring_echo.rs`: the least a readiness-based echo
//! server does per message, so that ringloop's epoll engine (and the raw io_uring server)
//! can be compared against a floor measured on the same machine. Only `libc`:
//!
//! - non-blocking sockets, each registered once with `EPOLLIN | EPOLLOUT | EPOLLRDHUP |
//!   EPOLLET` (never modified afterwards);
//! - the listener is edge-triggered too and drained with an `accept4` loop;
//! - on readable: `recv` until `EAGAIN` or a short read (until `EAGAIN`/EOF when the peer
//!   has hung up), each chunk sent straight back with `send`; what the socket does not take
//!   is buffered and sent on `EPOLLOUT`, and later reads queue behind it to keep the order.
//!
//! Usage: `raw_epoll_echo server 127.0.0.1:0`. Prints `listening on ADDR` first, echoes every
//! byte in order, stops on SIGINT/SIGTERM (a signalfd in the epoll set) and prints
//! `shutting down; driver: enters=N` (epoll_wait calls) on stderr for `benches/compare.sh`.

mod common;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;

use common::{set_nodelay, stop_signal_fd};

const LISTENER: u64 = u64::MAX;
const SIGNAL: u64 = u64::MAX - 1;
const READ_CHUNK: usize = 64 * 1024;

#[derive(Default)]
struct Conn {
    fd: i32,
    /// Bytes the socket has not taken yet, in order.
    pending: Vec<u8>,
    /// The peer has sent EOF: close once `pending` is out.
    read_closed: bool,
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `send` without SIGPIPE. Ok(bytes sent), Ok(0) for EAGAIN, Err for a failure.
fn send_some(fd: i32, buf: &[u8]) -> Result<usize, i32> {
    loop {
        // SAFETY: `buf` is a live slice of `buf.len()` bytes; `fd` is an open socket.
        let n = unsafe {
            libc::send(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return Ok(0),
            e => return Err(e),
        }
    }
}

/// Sends `data` after whatever is pending; keeps what the socket refuses. Err on failure.
fn send_or_queue(c: &mut Conn, data: &[u8]) -> Result<(), i32> {
    if !c.pending.is_empty() {
        c.pending.extend_from_slice(data);
        return Ok(());
    }
    let mut off = 0;
    while off < data.len() {
        let n = send_some(c.fd, &data[off..])?;
        if n == 0 {
            break;
        }
        off += n;
    }
    c.pending.extend_from_slice(&data[off..]);
    Ok(())
}

/// Sends as much of `pending` as the socket takes.
fn flush_pending(c: &mut Conn) -> Result<(), i32> {
    let mut off = 0;
    while off < c.pending.len() {
        let n = send_some(c.fd, &c.pending[off..])?;
        if n == 0 {
            break;
        }
        off += n;
    }
    c.pending.drain(..off);
    Ok(())
}

/// Handles a readable event; Ok(true) when the connection should close now.
fn on_readable(c: &mut Conn, buf: &mut [u8], hung_up: bool) -> Result<bool, i32> {
    loop {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::recv(c.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n > 0 {
            let n = n as usize;
            send_or_queue(c, &buf[..n])?;
            if n < buf.len() && !hung_up {
                return Ok(false); // a short read: the socket is (very likely) drained
            }
            continue;
        }
        if n == 0 {
            c.read_closed = true;
            return Ok(c.pending.is_empty());
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return Ok(false),
            e => return Err(e),
        }
    }
}

fn epoll_add(epfd: i32, fd: i32, events: u32, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: `ev` is a live epoll_event; epfd and fd are open descriptors.
    if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn close_conn(conns: &mut [Option<Conn>], free: &mut Vec<usize>, idx: usize) {
    if let Some(c) = conns[idx].take() {
        // SAFETY: the connection's fd, closed once (the slot is emptied); closing also
        // removes it from the epoll set.
        unsafe { libc::close(c.fd) };
        free.push(idx);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = match (args.first().map(String::as_str), args.get(1)) {
        (Some("server"), Some(a)) if args.len() == 2 => match a.parse() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("address: {e}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("usage: raw_epoll_echo server ADDR");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(addr) {
        eprintln!("raw_epoll_echo: {e}");
        std::process::exit(1);
    }
}

fn serve(addr: SocketAddr) -> io::Result<()> {
    let signal_fd = stop_signal_fd(true)?;
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let lfd = listener.as_raw_fd();
    // SAFETY: plain syscall, result checked.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        return Err(io::Error::last_os_error());
    }
    epoll_add(epfd, lfd, (libc::EPOLLIN | libc::EPOLLET) as u32, LISTENER)?;
    epoll_add(epfd, signal_fd, libc::EPOLLIN as u32, SIGNAL)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    let conn_events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; READ_CHUNK];
    let mut enters: u64 = 0;
    'outer: loop {
        enters += 1;
        // SAFETY: `events` is a live array of `events.len()` epoll_event.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        for ev in &events[..n as usize] {
            let (flags, data) = (ev.events, ev.u64);
            match data {
                SIGNAL => break 'outer,
                LISTENER => loop {
                    // SAFETY: null address pointers are allowed; lfd is the listener.
                    let fd = unsafe {
                        libc::accept4(
                            lfd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        )
                    };
                    if fd < 0 {
                        match errno() {
                            libc::EINTR | libc::ECONNABORTED => continue,
                            libc::EAGAIN => break,
                            e => {
                                eprintln!("accept4: {}", io::Error::from_raw_os_error(e));
                                break;
                            }
                        }
                    }
                    set_nodelay(fd);
                    let idx = free.pop().unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    conns[idx] = Some(Conn {
                        fd,
                        ..Conn::default()
                    });
                    if let Err(e) = epoll_add(epfd, fd, conn_events, idx as u64) {
                        eprintln!("epoll_ctl: {e}");
                        close_conn(&mut conns, &mut free, idx);
                    }
                },
                idx => {
                    let idx = idx as usize;
                    let Some(c) = conns[idx].as_mut() else {
                        continue;
                    };
                    let mut close = false;
                    if flags & libc::EPOLLERR as u32 != 0 {
                        close = true;
                    }
                    if !close && flags & libc::EPOLLOUT as u32 != 0 && !c.pending.is_empty() {
                        match flush_pending(c) {
                            Ok(()) => close = c.read_closed && c.pending.is_empty(),
                            Err(_) => close = true,
                        }
                    }
                    let hung_up = flags & (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0;
                    if !close && !c.read_closed && flags & libc::EPOLLIN as u32 != 0 {
                        close = on_readable(c, &mut buf, hung_up).unwrap_or(true);
                    }
                    if close {
                        close_conn(&mut conns, &mut free, idx);
                    }
                }
            }
        }
    }
    eprintln!("shutting down; driver: enters={enters}");
    for idx in 0..conns.len() {
        close_conn(&mut conns, &mut free, idx);
    }
    // SAFETY: the epoll and signal fds, closed once.
    unsafe {
        libc::close(epfd);
        libc::close(signal_fd);
    }
    Ok(())
}
