//! Unix-domain sockets: `create_unix_server`/`create_unix_connection`, and the async
//! `UnixListener`, `UnixStream` and `UnixDatagram`.

mod util;

use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use ringloop::get_running_loop;
use ringloop::net::{UnixDatagram, UnixListener, UnixStream};
use ringloop::transport::ExtraInfo;
use util::*;

const T: Duration = Duration::from_secs(10);

/// An echo server at a path, a protocol client and async clients; the path goes away
/// with the server.
#[test]
fn unix_server_and_connections() {
    const LEN: usize = 2 << 20;
    let path = temp_sock_path("server");
    let p2 = path.clone();
    run(async move {
        let path = p2;
        let l = get_running_loop().unwrap();
        let stats = Arc::new(EchoStats::default());
        let s2 = stats.clone();
        let server = l
            .create_unix_server(move || Echo::new(&s2), &path)
            .await
            .unwrap();
        assert_eq!(server.path().as_deref(), Some(path.as_path()));
        assert!(path.exists());

        // A protocol client.
        let (r, seen) = Recorder::new();
        let (t, _) = l.create_unix_connection(move || r, &path).await.unwrap();
        assert_eq!(
            t.get_extra_info("peername"),
            Some(ExtraInfo::UnixPath(path.clone()))
        );
        t.write(&pattern(21, LEN)).unwrap();
        t.write_eof().unwrap();
        wait_until(T, "the echo and EOF", || seen.lost()).await;
        seen.assert_order();
        let mut v = Verifier::new(21);
        v.feed(&seen.bytes.borrow());
        v.assert_complete(LEN as u64, "unix protocol echo");

        // Async clients, several at once.
        let clients: Vec<_> = (0..8u64)
            .map(|seed| {
                let path = path.clone();
                ringloop::spawn(async move {
                    let s = UnixStream::connect(&path).await.unwrap();
                    assert_eq!(s.peer_path().unwrap(), path);
                    let (res, _) = s.write_all(pattern(seed, 100_000)).await;
                    res.unwrap();
                    s.shutdown(Shutdown::Write).unwrap();
                    let got = read_to_end(&s).await.map_err(|(e, _)| e).unwrap();
                    let mut v = Verifier::new(seed);
                    v.feed(&got);
                    v.assert_complete(100_000, "unix async echo");
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        server.close();
        ringloop::timeout(T, server.wait_closed()).await.unwrap();
        assert!(!path.exists(), "the socket file outlived the server");
        assert_eq!(stats.made.load(std::sync::atomic::Ordering::Relaxed), 9);
        assert_eq!(
            stats.lost_error.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    });
}

#[test]
fn unix_listener_stream_and_pair() {
    let path = temp_sock_path("listener");
    let p2 = path.clone();
    run(async move {
        let path = p2;
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(listener.local_path().unwrap(), path);
        let client = ringloop::spawn({
            let path = path.clone();
            async move {
                let s = UnixStream::connect(&path).await.unwrap();
                let (res, _) = s.writev(vec![b"one ".to_vec(), b"two".to_vec()]).await;
                assert_eq!(res.unwrap(), 7);
                s
            }
        });
        let server_side = listener.accept().await.unwrap();
        let _client = client.await.unwrap();
        let (res, bufs) = server_side
            .readv(vec![Vec::with_capacity(4), Vec::with_capacity(16)])
            .await;
        let n = res.unwrap();
        let joined: Vec<u8> = bufs.concat();
        assert_eq!(&joined[..n], b"one two");

        let (a, b) = UnixStream::pair().unwrap();
        let (res, _) = a.write(b"pair".to_vec()).await;
        assert_eq!(res.unwrap(), 4);
        drop(a);
        let got = read_to_end(&b).await.map_err(|(e, _)| e).unwrap();
        assert_eq!(got, b"pair");
        // Binding an existing path is an error that names it.
        let e = UnixListener::bind(&path).unwrap_err();
        assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
    });
    let _ = std::fs::remove_file(&path);
}

#[test]
fn unix_datagrams() {
    let (pa, pb) = (temp_sock_path("dg-a"), temp_sock_path("dg-b"));
    let (pa2, pb2) = (pa.clone(), pb.clone());
    run(async move {
        let a = UnixDatagram::bind(&pa2).unwrap();
        let b = UnixDatagram::bind(&pb2).unwrap();
        for d in [Vec::new(), vec![1u8], pattern(4, 60_000)] {
            let (res, d) = a.send_to(d, &pb2).await;
            assert_eq!(res.unwrap(), d.len());
            let (res, buf) = b.recv_from(Vec::with_capacity(65_536)).await;
            let (n, from) = res.unwrap();
            assert_eq!(from, pa2);
            assert!(buf[..n] == d[..]);
        }
        // An unbound sender shows up with an empty path.
        let anon = UnixDatagram::unbound().unwrap();
        let (res, _) = anon.send_to(b"anon".to_vec(), &pb2).await;
        res.unwrap();
        let (res, buf) = b.recv_from(Vec::with_capacity(16)).await;
        let (n, from) = res.unwrap();
        assert_eq!(&buf[..n], b"anon");
        assert_eq!(from.as_os_str().len(), 0);
        // A connected pair.
        let (x, y) = UnixDatagram::pair().unwrap();
        let (res, _) = x.send(b"hi".to_vec()).await;
        res.unwrap();
        let (res, buf) = y.recv(Vec::with_capacity(8)).await;
        assert_eq!(&buf[..res.unwrap()], b"hi");
    });
    let _ = std::fs::remove_file(&pa);
    let _ = std::fs::remove_file(&pb);
}
