//! The address forms every address-taking entry point accepts: one trait,
//! [`ToSocketAddrs`], as `std::net::ToSocketAddrs` or tokio's.
//!
//! Implemented for `&str` and `String` (`"127.0.0.1:80"`, `"[::1]:0"`, `"localhost:80"`),
//! [`SocketAddr`] (and the V4/V6 kinds), `(IpAddr, u16)` (and the V4/V6 kinds),
//! `(&str, u16)` / `(String, u16)` (asyncio's `host, port`), and slices/`Vec`s of
//! `SocketAddr`. Numeric forms are used as they are; host names are resolved on the
//! loop's default executor by the async entry points, so the loop never blocks on DNS
//! (the synchronous `bind`s resolve in place, as `std` does).
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr, SocketAddr};
//! use ringloop::net::TcpListener;
//!
//! ringloop::run(async {
//!     let by_str = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let by_addr = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
//!     let by_pair = TcpListener::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0)).unwrap();
//!     let by_host = TcpListener::bind(("127.0.0.1", 0)).unwrap();
//!     let port = by_str.local_addr().unwrap().port();
//!     let stream = ringloop::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
//!     drop((stream, by_addr, by_pair, by_host));
//! })
//! .unwrap();
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What an address form comes to before any lookup.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum AddrTarget {
    /// Numeric addresses, ready.
    Addrs(Vec<SocketAddr>),
    /// `host:port` with a host name to resolve.
    Name(String),
}

/// Something that names one or more socket addresses; see the [module docs](self).
pub trait ToSocketAddrs {
    /// The addresses, or the name to resolve (an implementation detail of the entry
    /// points; call [`resolve`](super::resolve) to get addresses).
    #[doc(hidden)]
    fn to_target(&self) -> AddrTarget;
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_target(&self) -> AddrTarget {
        (**self).to_target()
    }
}

impl ToSocketAddrs for str {
    fn to_target(&self) -> AddrTarget {
        match self.parse::<SocketAddr>() {
            Ok(a) => AddrTarget::Addrs(vec![a]),
            Err(_) => AddrTarget::Name(self.to_string()),
        }
    }
}

impl ToSocketAddrs for String {
    fn to_target(&self) -> AddrTarget {
        self.as_str().to_target()
    }
}

impl ToSocketAddrs for SocketAddr {
    fn to_target(&self) -> AddrTarget {
        AddrTarget::Addrs(vec![*self])
    }
}

impl ToSocketAddrs for SocketAddrV4 {
    fn to_target(&self) -> AddrTarget {
        AddrTarget::Addrs(vec![SocketAddr::V4(*self)])
    }
}

impl ToSocketAddrs for SocketAddrV6 {
    fn to_target(&self) -> AddrTarget {
        AddrTarget::Addrs(vec![SocketAddr::V6(*self)])
    }
}

impl ToSocketAddrs for (IpAddr, u16) {
    fn to_target(&self) -> AddrTarget {
        AddrTarget::Addrs(vec![SocketAddr::new(self.0, self.1)])
    }
}

impl ToSocketAddrs for (Ipv4Addr, u16) {
    fn to_target(&self) -> AddrTarget {
        AddrTarget::Addrs(vec![SocketAddr::from(*self)])
    }
}

impl ToSocketAddrs for (Ipv6Addr, u16) {
    fn to_target(&self) -> AddrTarget {
        AddrTarget::Addrs(vec![SocketAddr::from(*self)])
    }
}

fn host_port(host: &str, port: u16) -> AddrTarget {
    // A bracketed IPv6 literal is accepted too, as in "[::1]:80".
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => AddrTarget::Addrs(vec![SocketAddr::new(ip, port)]),
        Err(_) => AddrTarget::Name(format!("{host}:{port}")),
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_target(&self) -> AddrTarget {
        host_port(self.0, self.1)
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_target(&self) -> AddrTarget {
        host_port(&self.0, self.1)
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn to_target(&self) -> AddrTarget {
        AddrTarget::Addrs(self.to_vec())
    }
}

impl ToSocketAddrs for Vec<SocketAddr> {
    fn to_target(&self) -> AddrTarget {
        AddrTarget::Addrs(self.clone())
    }
}

impl AddrTarget {
    /// For errors: what the caller asked for.
    pub(crate) fn describe(&self) -> String {
        match self {
            AddrTarget::Addrs(a) if a.len() == 1 => a[0].to_string(),
            AddrTarget::Addrs(a) => format!("{a:?}"),
            AddrTarget::Name(n) => n.clone(),
        }
    }
}

/// Resolves in place (blocking on a host name, as `std::net`): for the synchronous
/// `bind`s.
pub(crate) fn resolve_blocking(addr: &impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs = match addr.to_target() {
        AddrTarget::Addrs(a) => a,
        AddrTarget::Name(n) => std::net::ToSocketAddrs::to_socket_addrs(n.as_str())
            .map_err(|e| super::with_context(e, "resolve", &n))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no socket address given",
        ));
    }
    Ok(addrs)
}
