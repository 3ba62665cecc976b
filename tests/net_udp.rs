//! Datagrams (ASYNCIO_SEMANTICS rule 17): `create_datagram_endpoint` round trips of 0, 1
//! and 65,507 bytes, ICMP port-unreachable reaching `error_received`, `sendto` rules on a
//! connected endpoint, sends after close ignored; the async `UdpSocket`.

mod util;

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ringloop::net::{DatagramOptions, UdpSocket};
use ringloop::{DatagramProtocol, DatagramTransport, get_running_loop, sleep};
use util::*;

const T: Duration = Duration::from_secs(10);
const MAX_V4: usize = 65_507;

#[derive(Default)]
struct DgSeen {
    made: usize,
    datagrams: Vec<(Vec<u8>, Option<SocketAddr>)>,
    errors: Vec<io::Error>,
    lost: Vec<Option<io::Error>>,
}

/// Records everything; echoes each datagram to its sender when `echo` is set.
struct Dg {
    seen: Rc<RefCell<DgSeen>>,
    transport: Option<DatagramTransport>,
    echo: bool,
}

impl Dg {
    fn new(echo: bool) -> (Dg, Rc<RefCell<DgSeen>>) {
        let seen = Rc::new(RefCell::new(DgSeen::default()));
        (
            Dg {
                seen: seen.clone(),
                transport: None,
                echo,
            },
            seen,
        )
    }
}

impl DatagramProtocol for Dg {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.seen.borrow_mut().made += 1;
        self.transport = Some(transport.clone());
    }

    fn datagram_received(&mut self, data: &[u8], addr: Option<SocketAddr>) {
        self.seen.borrow_mut().datagrams.push((data.to_vec(), addr));
        if self.echo
            && let Some(t) = &self.transport
        {
            t.sendto(data, addr).unwrap();
        }
    }

    fn error_received(&mut self, exc: io::Error) {
        self.seen.borrow_mut().errors.push(exc);
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.seen.borrow_mut().lost.push(exc);
        self.transport = None;
    }
}

async fn echo_endpoint(local: &str) -> (DatagramTransport, Rc<RefCell<DgSeen>>) {
    let (p, seen) = Dg::new(true);
    let (t, _) = get_running_loop()
        .unwrap()
        .create_datagram_endpoint(move || p, Some(local), None, DatagramOptions::default())
        .await
        .unwrap();
    (t, seen)
}

fn sizes(max: usize) -> Vec<Vec<u8>> {
    [0usize, 1, 1000, max]
        .iter()
        .enumerate()
        .map(|(i, &n)| pattern(i as u64, n))
        .collect()
}

/// Datagrams of 0, 1, 1,000 and 65,507 bytes go out through a connected endpoint and
/// come back whole from an echo endpoint.
#[test]
fn datagram_round_trips_of_every_size() {
    run(async {
        let (server, server_seen) = echo_endpoint("127.0.0.1:0").await;
        let server_addr = server.local_addr().unwrap();
        let (p, seen) = Dg::new(false);
        let (client, _) = get_running_loop()
            .unwrap()
            .create_datagram_endpoint(
                move || p,
                None,
                Some(&server_addr.to_string()),
                DatagramOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(client.peer_addr(), Some(server_addr));
        let client_addr = client.local_addr().unwrap();
        for d in sizes(MAX_V4) {
            client.sendto(&d, None).unwrap();
            // Round trip one at a time: UDP on loopback keeps order, but be exact.
            let n = seen.borrow().datagrams.len();
            wait_until(T, "the echo", || seen.borrow().datagrams.len() > n).await;
            let got = seen.borrow().datagrams[n].clone();
            assert_eq!(got.0.len(), d.len());
            assert!(got.0 == d, "datagram of {} bytes changed", d.len());
            assert_eq!(got.1, Some(server_addr));
        }
        // The server saw them from the client's address.
        for (_, from) in &server_seen.borrow().datagrams {
            assert_eq!(*from, Some(client_addr));
        }
        // Sending to the connected peer's own address is fine.
        client.sendto(b"named", Some(server_addr)).unwrap();
        client.close();
        server.close();
        wait_until(T, "both lost", || {
            seen.borrow().lost.len() == 1 && server_seen.borrow().lost.len() == 1
        })
        .await;
        assert!(
            seen.borrow().errors.is_empty(),
            "{:?}",
            seen.borrow().errors
        );
        assert_eq!(seen.borrow().made, 1);
    });
}

#[test]
fn datagram_round_trips_ipv6() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    run(async {
        let (server, _server_seen) = echo_endpoint("[::1]:0").await;
        let sock = UdpSocket::bind("[::1]:0").unwrap();
        let to = server.local_addr().unwrap();
        for d in sizes(65_527) {
            let (res, d) = sock.send_to(d, to).await;
            assert_eq!(res.unwrap(), d.len());
            let (res, buf) = sock.recv_from(Vec::with_capacity(70_000)).await;
            let (n, from) = res.unwrap();
            assert_eq!(from, to);
            assert_eq!(n, d.len());
            assert!(buf[..n] == d[..]);
        }
        server.close();
    });
}

