//! Async TCP sockets with owned buffers.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::addr::{ToSocketAddrs, resolve_blocking};
use super::socket::{Socket, ip_of, listen_on, with_context};
use crate::buf::{IoBuf, IoBufMut};
use crate::sys::socket::{RawAddr, domain_of};

/// A TCP listening socket.
///
/// # Examples
///
/// ```
/// use ringloop::net::{TcpListener, TcpStream};
///
/// ringloop::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = ringloop::spawn(async move {
///         let stream = TcpStream::connect(addr).await.unwrap();
///         let (res, _) = stream.write_all(b"hi".to_vec()).await;
///         res.unwrap();
///     });
///     let (stream, _peer) = listener.accept().await.unwrap();
///     let (n, buf) = stream.read(Vec::with_capacity(8)).await;
///     assert_eq!(&buf[..n.unwrap()], b"hi");
///     client.await.unwrap();
/// })
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct TcpListener {
    socket: Socket,
}

impl TcpListener {
    /// Binds and listens (backlog 1024, `SO_REUSEADDR`). IPv6 sockets are v6-only.
    /// Any [`ToSocketAddrs`] form; a host name is resolved in place (blocking, as
    /// `std::net::TcpListener::bind`), and each address is tried in turn.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let mut last_err = None;
        for addr in resolve_blocking(&addr)? {
            match listen_on(domain_of(&addr), &RawAddr::from(addr), 1024, true, false) {
                Ok(fd) => {
                    return Ok(TcpListener {
                        socket: Socket::from_owned(fd),
                    });
                }
                Err(e) => last_err = Some(with_context(e, "bind/listen on", addr)),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("bind: no address")))
    }

    /// Adopts a listener made by `std` (switched to blocking mode, as the crate's own
    /// sockets are: the engines never block on it).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(false)?;
        Ok(TcpListener {
            socket: Socket::from_owned(OwnedFd::from(listener)),
        })
    }

    /// The `std` listener back (blocking). `Err(self)` while an accept is still in flight
    /// on it (one whose future was dropped keeps the fd until its completion).
    pub fn into_std(self) -> Result<std::net::TcpListener, TcpListener> {
        self.socket
            .into_owned()
            .map(std::net::TcpListener::from)
            .map_err(|socket| TcpListener { socket })
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, addr) = self.socket.accept().await?;
        let stream = TcpStream {
            socket: Socket::from_owned(fd),
        };
        Ok((stream, ip_of(addr)?))
    }

    /// The bound address (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_ip()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.raw()
    }
}

/// A TCP connection. Dropping it with an op in flight is safe: the op keeps the buffer and
/// the fd until its completion.
#[derive(Debug)]
pub struct TcpStream {
    socket: Socket,
}

impl TcpStream {
    /// Connects to `addr` (any [`ToSocketAddrs`] form; each resolved address in turn);
    /// errors name the address.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last_err = None;
        for addr in super::resolve(addr).await? {
            let socket = Socket::new(domain_of(&addr), libc::SOCK_STREAM)?;
            match socket.connect(RawAddr::from(addr)).await {
                Ok(()) => return Ok(TcpStream { socket }),
                Err(e) => last_err = Some(with_context(e, "connect to", addr)),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("connect: no address")))
    }

    /// Adopts a connection made by `std` (switched to blocking mode, as the crate's own
    /// sockets are: the engines never block on it).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(false)?;
        Ok(TcpStream {
            socket: Socket::from_owned(OwnedFd::from(stream)),
        })
    }

    /// The `std` stream back (blocking), e.g. to hand it to another loop's
    /// [`EventLoop::connect_accepted_socket`](crate::EventLoop::connect_accepted_socket).
    /// `Err(self)` while an op is still in flight on it (a dropped read keeps the fd until
    /// its completion) or bytes a cancelled read took still wait to be read.
    pub fn into_std(self) -> Result<std::net::TcpStream, TcpStream> {
        self.socket
            .into_owned()
            .map(std::net::TcpStream::from)
            .map_err(|socket| TcpStream { socket })
    }

    /// Reads up to `buf.bytes_total()` bytes; `Ok(0)` is end of stream.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        self.socket.recv_stream(buf).await
    }

    /// Sends some of `buf` (the count may be short).
    pub async fn write<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        self.socket.send(buf).await
    }

    /// Sends all of `buf`, in order.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        self.socket.send_all(buf).await
    }

    /// Reads into several buffers in order.
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        self.socket.readv(bufs).await
    }

    /// Writes several buffers in order (the count may be short).
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        self.socket.writev(bufs).await
    }

    /// Shuts down the read, write or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_ip()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_ip()
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.socket
            .set_opt(libc::IPPROTO_TCP, libc::TCP_NODELAY, i32::from(on))
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.socket.get_opt(libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0)
    }

    /// `SO_KEEPALIVE`.
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        self.socket
            .set_opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE, i32::from(on))
    }

    /// Whether `SO_KEEPALIVE` is set.
    pub fn keepalive(&self) -> io::Result<bool> {
        Ok(self.socket.get_opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE)? != 0)
    }

    /// `SO_RCVBUF` (the kernel doubles the value it stores).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.socket
            .set_opt(libc::SOL_SOCKET, libc::SO_RCVBUF, clamp(size))
    }

    /// `SO_RCVBUF` as the kernel reports it.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        Ok(self.socket.get_opt(libc::SOL_SOCKET, libc::SO_RCVBUF)? as usize)
    }

    /// `SO_SNDBUF` (the kernel doubles the value it stores).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.socket
            .set_opt(libc::SOL_SOCKET, libc::SO_SNDBUF, clamp(size))
    }

    /// `SO_SNDBUF` as the kernel reports it.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        Ok(self.socket.get_opt(libc::SOL_SOCKET, libc::SO_SNDBUF)? as usize)
    }

    /// `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket
            .set_opt(libc::IPPROTO_IP, libc::IP_TTL, clamp(ttl as usize))
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        Ok(self.socket.get_opt(libc::IPPROTO_IP, libc::IP_TTL)? as u32)
    }

    /// `SO_LINGER` 0: closing sends a reset instead of a FIN.
    pub fn set_linger_zero(&self) -> io::Result<()> {
        crate::sys::socket::set_linger_zero(self.socket.raw())
    }
}

impl TcpStream {
    /// The fd its ops share (for the compat adapters).
    #[cfg(any(feature = "tokio", feature = "futures-io", feature = "hyper"))]
    pub(crate) fn shared_fd(&self) -> &crate::fd::SharedFd {
        &self.socket.fd
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.raw()
    }
}

pub(crate) fn clamp(v: usize) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}
