//! The compat adapters over real loopback sockets: tokio-util's `Framed` + `LinesCodec`,
//! `futures::io::copy` of 1 MiB patterned, a `poll_read` whose caller goes away, and
//! hyper HTTP/1.1 keep-alive requests with bodies checked (both engines through
//! `RINGLOOP_ENGINE`).

mod util;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ringloop::compat::{CompatStream, LoopExecutor, LoopTimer};
use ringloop::net::{TcpListener, TcpStream, UnixStream};
use tokio_util::codec::{Framed, LinesCodec};

fn bounded<F: std::future::Future + 'static>(fut: F) -> F::Output {
    ringloop::run(async move {
        ringloop::timeout(Duration::from_secs(30), fut)
            .await
            .expect("test timed out")
    })
    .unwrap()
}

#[test]
fn framed_lines_over_tcp() {
    let before = util::settled_open_fds();
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ringloop::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut framed = Framed::new(s.compat(), LinesCodec::new());
            while let Some(line) = framed.next().await {
                let line = line.unwrap();
                framed.send(line.to_uppercase()).await.unwrap();
            }
        });
        let s = TcpStream::connect(addr).await.unwrap();
        let mut framed = Framed::new(CompatStream::new(s), LinesCodec::new());
        for i in 0..500 {
            framed.send(format!("line {i}")).await.unwrap();
            assert_eq!(framed.next().await.unwrap().unwrap(), format!("LINE {i}"));
        }
        drop(framed);
        server.await.unwrap();
    });
    util::assert_fds_back_to(before, Duration::from_secs(5), "framed lines");
}

#[test]
fn futures_copy_one_mebibyte() {
    bounded(async {
        const LEN: usize = 1 << 20;
        let (a, b) = UnixStream::pair().unwrap();
        let (c, d) = UnixStream::pair().unwrap();
        // a -> b, copy b -> c, c -> d.
        let writer = ringloop::spawn(async move {
            let mut a = a.compat();
            futures::AsyncWriteExt::write_all(&mut a, &util::pattern(11, LEN))
                .await
                .unwrap();
            futures::AsyncWriteExt::close(&mut a).await.unwrap();
        });
        let copier = ringloop::spawn(async move {
            let (mut b, mut c) = (b.compat(), c.compat());
            let n = futures::io::copy(&mut b, &mut c).await.unwrap();
            futures::AsyncWriteExt::close(&mut c).await.unwrap();
            n
        });
        let mut d = d.compat();
        let mut got = Vec::new();
        futures::AsyncReadExt::read_to_end(&mut d, &mut got)
            .await
            .unwrap();
        let mut v = util::Verifier::new(11);
        v.feed(&got);
        v.assert_complete(LEN as u64, "copied bytes");
        writer.await.unwrap();
        assert_eq!(copier.await.unwrap(), LEN as u64);
    });
}

#[test]
fn abandoned_poll_read_loses_nothing() {
    bounded(async {
        let (a, b) = UnixStream::pair().unwrap();
        let mut b = b.compat();
        // A read that times out: its receive stays in flight inside the stream.
        let mut buf = [0u8; 64];
        let r = ringloop::timeout(
            Duration::from_millis(20),
            tokio::io::AsyncReadExt::read(&mut b, &mut buf),
        )
        .await;
        assert!(r.is_err(), "nothing was sent yet");
        let (res, _) = a.write_all(b"after the timeout".to_vec()).await;
        res.unwrap();
        let n = tokio::io::AsyncReadExt::read(&mut b, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"after the timeout");
        // Unread bytes go back to the stream with into_inner.
        let (res, _) = a.write_all(b"xyz".to_vec()).await;
        res.unwrap();
        let mut one = [0u8; 1];
        tokio::io::AsyncReadExt::read_exact(&mut b, &mut one)
            .await
            .unwrap();
        assert_eq!(&one, b"x");
        let inner = b.into_inner();
        let (n, buf) = inner.read(Vec::with_capacity(8)).await;
        assert_eq!(&buf[..n.unwrap()], b"yz");
    });
}

#[test]
fn write_backpressure_and_errors() {
    bounded(async {
        let (a, b) = UnixStream::pair().unwrap();
        let mut a = CompatStream::with_buffers(a, 4096, 8192);
        let chunk = vec![7u8; 4096];
        // The peer does not read: writes stop being accepted past the mark and the
        // socket buffer.
        let mut total = 0usize;
        loop {
            match ringloop::timeout(
                Duration::from_millis(50),
                tokio::io::AsyncWriteExt::write(&mut a, &chunk),
            )
            .await
            {
                Ok(n) => total += n.unwrap(),
                Err(_) => break,
            }
            assert!(total < 64 << 20, "writes never blocked");
        }
        assert!(a.write_buffer_size() <= 8192);
        drop(b);
        // The peer is gone: a flush fails with the socket's own error, and so do later
        // writes.
        let e = tokio::io::AsyncWriteExt::flush(&mut a).await.unwrap_err();
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{e:?}"
        );
        assert!(tokio::io::AsyncWriteExt::write(&mut a, b"x").await.is_err());
    });
}

#[test]
fn hyper_http1_keep_alive_bodies() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let before = util::settled_open_fds();
    bounded(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ringloop::spawn(async move {
            for _ in 0..2 {
                let (s, _) = listener.accept().await.unwrap();
                ringloop::spawn(async move {
                    let svc = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let body = req.into_body().collect().await?.to_bytes();
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(body)))
                        },
                    );
                    hyper::server::conn::http1::Builder::new()
                        .timer(LoopTimer)
                        .serve_connection(s.compat(), svc)
                        .await
                        .unwrap();
                });
            }
        });
        let mut clients = Vec::new();
        for c in 0..2u64 {
            clients.push(ringloop::spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                let (mut send, conn) = hyper::client::conn::http1::handshake(s.compat())
                    .await
                    .unwrap();
                LoopExecutor::current().unwrap();
                ringloop::spawn(conn);
                for i in 0..50u64 {
                    let len = ((i * 37_001 + c) % (1 << 20)) as usize;
                    let body = util::pattern(i + c, len);
                    let req = hyper::Request::post("/")
                        .header("host", "x")
                        .body(Full::new(Bytes::from(body.clone())))
                        .unwrap();
                    let resp = send.send_request(req).await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let got = resp.into_body().collect().await.unwrap().to_bytes();
                    assert!(got[..] == body[..], "body {i} of client {c}");
                }
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    });
    util::assert_fds_back_to(before, Duration::from_secs(5), "hyper keep-alive");
}