/// A connected endpoint whose peer port is closed: the kernel's ICMP port-unreachable
/// reaches `error_received` as ECONNREFUSED, and the endpoint stays open.
#[test]
fn icmp_port_unreachable_reaches_error_received() {
    run(async {
        // A port that was just free (and that nobody listens on now).
        let closed = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (p, seen) = Dg::new(false);
        let (t, _) = get_running_loop()
            .unwrap()
            .create_datagram_endpoint(
                move || p,
                Some("127.0.0.1:0"),
                Some(&closed.to_string()),
                DatagramOptions::default(),
            )
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + T;
        while seen.borrow().errors.is_empty() {
            assert!(std::time::Instant::now() < deadline, "no error_received");
            t.sendto(b"anyone?", None).unwrap();
            sleep(Duration::from_millis(20)).await;
        }
        let code = seen.borrow().errors[0].raw_os_error();
        assert_eq!(code, Some(libc::ECONNREFUSED), "{:?}", seen.borrow().errors);
        assert!(!t.is_closing());
        assert!(seen.borrow().lost.is_empty());
        // Still usable: reconnecting is not possible, but sending goes on without panics.
        t.sendto(b"again", None).unwrap();
        t.close();
        wait_until(T, "lost", || seen.borrow().lost.len() == 1).await;
        assert!(seen.borrow().lost[0].is_none());
    });
}

/// On a connected endpoint, `sendto` another address is an error naming both; on an
/// unconnected one, `sendto` without an address is an error. After `close` sends are
/// ignored and `connection_lost` comes once.
#[test]
fn sendto_rules_and_sends_after_close() {
    run(async {
        let (server, server_seen) = echo_endpoint("127.0.0.1:0").await;
        let server_addr = server.local_addr().unwrap();
        let (p, seen) = Dg::new(false);
        let (t, _) = get_running_loop()
            .unwrap()
            .create_datagram_endpoint(
                move || p,
                None,
                Some(&server_addr.to_string()),
                DatagramOptions::default(),
            )
            .await
            .unwrap();
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = t.sendto(b"x", Some(other)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(
            msg.contains("127.0.0.1:9") && msg.contains(&server_addr.to_string()),
            "{msg}"
        );
        let e = server.sendto(b"x", None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);

        t.sendto(b"before", None).unwrap();
        wait_until(T, "the echo", || seen.borrow().datagrams.len() == 1).await;
        t.close();
        t.close();
        assert!(t.is_closing());
        t.sendto(b"after close", None).unwrap();
        t.abort();
        sleep(Duration::from_millis(50)).await;
        assert_eq!(
            server_seen.borrow().datagrams.len(),
            1,
            "a send after close left"
        );
        assert_eq!(seen.borrow().lost.len(), 1);
        server.close();
    });
}

/// The async `UdpSocket`: `send_to`/`recv_from` between two sockets, a connected pair's
/// `send`/`recv`, and truncation reported.
#[test]
fn async_udp_socket() {
    run(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        for d in sizes(MAX_V4) {
            let (res, d) = a.send_to(d, ba).await;
            assert_eq!(res.unwrap(), d.len());
            let (res, buf) = b.recv_from(Vec::with_capacity(MAX_V4)).await;
            let (n, from) = res.unwrap();
            assert_eq!((n, from), (d.len(), aa));
            assert!(buf[..n] == d[..]);
        }
        a.connect(ba).await.unwrap();
        b.connect(aa).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), ba);
        let (res, _) = a.send(b"connected".to_vec()).await;
        assert_eq!(res.unwrap(), 9);
        let (res, buf) = b.recv(Vec::with_capacity(64)).await;
        assert_eq!(&buf[..res.unwrap()], b"connected");
        let (res, _) = b.send(vec![7u8; 100]).await;
        res.unwrap();
        let (res, buf) = a.recv_from_truncated(Vec::with_capacity(10)).await;
        let (n, from, truncated) = res.unwrap();
        assert_eq!((n, from, truncated), (10, ba, true));
        assert_eq!(buf, vec![7u8; 10]);
    });
}

/// Replies three 30 KB datagrams to each one it receives.
#[derive(Default)]
struct Burst {
    transport: Option<DatagramTransport>,
    received: usize,
    paused: usize,
    resumed: usize,
}

impl DatagramProtocol for Burst {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
    }

    fn datagram_received(&mut self, _data: &[u8], addr: Option<SocketAddr>) {
        self.received += 1;
        let t = self.transport.as_ref().unwrap();
        for _ in 0..3 {
            t.sendto(&[5u8; 30_000], addr).unwrap();
        }
    }

    fn pause_writing(&mut self) {
        self.paused += 1;
    }

    fn resume_writing(&mut self) {
        self.resumed += 1;
    }
}

