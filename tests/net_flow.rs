//! Flow control both ways (ASYNCIO_SEMANTICS rules 14 and 15): `pause_writing` when the
//! write buffer goes strictly above the high mark, `resume_writing` at or below the low
//! mark, memory bounded meanwhile; `pause_reading` stops `data_received` at once and
//! idempotently, and the data continues in order after `resume_reading`.

mod util;

use std::cell::{Cell, RefCell};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use ringloop::net::TcpStream;
use ringloop::{EventLoop, LoopBuilder, get_running_loop, sleep, yield_now};
use util::*;

const T: Duration = Duration::from_secs(10);

/// A peer that stops reading makes the transport pause writing; the buffer stays bounded
/// while paused; once the peer reads again the transport resumes at the low mark.
#[test]
fn write_flow_control_pause_and_resume() {
    const CHUNK: usize = 16 * 1024;
    run(async {
        let (server, list) = recorder_server(|_| {}).await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        client.set_recv_buffer_size(64 * 1024).unwrap();
        let seen = accepted(&list, 0).await;
        let t = seen.transport();
        assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        let paused = |s: &Seen| s.count(|e| *e == Ev::PauseWriting) > 0;
        let mut written = 0usize;
        let mut chunk = vec![0u8; CHUNK];
        while !paused(&seen) {
            assert!(
                written < 256 << 20,
                "no pause_writing after {written} bytes"
            );
            fill_pattern(5, written as u64, &mut chunk);
            t.write(&chunk).unwrap();
            written += CHUNK;
            yield_now().await;
        }
        let high = 64 * 1024;
        let at_pause = seen.size_at_pause.get().unwrap();
        assert!(at_pause > high, "paused at {at_pause}, not above {high}");
        assert!(at_pause <= high + CHUNK, "paused late, at {at_pause}");
        // Paused and not writing: the buffer does not grow.
        let size = t.get_write_buffer_size();
        assert!(size <= high + CHUNK, "buffer {size}");
        sleep(Duration::from_millis(50)).await;
        assert!(t.get_write_buffer_size() <= size);
        assert_eq!(seen.count(|e| *e == Ev::ResumeWriting), 0);
        // The peer reads again.
        let reader = ringloop::spawn(async move {
            let mut v = Verifier::new(5);
            let mut buf = Vec::with_capacity(64 * 1024);
            while v.received < written as u64 {
                let (res, back) = client.read(buf).await;
                buf = back;
                let n = res.unwrap();
                assert!(n > 0, "EOF after {}", v.received);
                v.feed(&buf[..n]);
            }
            v
        });
        wait_until(T, "resume_writing", || {
            seen.count(|e| *e == Ev::ResumeWriting) > 0
        })
        .await;
        let at_resume = seen.size_at_resume.get().unwrap();
        assert!(at_resume <= 16 * 1024, "resumed at {at_resume}");
        let v = reader.await.unwrap();
        v.assert_complete(written as u64, "flow-controlled stream");
        // Pauses and resumes alternate, starting with a pause.
        let flow: Vec<Ev> = seen
            .events()
            .into_iter()
            .filter(|e| matches!(e, Ev::PauseWriting | Ev::ResumeWriting))
            .collect();
        for (i, e) in flow.iter().enumerate() {
            let want = if i % 2 == 0 {
                Ev::PauseWriting
            } else {
                Ev::ResumeWriting
            };
            assert_eq!(*e, want, "{flow:?}");
        }
        assert_eq!(t.get_write_buffer_size(), 0);
        t.close();
        server.close();
        server.wait_closed().await;
    });
}

/// A small write that the kernel takes at once never pauses, even with a high mark of 0.
#[test]
fn small_write_completing_at_once_does_not_pause() {
    run(async {
        let (server, list) = recorder_server(|_| {}).await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        let seen = accepted(&list, 0).await;
        let t = seen.transport();
        t.set_write_buffer_limits(Some(0), Some(0)).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (0, 0));
        t.write(b"small").unwrap();
        let (res, buf) = client.read(Vec::with_capacity(16)).await;
        assert_eq!(&buf[..res.unwrap()], b"small");
        sleep(Duration::from_millis(20)).await;
        assert_eq!(t.get_write_buffer_size(), 0);
        assert_eq!(
            seen.count(|e| matches!(e, Ev::PauseWriting | Ev::ResumeWriting)),
            0,
            "{:?}",
            seen.events()
        );
        t.close();
        server.close();
        server.wait_closed().await;
    });
}

