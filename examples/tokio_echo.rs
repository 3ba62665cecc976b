//! A tokio current-thread echo server: the peer the whole-process comparison
//! (`benches/compare.sh`) measures ringloop's `tcp_echo`/`udp_echo` servers against.
//!
//! ```text
//! cargo run --release --example tokio_echo -- [--udp] [ADDR]   # default 127.0.0.1:7000
//! ```
//!
//! Prints `listening on <ip:port>` first, then echoes every byte (TCP: one task per
//! connection, a 64 KiB read buffer, `write_all` of what each read returned; UDP: one
//! socket, each datagram sent back to its sender). It runs until killed (SIGTERM's default
//! action); the comparison reads its CPU time from `/proc` before stopping it.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Echoes one connection until the peer closes it or an error ends it.
async fn echo_stream(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn serve_tcp(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    println!("listening on {}", listener.local_addr()?);
    let _ = std::io::stdout().flush();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo_stream(stream));
            }
            // EMFILE and friends: keep serving the connections there are.
            Err(e) => eprintln!("tokio_echo: accept: {e}"),
        }
    }
}

async fn serve_udp(addr: SocketAddr) -> std::io::Result<()> {
    let socket = UdpSocket::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    println!("listening on {}", socket.local_addr()?);
    let _ = std::io::stdout().flush();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        // A failed send (e.g. the client's socket is gone) loses that datagram only.
        let _ = socket.send_to(&buf[..n], from).await;
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let udp = args.iter().any(|a| a == "--udp");
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(String::as_str)
        .unwrap_or("127.0.0.1:7000");
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tokio_echo: ADDR {addr:?}: {e}; usage: tokio_echo [--udp] [ADDR]");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio_echo: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        if udp {
            serve_udp(addr).await
        } else {
            serve_tcp(addr).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_echo: {e}");
            ExitCode::FAILURE
        }
    }
}