/// Replies from inside `datagram_received` that pass the high mark: `pause_writing` must
/// reach the protocol even though it is busy in that callback (it once panicked on the
/// protocol's RefCell and left the endpoint deaf), and the endpoint keeps receiving.
#[test]
fn sendto_past_high_mark_inside_a_callback() {
    run(async {
        let errors = count_exceptions();
        let l = get_running_loop().unwrap();
        let (server, burst) = l
            .create_datagram_endpoint(
                Burst::default,
                Some("127.0.0.1:0"),
                None,
                DatagramOptions::default(),
            )
            .await
            .unwrap();
        let to = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_recv_buffer_size(4 << 20).unwrap();
        for round in 1..=5 {
            let (res, _) = client.send_to(vec![round as u8], to).await;
            res.unwrap();
            for _ in 0..3 {
                let (res, _) = ringloop::timeout(T, client.recv_from(Vec::with_capacity(40_000)))
                    .await
                    .expect("a reply in time");
                assert_eq!(res.unwrap().0, 30_000);
            }
            assert_eq!(burst.borrow().received, round);
        }
        wait_until(T, "resume_writing", || {
            let b = burst.borrow();
            b.paused > 0 && b.paused == b.resumed
        })
        .await;
        assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
        server.close();
    });
}

/// A burst of datagrams queued before the endpoint receives any (more than the loop's
/// datagram buffer ring holds, so a multishot receive runs dry and is re-armed) arrives
/// whole, in order, from the right sender; on io_uring one receive SQE reaps many
/// datagrams, so the loop enters the kernel far fewer times than there are datagrams.
/// Closing with the receive in flight leaks no fd.
#[test]
fn a_burst_of_datagrams_arrives_in_order() {
    const N: usize = 100;
    run(async {
        let l = get_running_loop().unwrap();
        let (p, seen) = Dg::new(false);
        let (server, _) = l
            .create_datagram_endpoint(
                move || p,
                Some("127.0.0.1:0"),
                None,
                DatagramOptions::default(),
            )
            .await
            .unwrap();
        let server_addr = server.local_addr().unwrap();
        // The socket's identity ("socket:[inode]"): other tests of this binary open and
        // close fds meanwhile, so the number alone or the fd count would not say.
        let fd_link = format!("/proc/self/fd/{}", server.fd());
        let socket_id = std::fs::read_link(&fd_link).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender_addr = sender.local_addr().unwrap();
        let sent: Vec<Vec<u8>> = (0..N).map(|i| pattern(i as u64, 64)).collect();
        let enters_before = l.driver_stats().enters;
        // Blocking sends on loopback: all N are queued on the endpoint's socket before
        // the loop runs again.
        for d in &sent {
            assert_eq!(sender.send_to(d, server_addr).unwrap(), d.len());
        }
        wait_until(T, "every datagram", || seen.borrow().datagrams.len() == N).await;
        let enters = l.driver_stats().enters - enters_before;
        for (i, (got, from)) in seen.borrow().datagrams.iter().enumerate() {
            assert!(*got == sent[i], "datagram {i} changed or out of order");
            assert_eq!(*from, Some(sender_addr));
        }
        if l.engine() == ringloop::Engine::Uring {
            assert!(
                enters < (N / 2) as u64,
                "{enters} io_uring_enter calls for {N} queued datagrams"
            );
        }
        server.close();
        wait_until(T, "connection_lost", || seen.borrow().lost.len() == 1).await;
        drop(sender);
        // The fd closes once the cancelled receive's last completion is in.
        wait_until(T, "the endpoint's fd closed", || {
            std::fs::read_link(&fd_link).ok().as_ref() != Some(&socket_id)
        })
        .await;
        assert!(
            seen.borrow().errors.is_empty(),
            "{:?}",
            seen.borrow().errors
        );
    });
}

/// `set_write_buffer_limits` on a datagram endpoint judges what is already queued, as
/// asyncio's does: lowering the high mark under the queued bytes pauses the protocol at
/// once, and it resumes when the sends complete. Limits read back as `(low, high)`; a
/// high mark under the low one is refused and changes nothing.
#[test]
fn datagram_limits_judge_what_is_queued() {
    run(async {
        let l = get_running_loop().unwrap();
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = sink.local_addr().unwrap();
        let (t, burst) = l
            .create_datagram_endpoint(
                Burst::default,
                Some("127.0.0.1:0"),
                None,
                DatagramOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        // Queued in one go: no send can complete before the loop turns.
        for _ in 0..10 {
            t.sendto(&[7u8; 1000], Some(to)).unwrap();
        }
        assert_eq!(t.get_write_buffer_size(), 10_000);
        assert_eq!(burst.borrow().paused, 0, "under the default marks");
        assert!(t.set_write_buffer_limits(Some(10), Some(20)).is_err());
        assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        t.set_write_buffer_limits(Some(5000), None).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (1250, 5000));
        assert_eq!(burst.borrow().paused, 1, "paused by the new marks, at once");
        wait_until(T, "resume_writing", || burst.borrow().resumed == 1).await;
        assert_eq!(t.get_write_buffer_size(), 0);
        let mut buf = [0u8; 2000];
        for _ in 0..10 {
            assert_eq!(sink.recv(&mut buf).unwrap(), 1000);
        }
        t.close();
    });
}