/// `set_write_buffer_limits` validates high ≥ low and fills in the missing one as asyncio.
#[test]
fn write_buffer_limits_are_validated() {
    run(async {
        let (server, list) = recorder_server(|_| {}).await;
        let _client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        let t = accepted(&list, 0).await.transport();
        let e = t.set_write_buffer_limits(Some(1), Some(2)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        t.set_write_buffer_limits(Some(100), None).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (25, 100));
        t.set_write_buffer_limits(None, Some(10)).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (10, 40));
        t.set_write_buffer_limits(None, None).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        t.close();
        server.close();
        server.wait_closed().await;
    });
}

/// Pausing inside `connection_made` works: nothing is delivered until `resume_reading`,
/// then everything, in order. Pause and resume are idempotent.
#[test]
fn pause_reading_in_connection_made() {
    const LEN: usize = 300_000;
    run(async {
        let (server, list) = recorder_server(|r| {
            r.on_made = Some(Box::new(|t| {
                t.pause_reading();
                t.pause_reading();
                assert!(!t.is_reading());
            }));
        })
        .await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        let (res, _) = client.write_all(pattern(11, LEN)).await;
        res.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let seen = accepted(&list, 0).await;
        sleep(Duration::from_millis(100)).await;
        assert_eq!(seen.events(), vec![Ev::Made]);
        let t = seen.transport();
        t.resume_reading();
        t.resume_reading();
        assert!(t.is_reading());
        wait_until(T, "connection_lost", || seen.lost()).await;
        seen.assert_order();
        let mut v = Verifier::new(11);
        v.feed(&seen.bytes.borrow());
        v.assert_complete(LEN as u64, "data after resume");
        server.close();
        server.wait_closed().await;
    });
}

/// While a peer streams data, reading is paused and resumed every millisecond or so. No
/// `data_received` may run while paused, and every byte arrives in order — with multishot
/// receives (whose cancel races completions) and with single-shot ones.
fn pause_resume_storm(builder: LoopBuilder) {
    const LEN: usize = 16 << 20;
    let violations = Rc::new(Cell::new(0usize));
    let v2 = violations.clone();
    let verifier = Rc::new(RefCell::new(Verifier::new(13)));
    let ver2 = verifier.clone();
    run_on(builder, Duration::from_secs(30), async move {
        let (server, list) = recorder_server(move |r| {
            let (v2, ver2) = (v2.clone(), ver2.clone());
            r.on_data = Some(Box::new(move |t, data| {
                if !t.is_reading() {
                    v2.set(v2.get() + 1);
                }
                ver2.borrow_mut().feed(data);
            }));
        })
        .await;
        let addr = server.sockets()[0];
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let data = pattern(13, LEN);
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            for c in data.chunks(50_000) {
                s.write_all(c).unwrap();
            }
            s.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            std::io::Read::read_to_end(&mut s, &mut rest).unwrap();
        });
        let seen = accepted(&list, 0).await;
        let t = seen.transport();
        let mut pauses = 0usize;
        while !seen.lost() {
            t.pause_reading();
            pauses += 1;
            let before = seen.count(|e| matches!(e, Ev::Data(_) | Ev::Eof));
            // Vary how long the pause lasts: resuming before the receive's cancel has
            // completed is where held and fresh data can race.
            match pauses % 4 {
                0 => sleep(Duration::from_micros(500)).await,
                n => {
                    for _ in 0..n - 1 {
                        yield_now().await;
                    }
                }
            }
            let after = seen.count(|e| matches!(e, Ev::Data(_) | Ev::Eof));
            assert_eq!(before, after, "data_received while paused");
            t.resume_reading();
            for _ in 0..pauses % 3 {
                yield_now().await;
            }
            if pauses.is_multiple_of(8) {
                sleep(Duration::from_micros(300)).await;
            }
        }
        get_running_loop()
            .unwrap()
            .run_in_executor(move || writer.join().unwrap())
            .await
            .unwrap();
        seen.assert_order();
        assert_eq!(seen.events().last(), Some(&Ev::Lost(None)));
        assert!(pauses > 5, "only {pauses} pauses");
        server.close();
        server.wait_closed().await;
    });
    assert_eq!(violations.get(), 0, "data_received while not reading");
    verifier
        .borrow()
        .assert_complete(LEN as u64, "stream read with pauses");
}

#[test]
fn pause_resume_storm_multishot() {
    pause_resume_storm(EventLoop::builder());
}

