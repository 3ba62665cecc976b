//! The streams API (ASYNCIO_SEMANTICS rule 21) on real loopback and Unix sockets: echo of
//! patterned data through `start_server`/`open_connection`, the reader's calls and their
//! errors (incomplete read with the partial bytes, limit overrun and what stays buffered),
//! the limit pausing the transport, `drain` waiting on backpressure and failing after the
//! loss, half-close, closing on drop, no fd leak; and the `streams_echo` example's CLI.
//!
//! Every test takes one lock: they count the process's fds.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::pin;
use std::process::Command;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ringloop::streams::{open_connection_with, start_server_with};
use ringloop::transport::ExtraInfo;
use ringloop::{
    Future, StreamError, StreamReader, StreamWriter, open_connection, open_unix_connection, spawn,
    start_server, start_unix_server,
};
use util::*;

/// Echoes until end of stream with `drain` for backpressure, then closes.
async fn echo(mut reader: StreamReader, writer: StreamWriter) {
    loop {
        match reader.read(64 * 1024).await {
            Ok(data) if data.is_empty() => break,
            Ok(data) => {
                if writer.write(&data).is_err() || writer.drain().await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    writer.close();
}

/// Sends `len` bytes of stream `seed` in `chunk`-sized writes (draining after each) from a
/// task of its own, half-closes, and checks the echo up to the server's end of stream.
async fn echo_client(mut reader: StreamReader, writer: StreamWriter, seed: u64, len: usize) {
    const CHUNK: usize = 16 * 1024;
    let w = writer.clone();
    let sender = spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        let mut off = 0;
        while off < len {
            let n = CHUNK.min(len - off);
            fill_pattern(seed, off as u64, &mut buf[..n]);
            w.write(&buf[..n]).unwrap();
            w.drain().await.unwrap();
            off += n;
        }
        w.write_eof().unwrap();
    });
    let mut v = Verifier::new(seed);
    loop {
        let data = reader.read(64 * 1024).await.unwrap();
        if data.is_empty() {
            break;
        }
        v.feed(&data);
    }
    assert!(reader.at_eof());
    sender.await.unwrap();
    writer.close();
    writer.wait_closed().await.unwrap();
    v.assert_complete(len as u64, &format!("connection {seed}"));
}

#[test]
fn echo_100_connections_of_256_kib_over_tcp() {
    const CONNS: u64 = 100;
    const LEN: usize = 256 * 1024;
    let _g = serial();
    let before = settled_open_fds();
    run_on(
        ringloop::EventLoop::builder(),
        Duration::from_secs(60),
        async move {
            let in_loop = open_fds();
            let server = start_server(echo, "127.0.0.1:0").await.unwrap();
            let addr = server.sockets()[0].to_string();
            let clients: Vec<_> = (0..CONNS)
                .map(|seed| {
                    let addr = addr.clone();
                    spawn(async move {
                        let (r, w) = open_connection(&addr).await.unwrap();
                        assert_eq!(
                            w.get_extra_info("peername"),
                            Some(ExtraInfo::Addr(addr.parse().unwrap()))
                        );
                        echo_client(r, w, seed, LEN).await;
                    })
                })
                .collect();
            for c in clients {
                c.await.unwrap();
            }
            server.close();
            ringloop::timeout(Duration::from_secs(10), server.wait_closed())
                .await
                .unwrap();
            wait_until(Duration::from_secs(10), "every fd closed", || {
                open_fds() == in_loop
            })
            .await;
        },
    );
    assert_fds_back_to(before, Duration::from_secs(1), "fds leaked");
}

#[test]
fn echo_over_a_unix_socket() {
    let _g = serial();
    let before = settled_open_fds();
    let path = temp_sock_path("streams");
    let p = path.clone();
    run(async move {
        let server = start_unix_server(echo, &p).await.unwrap();
        let clients: Vec<_> = (0..10)
            .map(|seed| {
                let p = p.clone();
                spawn(async move {
                    let (r, w) = open_unix_connection(&p).await.unwrap();
                    echo_client(r, w, seed, 256 * 1024).await;
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        server.close();
        server.wait_closed().await;
    });
    assert!(!path.exists(), "the socket file is removed on close");
    assert_fds_back_to(before, Duration::from_secs(1), "fds leaked");
}

/// A server whose callback sends `chunks` in order (awaiting a byte from the client before
/// each chunk after the first), then closes.
async fn sending_server(chunks: Vec<&'static [u8]>) -> (ringloop::net::Server, String) {
    let server = start_server(
        move |mut reader: StreamReader, writer: StreamWriter| {
            let chunks = chunks.clone();
            async move {
                for (i, c) in chunks.iter().enumerate() {
                    if i > 0 {
                        let _ = reader.readexactly(1).await;
                    }
                    writer.write_all(c).await.unwrap();
                }
                writer.close();
            }
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap();
    let addr = server.sockets()[0].to_string();
    (server, addr)
}

#[test]
fn readline_readuntil_readexactly() {
    let _g = serial();
    run(async {
        let (_server, addr) =
            sending_server(vec![b"first line\nsecond\r\nkey=value;;tail-12345"]).await;
        let (mut r, w) = open_connection(&addr).await.unwrap();
        assert_eq!(r.readline().await.unwrap(), b"first line\n");
        assert_eq!(r.readuntil(b"\r\n").await.unwrap(), b"second\r\n");
        assert_eq!(r.readuntil(b";;").await.unwrap(), b"key=value;;");
        assert_eq!(r.readexactly(5).await.unwrap(), b"tail-");
        assert_eq!(r.read(2).await.unwrap(), b"12");
        assert_eq!(r.readexactly(3).await.unwrap(), b"345");
        assert_eq!(r.readline().await.unwrap(), b"", "end of stream");
        assert!(r.at_eof());
        assert_eq!(r.read(10).await.unwrap(), b"");
        drop(w);
    });
}

#[test]
fn readexactly_at_eof_is_an_incomplete_read_with_the_partial_bytes() {
    let _g = serial();
    run(async {
        let (_server, addr) = sending_server(vec![b"0123456789"]).await;
        let (mut r, _w) = open_connection(&addr).await.unwrap();
        match r.readexactly(100).await {
            Err(StreamError::IncompleteRead { partial, expected }) => {
                assert_eq!(partial, b"0123456789");
                assert_eq!(expected, Some(100));
            }
            other => panic!("expected an incomplete read, got {other:?}"),
        }
        assert!(r.at_eof());
        let e: std::io::Error = r.readexactly(1).await.unwrap_err().into();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        // readuntil at end of stream: the same error, with no count expected.
        let (_server, addr) = sending_server(vec![b"no newline"]).await;
        let (mut r, _w) = open_connection(&addr).await.unwrap();
        match r.readuntil(b"\n").await {
            Err(StreamError::IncompleteRead { partial, expected }) => {
                assert_eq!((partial.as_slice(), expected), (&b"no newline"[..], None));
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn readuntil_past_the_limit_is_a_limit_overrun_and_leaves_the_data() {
    const LIMIT: usize = 1024;
    static LONG_LINE: [u8; 1500] = [b'x'; 1500];
    let _g = serial();
    run(async {
        let (_server, addr) = sending_server(vec![&LONG_LINE, b"\ntail\n", &LONG_LINE]).await;
        let (mut r, w) = open_connection_with(&addr, LIMIT).await.unwrap();
        assert_eq!(r.limit(), LIMIT);
        // The separator found past the limit: consumed is where it is; nothing consumed.
        w.write(b"1").unwrap();
        wait_until(T, "the long line and its tail", || r.buffered() == 1506).await;
        match r.readuntil(b"\n").await {
            Err(StreamError::LimitOverrun { consumed }) => assert_eq!(consumed, 1500),
            other => panic!("expected a limit overrun, got {other:?}"),
        }
        assert_eq!(
            r.buffered(),
            1506,
            "readuntil leaves the data in the buffer"
        );
        let line = r.readexactly(1501).await.unwrap();
        assert_eq!(&line[..1500], &LONG_LINE[..]);
        assert_eq!(r.readline().await.unwrap(), b"tail\n");
        // No separator within the limit: an overrun as well, the data stays.
        w.write(b"2").unwrap();
        wait_until(T, "the second long chunk", || r.buffered() == 1500).await;
        match r.readuntil(b"\n").await {
            Err(StreamError::LimitOverrun { consumed }) => assert_eq!(consumed, 1500),
            other => panic!("{other:?}"),
        }
        assert_eq!(r.buffered(), 1500);
        // readline on an over-long line drops it (asyncio's ValueError path).
        assert!(matches!(
            r.readline().await,
            Err(StreamError::LimitOverrun { consumed: 1500 })
        ));
        assert_eq!(r.buffered(), 0);
        assert_eq!(r.read_to_end().await.unwrap(), b"");
    });
}

const T: Duration = Duration::from_secs(10);

/// A server that keeps each connection's reader (not reading) in `slot`.
async fn parking_server(
    slot: Rc<std::cell::RefCell<Vec<(StreamReader, StreamWriter)>>>,
) -> ringloop::net::Server {
    start_server(
        move |r, w| {
            slot.borrow_mut().push((r, w));
            async {}
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap()
}

#[test]
fn the_limit_pauses_the_transport_and_bounds_the_buffer() {
    const LIMIT: usize = 16 * 1024;
    const RECV: usize = 16 * 1024; // the loop's default receive size
    const LEN: usize = 4 * 1024 * 1024;
    let _g = serial();
    run(async {
        let server = start_server(
            |_r: StreamReader, w: StreamWriter| async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut off = 0;
                while off < LEN {
                    fill_pattern(7, off as u64, &mut buf);
                    if w.write_all(&buf).await.is_err() {
                        return;
                    }
                    off += buf.len();
                }
                w.close();
                let _ = w.wait_closed().await;
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let (mut r, w) = open_connection_with(&server.sockets()[0].to_string(), LIMIT)
            .await
            .unwrap();
        wait_until(T, "the reader pauses the transport", || {
            !w.transport().is_reading()
        })
        .await;
        let mut most = r.buffered();
        for _ in 0..20 {
            ringloop::sleep(Duration::from_millis(5)).await;
            most = most.max(r.buffered());
        }
        eprintln!("buffered while paused: {most} (limit {LIMIT})");
        assert!(
            most > 2 * LIMIT,
            "paused only above twice the limit: {most}"
        );
        assert!(most <= 2 * LIMIT + RECV, "bounded: {most}");
        assert!(!w.transport().is_reading());
        // Reading resumes the transport; every byte arrives in order.
        let mut v = Verifier::new(7);
        let mut resumed = false;
        loop {
            let data = r.read(8 * 1024).await.unwrap();
            if data.is_empty() {
                break;
            }
            v.feed(&data);
            resumed |= w.transport().is_reading();
            assert!(r.buffered() <= 2 * LIMIT + RECV, "{}", r.buffered());
        }
        assert!(resumed, "the transport was resumed");
        v.assert_complete(LEN as u64, "paused stream");
        server.close();
    });
}

#[test]
fn reads_larger_than_the_limit_resume_the_transport_as_needed() {
    const LIMIT: usize = 1024;
    const LEN: usize = 1 << 20;
    let _g = serial();
    run(async {
        let server = start_server(
            |_r: StreamReader, w: StreamWriter| async move {
                let _ = w.write_all(&pattern(11, LEN)).await;
                w.close();
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let addr = server.sockets()[0].to_string();
        let (mut r, _w) = open_connection_with(&addr, LIMIT).await.unwrap();
        let all = r.readexactly(LEN).await.unwrap();
        let mut v = Verifier::new(11);
        v.feed(&all);
        v.assert_complete(LEN as u64, "readexactly");
        let (mut r, _w) = open_connection_with(&addr, LIMIT).await.unwrap();
        let all = r.read_to_end().await.unwrap();
        let mut v = Verifier::new(11);
        v.feed(&all);
        v.assert_complete(LEN as u64, "read_to_end");
        server.close();
    });
}

/// Polls `fut` once with a waker that does nothing.
fn poll_once<F: std::future::Future>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn drain_returns_at_once_below_the_mark_and_waits_for_a_slow_peer() {
    let _g = serial();
    run(async {
        let parked = Rc::new(std::cell::RefCell::new(Vec::new()));
        let server = parking_server(parked.clone()).await;
        let (_r, w) = open_connection(&server.sockets()[0].to_string())
            .await
            .unwrap();
        w.write(b"small").unwrap();
        assert!(
            matches!(poll_once(pin!(w.drain())), Poll::Ready(Ok(()))),
            "below the high mark drain is ready at once"
        );
        wait_until(T, "the server's connection", || parked.borrow().len() == 1).await;
        // The peer does not read: past the socket buffers the transport pauses writing.
        let block = pattern(3, 256 * 1024);
        let mut written = 0;
        let deadline = Instant::now() + T;
        while !matches!(poll_once(pin!(w.drain())), Poll::Pending) {
            assert!(Instant::now() < deadline, "never paused");
            w.write(&block).unwrap();
            written += block.len();
            ringloop::sleep(Duration::from_millis(1)).await;
        }
        let mut drain = pin!(w.drain());
        let waited = ringloop::timeout(Duration::from_millis(100), drain.as_mut()).await;
        assert!(waited.is_err(), "drain waits while the peer does not read");
        // The peer reads everything: drain completes.
        let (mut pr, _pw) = parked.borrow_mut().pop().unwrap();
        let reading = spawn(async move {
            let mut n = 0;
            while n < 5 + written {
                n += pr.read(1 << 20).await.unwrap().len();
            }
            n
        });
        ringloop::timeout(T, drain).await.unwrap().unwrap();
        w.close();
        assert_eq!(reading.await.unwrap(), 5 + written);
        server.close();
    });
}

#[test]
fn drain_after_the_connection_was_lost_errors() {
    let _g = serial();
    run(async {
        // The peer resets the connection: drain fails with the reset (and so do reads).
        let server = start_server(
            |_r: StreamReader, w: StreamWriter| async move { w.transport().abort() },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let (mut r, w) = open_connection(&server.sockets()[0].to_string())
            .await
            .unwrap();
        let e = r.read(10).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET), "{e}");
        let e = w.drain().await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET), "{e}");
        assert_eq!(
            w.wait_closed().await.unwrap_err().raw_os_error(),
            Some(libc::ECONNRESET)
        );
        // We closed it ourselves: "connection lost", naming the peer.
        let (_r, w) = open_connection(&server.sockets()[0].to_string())
            .await
            .unwrap();
        w.close();
        assert!(w.is_closing());
        w.wait_closed().await.unwrap();
        let e = w.drain().await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
        assert!(w.write(b"late").is_err());
        server.close();
    });
}

#[test]
fn write_eof_half_closes_and_the_answer_still_arrives() {
    let _g = serial();
    run(async {
        let server = start_server(
            |mut r: StreamReader, w: StreamWriter| async move {
                let all = r.read_to_end().await.unwrap();
                w.write(format!("got {} bytes", all.len()).as_bytes())
                    .unwrap();
                w.close();
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let (mut r, w) = open_connection(&server.sockets()[0].to_string())
            .await
            .unwrap();
        assert!(w.can_write_eof());
        w.writelines([&b"abc"[..], b"defg"]).unwrap();
        w.write_eof().unwrap();
        assert!(w.write(b"more").is_err(), "no write after write_eof");
        assert_eq!(r.read_to_end().await.unwrap(), b"got 7 bytes");
        assert!(!w.is_closing(), "the peer's end of stream leaves ours open");
        w.close();
        w.wait_closed().await.unwrap();
        server.close();
    });
}

#[test]
fn dropping_reader_and_writer_closes_the_connection() {
    let _g = serial();
    let before = settled_open_fds();
    run(async {
        let got: Future<Vec<u8>> = Future::new();
        let g = got.clone();
        let server = start_server(
            move |mut r: StreamReader, _w: StreamWriter| {
                let g = g.clone();
                async move {
                    let _ = g.set_result(r.read_to_end().await.unwrap());
                }
            },
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let (r, w) = open_connection(&server.sockets()[0].to_string())
            .await
            .unwrap();
        w.write(b"last words").unwrap();
        let w2 = w.clone();
        drop(r);
        drop(w);
        ringloop::sleep(Duration::from_millis(20)).await;
        assert!(!w2.is_closing(), "a writer clone keeps the connection");
        drop(w2);
        // Closing flushes first: the server reads everything, then end of stream.
        let data = ringloop::timeout(T, got).await.unwrap().unwrap();
        assert_eq!(data, b"last words");
        server.close();
        server.wait_closed().await;
    });
    assert_fds_back_to(before, Duration::from_secs(1), "fds leaked");
}

#[test]
fn bad_input_is_a_clear_error() {
    let _g = serial();
    run(async {
        let e = open_connection("127.0.0.1:1").await.unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        let e = open_connection_with("127.0.0.1:1", 0).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        let e = start_server_with(echo, "127.0.0.1:0", 0, Default::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        let e = open_unix_connection("/nonexistent/ringloop.sock")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ringloop.sock"), "{e}");
    });
    // Outside a running loop: an error at the first poll, not a panic.
    match poll_once(pin!(open_connection("127.0.0.1:1"))) {
        Poll::Ready(Err(e)) => assert!(e.to_string().contains("loop"), "{e}"),
        other => panic!("{:?}", other.map(|r| r.map(|_| ()))),
    }
}

// ----- the streams_echo example -----

/// Sends `len` patterned bytes from a thread while reading the echo; half-closes; the
/// server's end of stream must follow the last byte.
fn std_echo(addr: SocketAddr, seed: u64, len: usize) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut tx = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        tx.write_all(&pattern(seed, len)).unwrap();
        tx.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    let mut v = Verifier::new(seed);
    v.feed(&back);
    v.assert_complete(len as u64, "streams_echo");
}

#[test]
fn streams_echo_example_cli() {
    let _g = serial();
    let Some(bin) = example_binary("streams_echo") else {
        return;
    };
    for engine in ["uring", "epoll"] {
        let (mut child, addr) = start_listening_child(&bin, &["127.0.0.1:0", "--engine", engine]);
        assert_ne!(addr.port(), 0, "the real port");
        let clients: Vec<_> = (0..4)
            .map(|seed| std::thread::spawn(move || std_echo(addr, seed, 3 << 20)))
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        // A small message and a half-close.
        std_echo(addr, 99, 11);
        // SIGINT with a client still connected: a clean stop, exit 0.
        let idle = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: kill takes no pointers; the pid is our child's.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
        let status = wait_exit(&mut child, T);
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        assert!(status.success(), "{engine}: after SIGINT: {status} {err}");
        drop(idle);
    }
    let out = Command::new(&bin).arg("--engine").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
}
