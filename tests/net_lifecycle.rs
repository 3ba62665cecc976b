//! A stream connection's life, as asyncio pins it down (ASYNCIO_SEMANTICS rules 10–13,
//! 16): half-close both ways, `write_eof` after the send in flight, `abort` resets the
//! peer, `connection_lost` exactly once and last, `eof_received`'s answer, `close` flushes.

mod util;

use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use ringloop::net::TcpStream;
use ringloop::{get_running_loop, sleep};
use util::*;

const T: Duration = Duration::from_secs(10);

/// Client `shutdown(Write)` → server `eof_received` → the server echoes what remains plus
/// a last word, and (returning false) closes after flushing.
#[test]
fn client_half_close_server_finishes_and_closes() {
    run(async {
        let (server, list) = recorder_server(|r| {
            r.on_data = Some(Box::new(|t, data| t.write(data).unwrap()));
            r.on_eof = Some(Box::new(|t| t.write(b" bye").unwrap()));
        })
        .await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        let (res, _) = client.write_all(b"hello world".to_vec()).await;
        res.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let got = read_to_end(&client).await.map_err(|(e, _)| e).unwrap();
        assert_eq!(got, b"hello world bye");
        let seen = accepted(&list, 0).await;
        wait_until(T, "server connection_lost", || seen.lost()).await;
        seen.assert_order();
        let ev = seen.events();
        assert!(ev.contains(&Ev::Eof), "{ev:?}");
        assert_eq!(ev.last(), Some(&Ev::Lost(None)), "{ev:?}");
        server.close();
        server.wait_closed().await;
    });
}

/// `write_eof` right after a large write: the shutdown happens only once every byte of
/// the send in flight (and the backlog) has left (rule 13); the read side stays open.
#[test]
fn server_write_eof_after_data_in_flight() {
    const LEN: usize = 4 << 20;
    run(async {
        let (server, list) = recorder_server(|r| {
            r.on_made = Some(Box::new(|t| {
                assert!(t.can_write_eof());
                t.write(&pattern(3, LEN)).unwrap();
                t.write_eof().unwrap();
                // Writing after write_eof is an error; a second write_eof is not.
                assert!(t.write(b"x").is_err());
                t.write_eof().unwrap();
            }));
        })
        .await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        // Let the server's send fill the socket buffers and stay in flight a while.
        sleep(Duration::from_millis(100)).await;
        let seen = accepted(&list, 0).await;
        assert!(seen.transport().get_write_buffer_size() > 0);
        let got = read_to_end(&client).await.map_err(|(e, _)| e).unwrap();
        let mut v = Verifier::new(3);
        v.feed(&got);
        v.assert_complete(LEN as u64, "data before the server's EOF");
        // Our write side is still open, and so is the server's read side.
        let (res, _) = client.write_all(b"after".to_vec()).await;
        res.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        wait_until(T, "server connection_lost", || seen.lost()).await;
        seen.assert_order();
        assert_eq!(&*seen.bytes.borrow(), b"after");
        assert_eq!(seen.events().last(), Some(&Ev::Lost(None)));
        server.close();
        server.wait_closed().await;
    });
}

/// `abort()` drops the buffer and resets the peer, whose read fails with ECONNRESET;
/// `close`/`abort` afterwards change nothing and `connection_lost` comes once, last.
#[test]
fn abort_resets_the_peer() {
    run(async {
        let errors = count_exceptions();
        let (server, list) = recorder_server(|r| {
            r.on_data = Some(Box::new(|t, _| {
                t.write(&[1u8; 100_000]).unwrap();
                t.abort();
                assert!(t.is_closing());
                assert!(t.write(b"late").is_err());
                t.close();
                t.abort();
                t.close();
            }));
        })
        .await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        let (res, _) = client.write_all(b"x".to_vec()).await;
        res.unwrap();
        let err = match read_to_end(&client).await {
            Ok(got) => panic!("expected a reset, got {} bytes and EOF", got.len()),
            Err((e, got)) => {
                assert!(got.is_empty(), "the aborted buffer was sent");
                e
            }
        };
        assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET), "{err}");
        let seen = accepted(&list, 0).await;
        wait_until(T, "server connection_lost", || seen.lost()).await;
        sleep(Duration::from_millis(20)).await;
        seen.assert_order();
        assert_eq!(seen.events(), vec![Ev::Made, Ev::Data(1), Ev::Lost(None)]);
        assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
        server.close();
        server.wait_closed().await;
    });
}

