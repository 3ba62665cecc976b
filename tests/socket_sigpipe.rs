//! Sends on sockets whose peer is gone, in a process where `SIGPIPE` has its **default**
//! action (terminate), in a program of its own (`harness = false`): every socket write
//! path — `write`, `write_all`, `writev` on TCP and Unix streams — must surface `EPIPE`
//! (or a reset), never let the kernel's SIGPIPE kill the process. (`writev` once went out
//! as `IORING_OP_WRITEV`, which takes no `MSG_NOSIGNAL`.)

use std::io;
use std::time::Duration;

use ringloop::net::{TcpStream, UnixStream};

/// Writes until the kernel reports the peer gone; returns that error.
async fn write_until_error<F, Fut>(mut write: F) -> io::Error
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = io::Result<usize>>,
{
    for _ in 0..1000 {
        if let Err(e) = write().await {
            return e;
        }
        ringloop::sleep(Duration::from_millis(1)).await;
    }
    panic!("1000 writes to a closed peer all succeeded");
}

fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

fn main() {
    // SAFETY: restoring the default disposition before any thread or loop exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let kinds = ringloop::run(async {
        let mut kinds = Vec::new();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for how in ["write", "write_all", "writev"] {
            let s = TcpStream::connect(addr).await.unwrap();
            drop(listener.accept().unwrap());
            let e = write_until_error(|| async {
                match how {
                    "write" => s.write(vec![1u8; 1000]).await.0,
                    "write_all" => s.write_all(vec![1u8; 1000]).await.0.map(|()| 1000),
                    _ => s.writev(vec![vec![1u8; 500], vec![2u8; 500]]).await.0,
                }
            })
            .await;
            assert!(gone(&e), "tcp {how}: {e}");
            kinds.push(format!("tcp {how}: {:?}", e.kind()));
        }
        for how in ["write", "writev"] {
            let (a, b) = UnixStream::pair().unwrap();
            drop(b);
            let e = write_until_error(|| async {
                match how {
                    "write" => a.write(vec![1u8; 1000]).await.0,
                    _ => a.writev(vec![vec![1u8; 500], vec![2u8; 500]]).await.0,
                }
            })
            .await;
            assert!(gone(&e), "unix {how}: {e}");
            kinds.push(format!("unix {how}: {:?}", e.kind()));
        }
        kinds
    })
    .expect("the loop runs");
    println!(
        "socket_sigpipe: {}; SIGPIPE (default action) did not kill us",
        kinds.join(", ")
    );
}
