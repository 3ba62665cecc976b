//! The `tcp_echo` example's command line, which the issue makes part of the product:
//! `server [ADDR]` prints `listening on <addr>` first, echoes (half-close included) and
//! exits 0 on SIGTERM; `client ADDR --conns N --size B --count M` verifies and prints a
//! summary; no arguments runs both in one process. Skipped when the example binary was
//! not built next to this test (`cargo test` builds examples).

mod util;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use util::{example_binary, start_listening_child, wait_exit};

#[test]
fn tcp_echo_server_and_client_cli() {
    let Some(bin) = example_binary("tcp_echo") else {
        return;
    };
    let (mut server, addr) = start_listening_child(&bin, &["server", "127.0.0.1:0"]);
    let addr = addr.to_string();
    assert!(!addr.ends_with(":0"), "the real port: {addr}");

    let out = Command::new(&bin)
        .args([
            "client", &addr, "--conns", "8", "--size", "5000", "--count", "20",
        ])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client: {:?} {summary}", out.status);
    assert!(summary.contains("messages=160"), "{summary}");
    assert!(summary.contains("mismatches=0"), "{summary}");
    assert!(summary.contains("errors=0"), "{summary}");

    // Half-close from a plain client: the rest is echoed, then the server closes.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"half-closed").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"half-closed");

    // SIGTERM: a clean shutdown, exit 0.
    // SAFETY: kill takes no pointers; the pid is our child's.
    assert_eq!(unsafe { libc::kill(server.id() as i32, libc::SIGTERM) }, 0);
    let status = wait_exit(&mut server, Duration::from_secs(10));
    assert!(status.success(), "server after SIGTERM: {status}");

    // An unknown command is a usage error.
    let out = Command::new(&bin).arg("bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tcp_echo_first_run() {
    let Some(bin) = example_binary("tcp_echo") else {
        return;
    };
    let mut child = Command::new(&bin).stdout(Stdio::piped()).spawn().unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{status}: {out}");
    assert!(out.starts_with("listening on 127.0.0.1:"), "{out}");
    assert!(out.contains("mismatches=0"), "{out}");
}