/// A peer's reset ends the connection with `connection_lost(Some(ECONNRESET))`, and is
/// not reported as a fatal error (rule 16).
#[test]
fn peer_reset_is_connection_lost_with_error() {
    run(async {
        let errors = count_exceptions();
        let (server, list) = recorder_server(|r| {
            r.on_data = Some(Box::new(|t, data| t.write(data).unwrap()));
        })
        .await;
        let l = get_running_loop().unwrap();
        let (t, _) = {
            let (r, seen) = Recorder::new();
            let (t, p) = l
                .create_connection(move || r, &server.sockets()[0].to_string())
                .await
                .unwrap();
            (t, (p, seen))
        };
        t.write(b"ping").unwrap();
        let seen = accepted(&list, 0).await;
        wait_until(T, "the echo", || seen.bytes.borrow().len() == 4).await;
        sleep(Duration::from_millis(20)).await;
        t.abort();
        wait_until(T, "server connection_lost", || seen.lost()).await;
        seen.assert_order();
        assert_eq!(
            seen.events().last(),
            Some(&Ev::Lost(Some(libc::ECONNRESET)))
        );
        assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
        server.close();
        server.wait_closed().await;
    });
}

/// `close()` twice, then `abort()` twice, on both ends: one `connection_lost`, last.
#[test]
fn connection_lost_once_after_repeated_close_and_abort() {
    run(async {
        let (server, list) = recorder_server(|r| {
            r.on_data = Some(Box::new(|t, _| {
                t.close();
                t.close();
                t.abort();
                t.abort();
            }));
        })
        .await;
        let l = get_running_loop().unwrap();
        let (r, client_seen) = Recorder::new();
        let (t, _p) = l
            .create_connection(move || r, &server.sockets()[0].to_string())
            .await
            .unwrap();
        assert_eq!(client_seen.events(), vec![Ev::Made]);
        t.write(b"hi").unwrap();
        let seen = accepted(&list, 0).await;
        wait_until(T, "server connection_lost", || seen.lost()).await;
        wait_until(T, "client connection_lost", || client_seen.lost()).await;
        t.close();
        t.abort();
        t.close();
        sleep(Duration::from_millis(30)).await;
        seen.assert_order();
        client_seen.assert_order();
        assert_eq!(seen.events(), vec![Ev::Made, Ev::Data(2), Ev::Lost(None)]);
        // The client saw the server's FIN: eof_received (false) closed it cleanly.
        assert_eq!(
            client_seen.events(),
            vec![Ev::Made, Ev::Eof, Ev::Lost(None)]
        );
        server.close();
        server.wait_closed().await;
    });
}

/// `eof_received` returning true keeps the write side open: the server answers later.
#[test]
fn eof_received_true_keeps_writing_possible() {
    run(async {
        let (server, list) = recorder_server(|r| {
            r.keep_open_on_eof = true;
            r.on_eof = Some(Box::new(|t| {
                let t = t.clone();
                get_running_loop()
                    .unwrap()
                    .call_later(Duration::from_millis(50), move || {
                        t.write(b"late reply").unwrap();
                        t.close();
                    });
            }));
        })
        .await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        let (res, _) = client.write_all(b"q".to_vec()).await;
        res.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let got = read_to_end(&client).await.map_err(|(e, _)| e).unwrap();
        assert_eq!(got, b"late reply");
        let seen = accepted(&list, 0).await;
        wait_until(T, "server connection_lost", || seen.lost()).await;
        seen.assert_order();
        assert_eq!(
            seen.events(),
            vec![Ev::Made, Ev::Data(1), Ev::Eof, Ev::Lost(None)]
        );
        server.close();
        server.wait_closed().await;
    });
}