#[test]
fn pause_resume_storm_single_shot() {
    pause_resume_storm(EventLoop::builder().multishot_recv(false));
}

#[test]
fn pause_resume_storm_tiny_ring() {
    pause_resume_storm(EventLoop::builder().recv_buffers(4, 4096));
}

/// Writing in a loop until `pause_writing` — with no chance for the loop to send in
/// between — stops once the buffer passes the high mark, as asyncio's transports do (the
/// first write starts the send; later ones queue behind it and are flow-controlled).
#[test]
fn write_loop_without_yielding_pauses() {
    const CHUNK: usize = 16 * 1024;
    run(async move {
        let (server, list) = recorder_server(|_| {}).await;
        let client = TcpStream::connect(server.sockets()[0]).await.unwrap();
        let seen = accepted(&list, 0).await;
        let t = seen.transport();
        let mut writes = 0;
        while seen.count(|e| *e == Ev::PauseWriting) == 0 {
            assert!(writes < 1000, "no pause_writing after {writes} writes");
            t.write(&[0u8; CHUNK]).unwrap();
            writes += 1;
        }
        assert_eq!(
            writes,
            64 / 16 + 1,
            "writes before the buffer passed the mark"
        );
        assert!(seen.size_at_pause.get().unwrap() > 64 * 1024);
        t.close();
        let got = read_to_end(&client).await.map_err(|(e, _)| e).unwrap();
        assert_eq!(got.len(), writes * CHUNK);
        wait_until(T, "lost", || seen.lost()).await;
        // Everything left: resumed before connection_lost.
        assert_eq!(
            seen.count(|e| *e == Ev::ResumeWriting),
            1,
            "{:?}",
            seen.events()
        );
        server.close();
        server.wait_closed().await;
    });
}

/// [`Echo`] with water marks of 1 KiB / 256 B, so its writes pass the high mark on
/// either engine (with the epoll engine's inline sends and generous loopback buffers the
/// default 64 KiB mark is seldom reached in this test).
struct TightEcho(Echo);

impl ringloop::Protocol for TightEcho {
    fn connection_made(&mut self, t: &ringloop::StreamTransport) {
        t.set_write_buffer_limits(Some(1024), Some(256)).unwrap();
        self.0.connection_made(t);
    }
    fn data_received(&mut self, data: &[u8]) {
        self.0.data_received(data);
    }
    fn pause_writing(&mut self) {
        self.0.pause_writing();
    }
    fn resume_writing(&mut self) {
        self.0.resume_writing();
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        self.0.connection_lost(exc);
    }
}

/// An echo server that mirrors write backpressure onto reading (pause_reading on
/// pause_writing, resume on resume) against a client that writes everything at once:
/// reading is paused and resumed many times while receives complete, and every byte
/// must come back in order. (Held data once got overtaken by a completion arriving
/// between `resume_reading` and the delivery of what was held.)
fn echo_with_backpressure_in_order(unix: bool) {
    const LEN: usize = 4 << 20;
    run(async move {
        let l = get_running_loop().unwrap();
        let stats = std::sync::Arc::new(EchoStats::default());
        let s2 = stats.clone();
        let path = temp_sock_path("flow");
        let server = if unix {
            l.create_unix_server(move || TightEcho(Echo::new(&s2)), &path)
                .await
        } else {
            l.create_server(move || TightEcho(Echo::new(&s2)), "127.0.0.1:0")
                .await
        }
        .unwrap();
        let (r, seen) = Recorder::new();
        let (t, _) = if unix {
            l.create_unix_connection(move || r, &path).await
        } else {
            l.create_connection(move || r, &server.sockets()[0].to_string())
                .await
        }
        .unwrap();
        t.write(&pattern(17, LEN)).unwrap();
        t.write_eof().unwrap();
        wait_until(Duration::from_secs(20), "the echo and EOF", || seen.lost()).await;
        let mut v = Verifier::new(17);
        v.feed(&seen.bytes.borrow());
        v.assert_complete(LEN as u64, "echo with backpressure");
        assert!(stats.paused.load(std::sync::atomic::Ordering::Relaxed) > 0);
        server.close();
        server.wait_closed().await;
    });
}

#[test]
fn echo_with_backpressure_in_order_tcp() {
    echo_with_backpressure_in_order(false);
}

#[test]
fn echo_with_backpressure_in_order_unix() {
    echo_with_backpressure_in_order(true);
}
