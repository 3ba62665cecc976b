//! The socket every async socket type wraps: an fd shared with its ops, and the
//! operations common to all families.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::buf::{IoBuf, IoBufMut};
use crate::fd::SharedFd;
use crate::op::{self, Op};
use crate::sys::socket::{self, RawAddr};

/// A socket fd and the ops on it.
#[derive(Clone, Debug)]
pub(crate) struct Socket {
    pub(crate) fd: SharedFd,
}

impl Socket {
    pub(crate) fn from_owned(fd: OwnedFd) -> Self {
        Socket {
            fd: SharedFd::new(fd),
        }
    }

    /// A new socket of `domain` and `ty`, bound to `addr` when given.
    pub(crate) fn new(domain: i32, ty: i32) -> io::Result<Self> {
        Ok(Socket::from_owned(socket::socket(domain, ty)?))
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.raw()
    }

    /// The fd back, once no op holds it and no salvaged bytes wait to be read; else the
    /// socket unchanged.
    pub(crate) fn into_owned(self) -> Result<OwnedFd, Socket> {
        if self.fd.has_salvaged() {
            return Err(self);
        }
        self.fd.try_unwrap().map_err(|fd| Socket { fd })
    }

    pub(crate) async fn connect(&self, addr: RawAddr) -> io::Result<()> {
        Op::new(op::Connect::new(self.fd.clone(), addr)).await
    }

    pub(crate) async fn accept(&self) -> io::Result<(OwnedFd, RawAddr)> {
        Op::new(op::Accept::new(self.fd.clone())).await
    }

    /// A datagram recv.
    pub(crate) async fn recv<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        Op::new(op::Recv::new(self.fd.clone(), buf)).await
    }

    /// A stream recv: bytes a cancelled recv took are returned first (see
    /// `op::SalvagingRead`).
    pub(crate) async fn recv_stream<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        op::SalvagingRead::new(self.fd.clone(), buf, op::Recv::stream).await
    }

    pub(crate) async fn send<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        Op::new(op::Send::new(self.fd.clone(), buf)).await
    }

    pub(crate) async fn send_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        let mut done = 0;
        let mut buf = buf;
        while done < total {
            let (res, slice) = self.send(buf.slice(done..total)).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                Ok(n) => done += n,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    pub(crate) async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        match op::Readv::new(self.fd.clone(), bufs, op::CURRENT_POSITION) {
            Ok(readv) => Op::new(readv).await,
            Err((e, bufs)) => (Err(e), bufs),
        }
    }

    /// A vectored send (`sendmsg` with `MSG_NOSIGNAL`, never `writev`: a closed peer is an
    /// `EPIPE`, not a SIGPIPE).
    pub(crate) async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        match op::SendV::new(self.fd.clone(), bufs) {
            Ok(sendv) => Op::new(sendv).await,
            Err((e, bufs)) => (Err(e), bufs),
        }
    }

    pub(crate) async fn recv_from<B: IoBufMut>(&self, buf: B) -> (io::Result<op::Received>, B) {
        Op::new(op::RecvMsg::new(self.fd.clone(), buf)).await
    }

    pub(crate) async fn send_to<B: IoBuf>(
        &self,
        buf: B,
        addr: Option<RawAddr>,
    ) -> (io::Result<usize>, B) {
        Op::new(op::SendMsg::new(self.fd.clone(), buf, addr)).await
    }

    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        socket::shutdown(self.raw(), how)
    }

    pub(crate) fn local_ip(&self) -> io::Result<SocketAddr> {
        ip_of(socket::local_addr(self.raw())?)
    }

    pub(crate) fn peer_ip(&self) -> io::Result<SocketAddr> {
        ip_of(socket::peer_addr(self.raw())?)
    }

    pub(crate) fn set_opt(&self, level: i32, name: i32, value: i32) -> io::Result<()> {
        socket::set_opt(self.raw(), level, name, value)
    }

    pub(crate) fn get_opt(&self, level: i32, name: i32) -> io::Result<i32> {
        socket::get_opt(self.raw(), level, name)
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.raw()
    }
}

pub(crate) fn ip_of(raw: RawAddr) -> io::Result<SocketAddr> {
    raw.to_socket_addr()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket address"))
}

/// Adds the operation and address to an error, keeping its kind and OS code visible.
pub(crate) fn with_context(e: io::Error, what: &str, addr: impl std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {addr}: {e}"))
}

/// A bound, listening socket.
pub(crate) fn listen_on(
    domain: i32,
    addr: &RawAddr,
    backlog: i32,
    reuse_address: bool,
    reuse_port: bool,
) -> io::Result<OwnedFd> {
    let fd = socket::socket(domain, libc::SOCK_STREAM)?;
    if reuse_address {
        socket::set_opt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    if reuse_port {
        socket::set_opt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if domain == libc::AF_INET6 {
        socket::set_opt(fd.as_raw_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    socket::bind(&fd, addr)?;
    socket::listen(&fd, backlog)?;
    Ok(fd)
}

/// A Unix address for `path`, with the path in any error.
pub(crate) fn unix_addr(path: &Path) -> io::Result<RawAddr> {
    socket::unix_addr(path)
}