/// `eof_received` returning false closes the transport; writing afterwards is an error.
#[test]
fn eof_received_false_closes() {
    run(async {
        let (server, list) = recorder_server(|_| {}).await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let got = read_to_end(&client).await.map_err(|(e, _)| e).unwrap();
        assert!(got.is_empty());
        let seen = accepted(&list, 0).await;
        wait_until(T, "server connection_lost", || seen.lost()).await;
        assert_eq!(seen.events(), vec![Ev::Made, Ev::Eof, Ev::Lost(None)]);
        let t = seen.transport();
        assert!(t.is_closing());
        assert!(t.write(b"x").is_err());
        server.close();
        server.wait_closed().await;
    });
}

/// `close()` with a large buffer flushes everything first; `connection_lost(None)` comes
/// with an empty write buffer, and the peer reads every byte before EOF (rule 12).
#[test]
fn close_flushes_buffered_data_first() {
    const LEN: usize = 8 << 20;
    run(async {
        let (server, list) = recorder_server(|r| {
            r.on_made = Some(Box::new(|t| {
                t.write(&pattern(9, LEN / 2)).unwrap();
                t.writelines([&pattern(9, LEN)[LEN / 2..]]).unwrap();
                t.close();
                assert!(t.is_closing());
                assert!(!t.is_reading());
            }));
        })
        .await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        sleep(Duration::from_millis(100)).await;
        let seen = accepted(&list, 0).await;
        assert!(!seen.lost(), "lost before the buffer left");
        let got = read_to_end(&client).await.map_err(|(e, _)| e).unwrap();
        let mut v = Verifier::new(9);
        v.feed(&got);
        v.assert_complete(LEN as u64, "flushed data");
        wait_until(T, "server connection_lost", || seen.lost()).await;
        seen.assert_order();
        assert_eq!(seen.events().last(), Some(&Ev::Lost(None)));
        assert_eq!(seen.count(|e| matches!(e, Ev::Data(_) | Ev::Eof)), 0);
        assert_eq!(seen.size_at_lost.get(), Some(0));
        server.close();
        server.wait_closed().await;
    });
}

/// The transport's extra info names both ends; `get_protocol`/`set_protocol` swap the
/// protocol that later callbacks reach.
#[test]
fn extra_info_and_set_protocol() {
    run(async {
        let (server, list) = recorder_server(|_| {}).await;
        let addr = server.sockets()[0];
        let client = TcpStream::connect(addr).await.unwrap();
        let seen = accepted(&list, 0).await;
        let t = seen.transport();
        use ringloop::transport::ExtraInfo;
        assert_eq!(t.get_extra_info("sockname"), Some(ExtraInfo::Addr(addr)));
        assert_eq!(
            t.get_extra_info("peername"),
            Some(ExtraInfo::Addr(client.local_addr().unwrap()))
        );
        assert!(matches!(t.get_extra_info("socket"), Some(ExtraInfo::Fd(_))));
        assert_eq!(t.get_extra_info("nonsense"), None);
        assert!(t.get_protocol().is_some());
        let (r2, seen2) = Recorder::new();
        t.set_protocol(Rc::new(std::cell::RefCell::new(r2)));
        let (res, _) = client.write_all(b"to the new one".to_vec()).await;
        res.unwrap();
        wait_until(T, "data at the new protocol", || {
            seen2.bytes.borrow().len() == 14
        })
        .await;
        assert!(seen.bytes.borrow().is_empty());
        drop(client);
        wait_until(T, "lost at the new protocol", || seen2.lost()).await;
        assert!(!seen.lost());
        // The addresses outlive the fd (its number may already name another file).
        assert_eq!(t.get_extra_info("sockname"), Some(ExtraInfo::Addr(addr)));
        assert_eq!(t.local_addr().unwrap(), addr);
        server.close();
        server.wait_closed().await;
    });
}

