//! Async Unix-domain sockets (stream and datagram) with owned buffers.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use super::socket::{Socket, listen_on, unix_addr, with_context};
use crate::buf::{IoBuf, IoBufMut};
use crate::sys::socket::{self, RawAddr};

/// A listening Unix stream socket.
#[derive(Debug)]
pub struct UnixListener {
    socket: Socket,
}

impl UnixListener {
    /// Binds to `path` and listens. The path must not exist.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let addr = unix_addr(path)?;
        let fd = listen_on(libc::AF_UNIX, &addr, 1024, false, false)
            .map_err(|e| with_context(e, "bind/listen on", path.display()))?;
        Ok(UnixListener {
            socket: Socket::from_owned(fd),
        })
    }

    /// Accepts one connection.
    pub async fn accept(&self) -> io::Result<UnixStream> {
        let (fd, _) = self.socket.accept().await?;
        Ok(UnixStream {
            socket: Socket::from_owned(fd),
        })
    }

    /// The bound path.
    pub fn local_path(&self) -> io::Result<PathBuf> {
        path_of(socket::local_addr(self.socket.raw())?)
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.raw()
    }
}

/// A Unix stream connection.
#[derive(Debug)]
pub struct UnixStream {
    socket: Socket,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let socket = Socket::new(libc::AF_UNIX, libc::SOCK_STREAM)?;
        socket
            .connect(unix_addr(path)?)
            .await
            .map_err(|e| with_context(e, "connect to", path.display()))?;
        Ok(UnixStream { socket })
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = socket::socketpair(libc::SOCK_STREAM)?;
        Ok((
            UnixStream {
                socket: Socket::from_owned(a),
            },
            UnixStream {
                socket: Socket::from_owned(b),
            },
        ))
    }

    /// Reads up to `buf.bytes_total()` bytes; `Ok(0)` is end of stream.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        self.socket.recv_stream(buf).await
    }

    /// Sends some of `buf`.
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

    /// Writes several buffers in order.
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> (io::Result<usize>, Vec<B>) {
        self.socket.writev(bufs).await
    }

    /// Shuts down one or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }

    /// The peer's path (empty for an unnamed peer).
    pub fn peer_path(&self) -> io::Result<PathBuf> {
        path_of(socket::peer_addr(self.socket.raw())?)
    }
}

impl UnixStream {
    /// The fd its ops share (for the compat adapters).
    #[cfg(any(feature = "tokio", feature = "futures-io", feature = "hyper"))]
    pub(crate) fn shared_fd(&self) -> &crate::fd::SharedFd {
        &self.socket.fd
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.raw()
    }
}

/// A Unix datagram socket.
#[derive(Debug)]
pub struct UnixDatagram {
    socket: Socket,
}

impl UnixDatagram {
    /// Binds to `path`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let socket = Socket::new(libc::AF_UNIX, libc::SOCK_DGRAM)?;
        socket::bind_raw(socket.raw(), &unix_addr(path)?)
            .map_err(|e| with_context(e, "bind", path.display()))?;
        Ok(UnixDatagram { socket })
    }

    /// An unbound socket (can send; receives only replies to a connected peer).
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            socket: Socket::new(libc::AF_UNIX, libc::SOCK_DGRAM)?,
        })
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = socket::socketpair(libc::SOCK_DGRAM)?;
        Ok((
            UnixDatagram {
                socket: Socket::from_owned(a),
            },
            UnixDatagram {
                socket: Socket::from_owned(b),
            },
        ))
    }

    /// Sends one datagram to `path`.
    pub async fn send_to<B: IoBuf>(
        &self,
        buf: B,
        path: impl AsRef<Path>,
    ) -> (io::Result<usize>, B) {
        match unix_addr(path.as_ref()) {
            Ok(addr) => self.socket.send_to(buf, Some(addr)).await,
            Err(e) => (Err(e), buf),
        }
    }

    /// Receives one datagram and the sender's path (empty if unnamed).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> (io::Result<(usize, PathBuf)>, B) {
        let (res, buf) = self.socket.recv_from(buf).await;
        (
            res.map(|r| (r.len, r.addr.to_unix_path().unwrap_or_default())),
            buf,
        )
    }

    /// Sends to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> (io::Result<usize>, B) {
        self.socket.send(buf).await
    }

    /// Receives from the connected peer.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> (io::Result<usize>, B) {
        self.socket.recv(buf).await
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.raw()
    }
}

fn path_of(addr: RawAddr) -> io::Result<PathBuf> {
    addr.to_unix_path()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a Unix socket address"))
}
