//! Networking: the loop's asyncio entry points (`create_server`, `create_connection`,
//! `create_datagram_endpoint`, their Unix twins, the low-level `sock_*` calls) and async
//! socket types with owned buffers ([`TcpListener`], [`TcpStream`], [`UdpSocket`],
//! [`UnixListener`], [`UnixStream`], [`UnixDatagram`]).
//!
//! Addresses take every usual form through one trait, [`ToSocketAddrs`]: strings as users
//! type them (`"127.0.0.1:8080"`, `"[::1]:0"`, `"localhost:80"`), `SocketAddr`,
//! `(IpAddr, port)`, `(host, port)` (see [`addr`]). Numeric ones are used directly; host
//! names are resolved on the loop's default executor (`run_in_executor`), so the loop
//! never blocks on DNS.

pub mod addr;
mod server;
mod socket;
mod tcp;
mod udp;
mod unix;

pub use addr::ToSocketAddrs;
pub use server::{ACCEPT_BACKOFF, Server};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use crate::buf::{IoBuf, IoBufMut};
use crate::event_loop::EventLoop;
use crate::fd::Fd;
use crate::protocol::{BufferedProtocol, DatagramProtocol, Protocol};
use crate::sys::socket::{RawAddr, domain_of};
use crate::transport::{DatagramTransport, ProtocolRef, StreamKind, StreamTransport};
use socket::{Socket, listen_on, unix_addr, with_context};

/// Options for [`EventLoop::create_server_with`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `listen` backlog. Default 1024.
    pub backlog: i32,
    /// `SO_REUSEADDR`. Default true.
    pub reuse_address: bool,
    /// `SO_REUSEPORT`. Default false.
    pub reuse_port: bool,
    /// Start accepting at once. Default true.
    pub start_serving: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            backlog: 1024,
            reuse_address: true,
            reuse_port: false,
            start_serving: true,
        }
    }
}

/// Options for [`EventLoop::create_datagram_endpoint`].
#[derive(Debug, Clone, Default)]
pub struct DatagramOptions {
    /// `SO_REUSEPORT`.
    pub reuse_port: bool,
    /// `SO_BROADCAST`.
    pub allow_broadcast: bool,
}

/// Resolves an address in any [`ToSocketAddrs`] form: numeric addresses directly, host
/// names on the running loop's default executor (the loop keeps running meanwhile).
/// Errors name the address.
pub async fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addr = match addr.to_target() {
        addr::AddrTarget::Addrs(a) if a.is_empty() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no socket address given",
            ));
        }
        addr::AddrTarget::Addrs(a) => return Ok(a),
        addr::AddrTarget::Name(n) => n,
    };
    let addr = addr.as_str();
    if !addr.contains(':') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid address {addr:?}: expected host:port"),
        ));
    }
    // The lookup blocks, so it runs on the loop's default executor (asyncio's
    // getaddrinfo goes through run_in_executor too); the loop keeps running meanwhile.
    let event_loop = crate::get_running_loop().map_err(io::Error::from)?;
    let owned = addr.to_string();
    let addrs = event_loop
        .run_in_executor(move || {
            // crate::Error keeps the io::Error (shared), so the job's result is Clone.
            let lookup = std::net::ToSocketAddrs::to_socket_addrs(owned.as_str())
                .map_err(crate::Error::from);
            lookup.map(|it| it.collect::<Vec<_>>())
        })
        .await
        .and_then(|lookup| lookup)
        .map_err(io::Error::from)
        .map_err(|e| with_context(e, "resolve", addr))?;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("resolve {addr}: no addresses"),
        ));
    }
    Ok(addrs)
}

fn stream_ref<P: Protocol>(p: &Rc<RefCell<P>>) -> ProtocolRef {
    ProtocolRef::Stream(p.clone())
}

impl EventLoop {
    /// asyncio's `create_server`: listens on `addr` (`"host:port"`; a host with several
    /// addresses gets a socket each) and gives each accepted connection a protocol from
    /// `factory`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringloop::{Protocol, StreamTransport, get_running_loop};
    ///
    /// struct Echo(Option<StreamTransport>);
    /// impl Protocol for Echo {
    ///     fn connection_made(&mut self, t: &StreamTransport) { self.0 = Some(t.clone()); }
    ///     fn data_received(&mut self, data: &[u8]) { self.0.as_ref().unwrap().write(data).unwrap(); }
    /// }
    ///
    /// ringloop::run(async {
    ///     let l = get_running_loop().unwrap();
    ///     let server = l.create_server(|| Echo(None), "127.0.0.1:0").await.unwrap();
    ///     println!("listening on {:?}", server.sockets());
    ///     server.close();
    /// })
    /// .unwrap();
    /// ```
    pub async fn create_server<P, F>(
        &self,
        factory: F,
        addr: impl ToSocketAddrs,
    ) -> io::Result<Server>
    where
        P: Protocol,
        F: FnMut() -> P + 'static,
    {
        self.create_server_with(factory, addr, ServerOptions::default())
            .await
    }

