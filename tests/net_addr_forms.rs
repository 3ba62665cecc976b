//! Every address-taking entry point accepts the usual forms through `net::ToSocketAddrs`:
//! `&str`, `String`, `SocketAddr`, `(IpAddr, port)`, `(host, port)`; bad ones are clear
//! errors.

mod util;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ringloop::net::{TcpListener, TcpStream, UdpSocket};
use ringloop::{get_running_loop, open_connection, start_server, wait_for};
use util::run;

async fn hello_server(addr: impl ringloop::net::ToSocketAddrs) -> ringloop::net::Server {
    start_server(
        |_r, w| async move {
            w.write(b"hi\n").unwrap();
            let _ = w.drain().await;
        },
        addr,
    )
    .await
    .expect("start_server")
}

async fn read_hello(addr: impl ringloop::net::ToSocketAddrs) {
    let (mut r, _w) = open_connection(addr).await.expect("open_connection");
    let line = wait_for(r.readline(), Duration::from_secs(5)).await;
    assert_eq!(line.unwrap().unwrap(), b"hi\n");
}

#[test]
fn streams_take_every_address_form() {
    run(async {
        let server = hello_server(("127.0.0.1", 0)).await;
        let addr: SocketAddr = server.sockets()[0];
        let port = addr.port();
        read_hello(addr).await;
        read_hello(format!("127.0.0.1:{port}")).await;
        read_hello(format!("127.0.0.1:{port}").as_str()).await;
        read_hello((IpAddr::V4(Ipv4Addr::LOCALHOST), port)).await;
        read_hello((Ipv4Addr::LOCALHOST, port)).await;
        read_hello(("127.0.0.1", port)).await;
        read_hello(("localhost".to_string(), port)).await;
        read_hello(vec![addr]).await;
        server.close();
        let v6 = hello_server(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 0))).await;
        read_hello(("[::1]", v6.sockets()[0].port())).await;
        v6.close();
    });
}

#[test]
fn loop_entry_points_and_sockets_take_address_forms() {
    run(async {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accept = ringloop::spawn(async move { listener.accept().await.map(|_| ()) });
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        accept.await.unwrap().unwrap();
        drop(stream);

        let l = get_running_loop().unwrap();
        let server = l
            .create_server(|| util::Recorder::new().0, (Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let (t, _p) = l
            .create_connection(|| util::Recorder::new().0, server.sockets()[0])
            .await
            .unwrap();
        t.close();
        server.close();

        let a = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        let b = UdpSocket::bind(String::from("127.0.0.1:0")).unwrap();
        a.connect(b.local_addr().unwrap()).await.unwrap();
    });
}

#[test]
fn bad_addresses_are_clear_errors() {
    run(async {
        let e = TcpListener::bind(Vec::<SocketAddr>::new()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        let e = open_connection("no-port-here").await.unwrap_err();
        assert!(e.to_string().contains("no-port-here"), "{e}");
        let e = TcpStream::connect(Vec::<SocketAddr>::new())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    });
}
