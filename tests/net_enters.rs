//! What a request/response exchange costs the server in kernel entries.
//!
//! On io_uring a transport's send that the socket takes whole is a quiet op (no CQE; the
//! driver settles it after the enter that submitted it), so one `io_uring_enter` submits
//! the echo and sleeps until the next request: one enter per message, not two. On the
//! epoll engine there are no quiet ops; the echo must be just as correct.

mod util;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use ringloop::{Engine, EventLoop};
use util::{EchoServerThread, pattern};

const MESSAGES: usize = 2_000;
const SIZE: usize = 64;

#[test]
fn a_request_response_echo_costs_one_enter_per_message() {
    let server = EchoServerThread::start(EventLoop::builder(), "127.0.0.1:0");
    let mut client = std::net::TcpStream::connect(server.addr).expect("connect");
    client.set_nodelay(true).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut echoed = [0u8; SIZE];
    for i in 0..MESSAGES {
        let message = pattern(i as u64, SIZE);
        client.write_all(&message).expect("send");
        client.read_exact(&mut echoed).expect("echo");
        assert_eq!(echoed[..], message[..], "message {i} came back changed");
    }
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .stats
        .lost_clean
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(Instant::now() < deadline, "the server never saw the close");
        std::thread::sleep(Duration::from_millis(5));
    }
    let report = server.stop();
    let stats = report.stats;
    eprintln!("{:?} over {MESSAGES} messages: {stats:?}", report.engine);
    match report.engine {
        Engine::Uring => {
            assert!(
                stats.quiet >= MESSAGES as u64,
                "every echo should have been a quiet send: {stats:?}"
            );
            // One enter per message, plus a little for start-up, accept and close.
            assert!(
                stats.enters <= MESSAGES as u64 * 11 / 10 + 50,
                "{} enters for {MESSAGES} messages (two per message is the bug)",
                stats.enters
            );
        }
        _ => assert_eq!(stats.quiet, 0, "the epoll engine has no quiet ops"),
    }
}
