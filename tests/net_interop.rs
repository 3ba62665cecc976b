//! Interop with a peer this project did not write: CPython's asyncio, in a `python3`
//! subprocess on loopback. Its client streams against our `create_server` echo server
//! (with half-close), and our `create_connection` client streams against its echo server.
//! Skipped (with a note) where `python3` is missing.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringloop::{EventLoop, get_running_loop};
use util::*;

fn python() -> Option<Command> {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import asyncio, sys; sys.exit(0 if sys.version_info >= (3, 7) else 1)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: no python3 (3.7+) here");
        return None;
    }
    Some(Command::new("python3"))
}

/// Waits for a child, killing it after `limit`.
fn wait_child(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("python3 did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

const CLIENT: &str = r#"
import asyncio, sys

PORT, CONNS, SIZE = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def payload(i):
    block = bytes((j * 7 + i) % 256 for j in range(251))
    return (block * (SIZE // len(block) + 1))[:SIZE]

async def one(i):
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    data = payload(i)
    async def send():
        for k in range(0, len(data), 16384):
            writer.write(data[k:k + 16384])
            await writer.drain()
        writer.write_eof()
    sender = asyncio.ensure_future(send())
    got = await reader.read()          # until the server's EOF
    await sender
    writer.close()
    if got != data:
        raise SystemExit(f"connection {i}: {len(got)} bytes back, mismatch")
    return len(got)

async def main():
    total = sum(await asyncio.gather(*(one(i) for i in range(CONNS))))
    print(f"OK {total}", flush=True)

asyncio.run(main())
"#;

/// CPython's asyncio client (20 connections x 256 KiB, `write_eof` at the end) against
/// our echo server: every byte back, then our EOF after the echo.
#[test]
fn python_asyncio_client_against_our_server() {
    let Some(mut py) = python() else { return };
    const CONNS: usize = 20;
    const SIZE: usize = 256 * 1024;
    let srv = EchoServerThread::start(EventLoop::builder(), "127.0.0.1:0");
    let mut child = py
        .args(["-c", CLIENT])
        .arg(srv.addr.port().to_string())
        .arg(CONNS.to_string())
        .arg(SIZE.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_child(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "python client: {status}, output {out:?}");
    assert_eq!(out.trim(), format!("OK {}", CONNS * SIZE));
    let stats = srv.stats.clone();
    let report = srv.stop();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.made.load(Relaxed), CONNS);
    assert_eq!(stats.lost_clean.load(Relaxed), CONNS);
    assert_eq!(stats.lost_error.load(Relaxed), 0);
    assert_eq!(stats.bytes.load(Relaxed), CONNS * SIZE);
    assert_eq!(report.recv_buffers_in_use, 0);
}

const SERVER: &str = r#"
import asyncio

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)
    def eof_received(self):
        return False          # close after flushing

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(30)

asyncio.run(main())
"#;

/// Our `create_connection` client against CPython's asyncio echo server.
#[test]
fn our_client_against_python_asyncio_server() {
    let Some(mut py) = python() else { return };
    const LEN: usize = 2 << 20;
    let mut child = py
        .args(["-c", SERVER])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("port ")
        .unwrap_or_else(|| panic!("python server said {line:?}"))
        .parse()
        .unwrap();
    let (seen, verifier) = run(async move {
        let l = get_running_loop().unwrap();
        let (r, seen) = Recorder::new();
        let (t, _) = l
            .create_connection(move || r, &format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let data = pattern(31, LEN);
        for chunk in data.chunks(100_000) {
            t.write(chunk).unwrap();
        }
        t.write_eof().unwrap();
        wait_until(Duration::from_secs(20), "the echo and EOF", || seen.lost()).await;
        let mut v = Verifier::new(31);
        v.feed(&seen.bytes.borrow());
        (seen.events(), v)
    });
    let _ = child.kill();
    let _ = child.wait();
    verifier.assert_complete(LEN as u64, "python's echo");
    assert_eq!(seen.first(), Some(&Ev::Made));
    assert!(seen.contains(&Ev::Eof), "{seen:?}");
    assert_eq!(seen.last(), Some(&Ev::Lost(None)));
}
