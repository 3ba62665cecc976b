//! Async UDP sockets with owned buffers.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::addr::{ToSocketAddrs, resolve_blocking};
use super::socket::{Socket, ip_of, with_context};
use super::tcp::clamp;
use crate::buf::{IoBuf, IoBufMut};
use crate::sys::socket::{self, RawAddr, domain_of};

/// A UDP socket.
#[derive(Debug)]
pub struct UdpSocket {
    socket: Socket,
}

impl UdpSocket {
    /// Binds to `addr` (port 0 picks a free port); any [`ToSocketAddrs`] form, a host
    /// name resolved in place (blocking, as `std`), the first address used.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addr = resolve_blocking(&addr)?[0];
        let socket = Socket::new(domain_of(&addr), libc::SOCK_DGRAM)?;
        let fd = socket.fd.clone();
        socket::bind_raw(fd.raw(), &RawAddr::from(addr))
            .map_err(|e| with_context(e, "bind", addr))?;
        Ok(UdpSocket { socket })
    }

    /// Adopts a socket made by `std` (switched to blocking mode, as the crate's own
    /// sockets are: the engines never block on it).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(false)?;
        Ok(UdpSocket {
            socket: Socket::from_owned(OwnedFd::from(socket)),
        })
    }

    /// The `std` socket back (blocking). `Err(self)` while an op is still in flight on it.
    pub fn into_std(self) -> Result<std::net::UdpSocket, UdpSocket> {
        self.socket
            .into_owned()
            .map(std::net::UdpSocket::from)
            .map_err(|socket| UdpSocket { socket })
    }

    /// Sets the default peer (`send`/`recv` then use it; ICMP errors surface).
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addr = super::resolve(addr).await?[0];
        self.socket
            .connect(RawAddr::from(addr))
            .await
            .map_err(|e| with_context(e, "connect to", addr))
    }

    /// Sends one datagram to `addr`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: SocketAddr) -> (io::Result<usize>, B) {
        self.socket.send_to(buf, Some(RawAddr::from(addr))).await
    }

    /// Receives one datagram and its sender. A datagram longer than the buffer is cut.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> (io::Result<(usize, SocketAddr)>, B) {
        let (res, buf) = self.socket.recv_from(buf).await;
        (res.and_then(|r| Ok((r.len, ip_of(r.addr)?))), buf)
    }

    /// Receives one datagram and says whether it was cut (`MSG_TRUNC`).
    pub async fn recv_from_truncated<B: IoBufMut>(
        &self,
        buf: B,
    ) -> (io::Result<(usize, SocketAddr, bool)>, B) {
        let (res, buf) = self.socket.recv_from(buf).await;
        (
            res.and_then(|r| Ok((r.len, ip_of(r.addr)?, r.truncated))),
            buf,
        )
    }

    /// Sends one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        self.socket.send(buf).await
    }

    /// Receives one datagram from the connected peer.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        self.socket.recv(buf).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_ip()
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_ip()
    }

    /// `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.socket
            .set_opt(libc::SOL_SOCKET, libc::SO_BROADCAST, i32::from(on))
    }

    /// `IP_TTL`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.socket
            .set_opt(libc::IPPROTO_IP, libc::IP_TTL, clamp(ttl as usize))
    }

    /// `SO_RCVBUF`.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.socket
            .set_opt(libc::SOL_SOCKET, libc::SO_RCVBUF, clamp(size))
    }

    /// `SO_SNDBUF`.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.socket
            .set_opt(libc::SOL_SOCKET, libc::SO_SNDBUF, clamp(size))
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.raw()
    }
}