    /// [`EventLoop::create_server`] with options.
    pub async fn create_server_with<P, F>(
        &self,
        mut factory: F,
        addr: impl ToSocketAddrs,
        options: ServerOptions,
    ) -> io::Result<Server>
    where
        P: Protocol,
        F: FnMut() -> P + 'static,
    {
        let addrs = resolve(addr).await?;
        let factory: server::ProtocolFactory =
            Box::new(move || ProtocolRef::Stream(Rc::new(RefCell::new(factory()))));
        self.serve_addrs(&addrs, factory, &options)
    }

    /// As [`EventLoop::create_server`] for a [`BufferedProtocol`].
    pub async fn create_server_buffered<P, F>(
        &self,
        mut factory: F,
        addr: impl ToSocketAddrs,
    ) -> io::Result<Server>
    where
        P: BufferedProtocol,
        F: FnMut() -> P + 'static,
    {
        let addrs = resolve(addr).await?;
        let factory: server::ProtocolFactory =
            Box::new(move || ProtocolRef::Buffered(Rc::new(RefCell::new(factory()))));
        self.serve_addrs(&addrs, factory, &ServerOptions::default())
    }

    fn serve_addrs(
        &self,
        addrs: &[SocketAddr],
        factory: server::ProtocolFactory,
        options: &ServerOptions,
    ) -> io::Result<Server> {
        let mut fds = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let fd = listen_on(
                domain_of(addr),
                &RawAddr::from(*addr),
                options.backlog,
                options.reuse_address,
                options.reuse_port,
            )
            .map_err(|e| with_context(e, "bind/listen on", addr))?;
            fds.push(fd);
        }
        let server = Server::new(self, StreamKind::Tcp, fds, factory, None);
        if options.start_serving {
            server.start_serving();
        }
        Ok(server)
    }

    /// asyncio's `create_unix_server`: listens on the Unix socket at `path` (removed
    /// again when the server closes).
    pub async fn create_unix_server<P, F>(
        &self,
        mut factory: F,
        path: impl AsRef<Path>,
    ) -> io::Result<Server>
    where
        P: Protocol,
        F: FnMut() -> P + 'static,
    {
        let path = path.as_ref();
        let fd = listen_on(libc::AF_UNIX, &unix_addr(path)?, 1024, false, false)
            .map_err(|e| with_context(e, "bind/listen on", path.display()))?;
        let factory: server::ProtocolFactory =
            Box::new(move || ProtocolRef::Stream(Rc::new(RefCell::new(factory()))));
        let server = Server::new(
            self,
            StreamKind::Unix,
            vec![fd],
            factory,
            Some(path.to_path_buf()),
        );
        server.start_serving();
        Ok(server)
    }

    /// asyncio's `create_connection`: connects to `addr` (each resolved address in turn)
    /// and returns the transport with its protocol, after `connection_made` ran.
    pub async fn create_connection<P, F>(
        &self,
        factory: F,
        addr: impl ToSocketAddrs,
    ) -> io::Result<(StreamTransport, Rc<RefCell<P>>)>
    where
        P: Protocol,
        F: FnOnce() -> P,
    {
        let socket = connect_tcp(addr).await?;
        let protocol = Rc::new(RefCell::new(factory()));
        let transport =
            StreamTransport::new(self, socket.fd, StreamKind::Tcp, stream_ref(&protocol));
        transport.start();
        Ok((transport, protocol))
    }

    /// As [`EventLoop::create_connection`] for a [`BufferedProtocol`].
    pub async fn create_connection_buffered<P, F>(
        &self,
        factory: F,
        addr: impl ToSocketAddrs,
    ) -> io::Result<(StreamTransport, Rc<RefCell<P>>)>
    where
        P: BufferedProtocol,
        F: FnOnce() -> P,
    {
        let socket = connect_tcp(addr).await?;
        let protocol = Rc::new(RefCell::new(factory()));
        let transport = StreamTransport::new(
            self,
            socket.fd,
            StreamKind::Tcp,
            ProtocolRef::Buffered(protocol.clone()),
        );
        transport.start();
        Ok((transport, protocol))
    }

    /// asyncio's `connect_accepted_socket`: adopts a connection accepted elsewhere (by
    /// `std::net::TcpListener`, or another loop's [`TcpListener`] turned into a std socket
    /// with [`TcpStream::into_std`]) as a transport of this loop, with a protocol from
    /// `factory`, after `connection_made` ran. With one acceptor loop, this is how the
    /// others take their share.
    ///
    /// The socket is switched to blocking mode (the engines never block on it: io_uring
    /// waits in the kernel, the epoll engine uses `MSG_DONTWAIT`) and gets `TCP_NODELAY`,
    /// as accepted connections do.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use ringloop::{Protocol, StreamTransport, get_running_loop};
    ///
    /// struct Echo(Option<StreamTransport>);
    /// impl Protocol for Echo {
    ///     fn connection_made(&mut self, t: &StreamTransport) { self.0 = Some(t.clone()); }
    ///     fn data_received(&mut self, d: &[u8]) { let _ = self.0.as_ref().unwrap().write(d); }
    /// }
    ///
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = listener.local_addr().unwrap();
    /// let client = std::thread::spawn(move || {
    ///     let mut c = std::net::TcpStream::connect(addr).unwrap();
    ///     c.write_all(b"ping").unwrap();
    ///     let mut back = [0; 4];
    ///     c.read_exact(&mut back).unwrap();
    ///     back
    /// });
    /// let (accepted, _) = listener.accept().unwrap();
    /// ringloop::run(async move {
    ///     let l = get_running_loop().unwrap();
    ///     let (transport, _) = l.connect_accepted_socket(|| Echo(None), accepted).unwrap();
    ///     while !client.is_finished() {
    ///         ringloop::sleep(std::time::Duration::from_millis(1)).await;
    ///     }
    ///     transport.close();
    ///     assert_eq!(&client.join().unwrap(), b"ping");
    /// })
    /// .unwrap();
    /// ```
    pub fn connect_accepted_socket<P, F>(
        &self,
        factory: F,
        sock: std::net::TcpStream,
    ) -> io::Result<(StreamTransport, Rc<RefCell<P>>)>
    where
        P: Protocol,
        F: FnOnce() -> P,
    {
        let protocol = Rc::new(RefCell::new(factory()));
        let transport = self.adopt_stream(sock, stream_ref(&protocol))?;
        Ok((transport, protocol))
    }

    /// As [`EventLoop::connect_accepted_socket`] for a [`BufferedProtocol`].
    pub fn connect_accepted_socket_buffered<P, F>(
        &self,
        factory: F,
        sock: std::net::TcpStream,
    ) -> io::Result<(StreamTransport, Rc<RefCell<P>>)>
    where
        P: BufferedProtocol,
        F: FnOnce() -> P,
    {
        let protocol = Rc::new(RefCell::new(factory()));
        let transport = self.adopt_stream(sock, ProtocolRef::Buffered(protocol.clone()))?;
        Ok((transport, protocol))
    }

    fn adopt_stream(
        &self,
        sock: std::net::TcpStream,
        protocol: ProtocolRef,
    ) -> io::Result<StreamTransport> {
        sock.set_nonblocking(false)?;
        let _ = sock.set_nodelay(true);
        let fd = crate::fd::SharedFd::new(std::os::fd::OwnedFd::from(sock));
        let transport = StreamTransport::new(self, fd, StreamKind::Tcp, protocol);
        transport.start();
        Ok(transport)
    }

    /// asyncio's `create_unix_connection`.
    pub async fn create_unix_connection<P, F>(
        &self,
        factory: F,
        path: impl AsRef<Path>,
    ) -> io::Result<(StreamTransport, Rc<RefCell<P>>)>
    where
        P: Protocol,
        F: FnOnce() -> P,
    {
        let path = path.as_ref();
        let socket = Socket::new(libc::AF_UNIX, libc::SOCK_STREAM)?;
        socket
            .connect(unix_addr(path)?)
            .await
            .map_err(|e| with_context(e, "connect to", path.display()))?;
        let protocol = Rc::new(RefCell::new(factory()));
        let transport =
            StreamTransport::new(self, socket.fd, StreamKind::Unix, stream_ref(&protocol));
        transport.start();
        Ok((transport, protocol))
    }

    /// asyncio's `create_datagram_endpoint`: a UDP socket bound to `local` (or an
    /// ephemeral port) and, with `remote`, connected to it.
    pub async fn create_datagram_endpoint<P, F>(
        &self,
        factory: F,
        local: Option<&str>,
        remote: Option<&str>,
        options: DatagramOptions,
    ) -> io::Result<(DatagramTransport, Rc<RefCell<P>>)>
    where
        P: DatagramProtocol,
        F: FnOnce() -> P,
    {
        let local = match local {
            Some(a) => Some(resolve(a).await?[0]),
            None => None,
        };
        let remote = match remote {
            Some(a) => Some(resolve(a).await?[0]),
            None => None,
        };
        let domain = match (local, remote) {
            (Some(a), _) | (None, Some(a)) => domain_of(&a),
            (None, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "create_datagram_endpoint needs a local or a remote address",
                ));
            }
        };
        let socket = Socket::new(domain, libc::SOCK_DGRAM)?;
        if options.reuse_port {
            socket.set_opt(libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        }
        if options.allow_broadcast {
            socket.set_opt(libc::SOL_SOCKET, libc::SO_BROADCAST, 1)?;
        }
        if let Some(addr) = local {
            crate::sys::socket::bind_raw(socket.raw(), &RawAddr::from(addr))
                .map_err(|e| with_context(e, "bind", addr))?;
        }
        if let Some(addr) = remote {
            socket
                .connect(RawAddr::from(addr))
                .await
                .map_err(|e| with_context(e, "connect to", addr))?;
        }
        let protocol = Rc::new(RefCell::new(factory()));
        let transport = DatagramTransport::new(self, socket.fd, remote, protocol.clone());
        transport.start();
        Ok((transport, protocol))
    }

    /// asyncio's `sock_accept` on a listening socket.
    pub async fn sock_accept(&self, sock: &Fd) -> io::Result<(Fd, Option<SocketAddr>)> {
        let (fd, addr) = Socket { fd: sock.shared() }.accept().await?;
        Ok((Fd::from(fd), addr.to_socket_addr()))
    }

    /// asyncio's `sock_connect`.
    pub async fn sock_connect(&self, sock: &Fd, addr: SocketAddr) -> io::Result<()> {
        Socket { fd: sock.shared() }
            .connect(RawAddr::from(addr))
            .await
            .map_err(|e| with_context(e, "connect to", addr))
    }

    /// asyncio's `sock_recv` / `sock_recv_into`: one receive into `buf`.
    pub async fn sock_recv<B: IoBufMut>(&self, sock: &Fd, buf: B) -> (io::Result<usize>, B) {
        Socket { fd: sock.shared() }.recv(buf).await
    }

    /// asyncio's `sock_recv_into` (the same as [`EventLoop::sock_recv`] with owned buffers).
    pub async fn sock_recv_into<B: IoBufMut>(&self, sock: &Fd, buf: B) -> (io::Result<usize>, B) {
        self.sock_recv(sock, buf).await
    }

    /// asyncio's `sock_sendall`.
    pub async fn sock_sendall<B: IoBuf>(&self, sock: &Fd, buf: B) -> (io::Result<()>, B) {
        Socket { fd: sock.shared() }.send_all(buf).await
    }

    /// asyncio's `sock_recvfrom`.
    pub async fn sock_recvfrom<B: IoBufMut>(
        &self,
        sock: &Fd,
        buf: B,
    ) -> (io::Result<(usize, Option<SocketAddr>)>, B) {
        let (res, buf) = Socket { fd: sock.shared() }.recv_from(buf).await;
        (res.map(|r| (r.len, r.addr.to_socket_addr())), buf)
    }

    /// asyncio's `sock_sendto`.
    pub async fn sock_sendto<B: IoBuf>(
        &self,
        sock: &Fd,
        buf: B,
        addr: SocketAddr,
    ) -> (io::Result<usize>, B) {
        Socket { fd: sock.shared() }
            .send_to(buf, Some(RawAddr::from(addr)))
            .await
    }
}

async fn connect_tcp(addr: impl ToSocketAddrs) -> io::Result<Socket> {
    let described = addr.to_target().describe();
    let addrs = resolve(addr).await?;
    let mut last_err = None;
    for a in addrs {
        let socket = Socket::new(domain_of(&a), libc::SOCK_STREAM)?;
        match socket.connect(RawAddr::from(a)).await {
            Ok(()) => {
                let _ = socket.set_opt(libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
                return Ok(socket);
            }
            Err(e) => last_err = Some(with_context(e, "connect to", a)),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other(format!("connect to {described}: no address"))))
}