/// `Server.close()` stops accepting but leaves open connections alone; `wait_closed`
/// returns only once they are gone (rule 18). `start_serving: false` defers accepting;
/// `serve_forever` returns when the server closes; `reuse_port` lets two servers share
/// a port.
#[test]
fn server_close_leaves_connections_alone() {
    use ringloop::net::ServerOptions;
    run(async {
        let l = get_running_loop().unwrap();
        let stats = std::sync::Arc::new(EchoStats::default());
        let s2 = stats.clone();
        let server = l
            .create_server_with(
                move || Echo::new(&s2),
                "127.0.0.1:0",
                ServerOptions {
                    start_serving: false,
                    reuse_port: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(!server.is_serving());
        let addr = server.sockets()[0];
        let s3 = stats.clone();
        let twin = l
            .create_server_with(
                move || Echo::new(&s3),
                &addr.to_string(),
                ServerOptions {
                    reuse_port: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(twin.sockets(), vec![addr]);
        twin.close();
        twin.wait_closed().await;

        let forever = ringloop::spawn({
            let server = server.clone();
            async move { server.serve_forever().await }
        });
        sleep(Duration::from_millis(10)).await;
        assert!(server.is_serving());
        let client = TcpStream::connect(addr).await.unwrap();
        let (res, _) = client.write_all(b"one".to_vec()).await;
        res.unwrap();
        let (res, buf) = client.read(Vec::with_capacity(8)).await;
        assert_eq!(&buf[..res.unwrap()], b"one");
        assert_eq!(server.active_connections(), 1);

        server.close();
        assert!(!server.is_serving());
        ringloop::timeout(T, forever).await.unwrap().unwrap();
        // New connections are refused; the open one still echoes.
        let e = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        let (res, _) = client.write_all(b"two".to_vec()).await;
        res.unwrap();
        let (res, buf) = client.read(Vec::with_capacity(8)).await;
        assert_eq!(&buf[..res.unwrap()], b"two");
        let waiter = ringloop::spawn({
            let server = server.clone();
            async move { server.wait_closed().await }
        });
        sleep(Duration::from_millis(30)).await;
        assert!(
            !waiter.is_finished(),
            "wait_closed returned with a connection open"
        );
        drop(client);
        ringloop::timeout(T, waiter).await.unwrap().unwrap();
        assert_eq!(server.active_connections(), 0);
    });
}

/// The peer's last bytes and its FIN arrive together, before anything is read: a read
/// that takes the bytes (a short read) must still be followed by the end of stream.
/// (The epoll engine once took a short read for "drained, wait for the next edge"; after
/// a FIN no edge comes, and the reader hung.)
#[test]
fn data_and_fin_queued_together_give_data_then_eof() {
    run(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Async client, std peer: the peer writes and shuts down before the first read.
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        std::io::Write::write_all(&mut peer, &pattern(5, 1000)).unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        sleep(Duration::from_millis(20)).await;
        let got = read_to_end(&client).await.map_err(|(e, _)| e).unwrap();
        assert_eq!(got, pattern(5, 1000));

        // Protocol client: data_received with every byte, then eof_received.
        let (r, seen) = Recorder::new();
        let l = get_running_loop().unwrap();
        let (_t, _) = l
            .create_connection(move || r, &addr.to_string())
            .await
            .unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        std::io::Write::write_all(&mut peer, &pattern(6, 1000)).unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        wait_until(T, "eof_received", || seen.events().contains(&Ev::Eof)).await;
        assert_eq!(*seen.bytes.borrow(), pattern(6, 1000));
        seen.assert_order();
    });
}
