//! Bad input: unparseable addresses, a closed port, a used port, writing after close.
//! Each is an `io::Error` whose message names the address, and a connection already open
//! on the same loop keeps working through all of them.

mod util;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;

use ringloop::net::{DatagramOptions, TcpListener, TcpStream, UdpSocket, UnixStream};
use ringloop::{DatagramProtocol, get_running_loop};
use util::*;

struct NoDg;

/// `unwrap_err` for results whose success type is not `Debug`.
trait ErrOf {
    fn err_of(self) -> std::io::Error;
}

impl<T> ErrOf for std::io::Result<T> {
    fn err_of(self) -> std::io::Error {
        match self {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }
}
impl DatagramProtocol for NoDg {}

/// A round trip on a connection that must not be disturbed.
async fn still_works(s: &TcpStream, round: u8) {
    let (res, _) = s.write_all(vec![round; 100]).await;
    res.unwrap();
    let mut got = Vec::new();
    while got.len() < 100 {
        let (res, buf) = s.read(Vec::with_capacity(100)).await;
        let n = res.unwrap();
        assert!(n > 0, "the bystander connection ended");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, vec![round; 100]);
}

fn assert_names(e: &std::io::Error, what: &str) {
    assert!(
        e.to_string().contains(what),
        "error {e:?} ({e}) does not name {what:?}"
    );
}

/// A port nobody listens on (bound, then closed).
fn closed_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn bad_input_is_a_clear_error_and_disturbs_nothing() {
    run(async {
        let l = get_running_loop().unwrap();
        let errors = count_exceptions();
        let stats = Arc::new(EchoStats::default());
        let s2 = stats.clone();
        let server = l
            .create_server(move || Echo::new(&s2), "127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.sockets()[0];
        let bystander = TcpStream::connect(addr).await.unwrap();
        still_works(&bystander, 1).await;

        // Unparseable addresses.
        for bad in ["nonsense", "127.0.0.1:99999", "127.0.0.1:port", "::1", ""] {
            let e = l
                .create_server(move || Echo::new(&stats_dummy()), bad)
                .await
                .err_of();
            assert_names(&e, bad);
            let e = l
                .create_connection(|| Recorder::new().0, bad)
                .await
                .err_of();
            assert_names(&e, bad);
            let e = l
                .create_datagram_endpoint(|| NoDg, Some(bad), None, DatagramOptions::default())
                .await
                .err_of();
            assert_names(&e, bad);
        }
        let e = l
            .create_datagram_endpoint(|| NoDg, None, None, DatagramOptions::default())
            .await
            .err_of();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        still_works(&bystander, 2).await;

        // A closed port.
        let closed = closed_port();
        let e = TcpStream::connect(closed).await.err_of();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        assert_names(&e, &closed.to_string());
        let e = l
            .create_connection(|| Recorder::new().0, &closed.to_string())
            .await
            .err_of();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        assert_names(&e, &closed.to_string());
        let fd = ringloop::fd::Fd::from(bare_tcp_socket());
        let e = l.sock_connect(&fd, closed).await.err_of();
        assert_names(&e, &closed.to_string());
        let missing = temp_sock_path("missing");
        let e = UnixStream::connect(&missing).await.err_of();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert_names(&e, &missing.to_string_lossy());
        let e = l
            .create_unix_connection(|| Recorder::new().0, &missing)
            .await
            .err_of();
        assert_names(&e, &missing.to_string_lossy());
        still_works(&bystander, 3).await;

        // A used port.
        let e = l
            .create_server(move || Echo::new(&stats_dummy()), &addr.to_string())
            .await
            .err_of();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
        assert_names(&e, &addr.to_string());
        let e = TcpListener::bind(addr).err_of();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
        assert_names(&e, &addr.to_string());
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_addr = udp.local_addr().unwrap();
        let e = UdpSocket::bind(udp_addr).err_of();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
        assert_names(&e, &udp_addr.to_string());
        let e = l
            .create_datagram_endpoint(
                || NoDg,
                Some(&udp_addr.to_string()),
                None,
                DatagramOptions::default(),
            )
            .await
            .err_of();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");
        assert_names(&e, &udp_addr.to_string());
        still_works(&bystander, 4).await;

        // Writing after close.
        let (r, seen) = Recorder::new();
        let (t, _) = l
            .create_connection(move || r, &addr.to_string())
            .await
            .unwrap();
        t.close();
        let e = t.write(b"too late").err_of();
        assert_names(&e, &addr.to_string());
        wait_until(std::time::Duration::from_secs(5), "lost", || seen.lost()).await;
        let e = t.write(b"much too late").err_of();
        assert_names(&e, &addr.to_string());
        let e = t.writelines([&b"a"[..], b"b"]).err_of();
        assert_names(&e, &addr.to_string());
        still_works(&bystander, 5).await;

        drop(bystander);
        server.close();
        ringloop::timeout(std::time::Duration::from_secs(5), server.wait_closed())
            .await
            .unwrap();
        assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
    });
}

fn stats_dummy() -> Arc<EchoStats> {
    Arc::new(EchoStats::default())
}

/// A fresh, unconnected TCP socket (std has no bare socket constructor).
fn bare_tcp_socket() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: socket takes no pointers; on success we own the new fd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: fd is fresh and owned by nobody else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// A host name (`localhost`, from /etc/hosts) is resolved on the loop's default executor,
/// as asyncio's getaddrinfo is, and the connection is made to what it resolves to; once
/// the default executor is shut down a host name is an error naming it, while numeric
/// addresses (never looked up) still connect.
#[test]
fn host_names_are_resolved_on_the_executor() {
    run(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (r, seen) = Recorder::new();
        let l = get_running_loop().unwrap();
        // localhost may resolve to ::1 first where the host has it; 127.0.0.1 is among
        // its addresses and create_connection tries each in turn.
        let by_name = format!("localhost:{port}");
        let (t, _) = l
            .create_connection(move || r, &by_name)
            .await
            .unwrap_or_else(|e| panic!("connect to {by_name}: {e}"));
        let (mut peer, _) = listener.accept().unwrap();
        std::io::Write::write_all(&mut peer, b"hi").unwrap();
        wait_until(std::time::Duration::from_secs(10), "data", || {
            seen.bytes.borrow().len() == 2
        })
        .await;
        assert_eq!(*seen.bytes.borrow(), b"hi");
        t.close();

        l.shutdown_default_executor().await.unwrap();
        let (r, _) = Recorder::new();
        let e = l.create_connection(move || r, &by_name).await.err_of();
        assert!(e.to_string().contains(&by_name), "{e}");
        let (r, _) = Recorder::new();
        let numeric = format!("127.0.0.1:{port}");
        let (t, _) = l.create_connection(move || r, &numeric).await.unwrap();
        t.close();
    });
}
