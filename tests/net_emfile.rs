//! `EMFILE` on accept (PITFALLS #9): a server in a child process with a low
//! `RLIMIT_NOFILE` runs out of fds while clients keep connecting. It must not spin (CPU
//! time stays low during the back-off), must report the failure through the exception
//! handler, and must serve the waiting clients once fds are free again.
//!
//! The child is this test binary run again with `RINGLOOP_EMFILE_CHILD` set: it prints
//! `CHILD port <n>`, then answers `report` and `quit` lines on stdin.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringloop::EventLoop;
use util::*;

const CHILD_ENV: &str = "RINGLOOP_EMFILE_CHILD";
const TEST_NAME: &str = "emfile_on_accept_backs_off_and_recovers";

fn child_main() {
    let event_loop = EventLoop::new().unwrap();
    let l = event_loop.clone();
    // (first accept failure: when, CPU time then), how many were reported.
    let first: Rc<Cell<Option<(Instant, Duration)>>> = Rc::new(Cell::new(None));
    let reports = Rc::new(Cell::new(0u32));
    let other = Rc::new(RefCell::new(Vec::new()));
    let (f2, r2, o2) = (first.clone(), reports.clone(), other.clone());
    event_loop.set_exception_handler(Some(
        move |_: &EventLoop, ctx: &ringloop::ExceptionContext| {
            let text = format!("{}: {:?}", ctx.message, ctx.error);
            if ctx.message.contains("accept") && text.contains("Too many open files") {
                if f2.get().is_none() {
                    f2.set(Some((Instant::now(), process_cpu())));
                }
                r2.set(r2.get() + 1);
            } else {
                o2.borrow_mut().push(text);
            }
        },
    ));
    // stdin, read through the ring (a dup, so the Fd may own and close it).
    // SAFETY: dup takes no pointers; on success we own the new fd.
    let stdin = unsafe { libc::dup(0) };
    assert!(stdin >= 0);
    // SAFETY: `stdin` is a fresh fd nobody else owns.
    let stdin = unsafe { ringloop::fd::Fd::from_raw_fd(stdin) };
    let stats = Arc::new(EchoStats::default());
    event_loop
        .run_until_complete(async move {
            let s2 = stats.clone();
            let server = l
                .create_server(move || Echo::new(&s2), "127.0.0.1:0")
                .await
                .unwrap();
            // Room for a few connections only: seven fd numbers past those in use.
            let limit = open_fds() as u64 + 7;
            set_nofile(libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            });
            println!("CHILD port {}", server.sockets()[0].port());
            std::io::stdout().flush().unwrap();
            let mut pending = Vec::new();
            loop {
                let (res, buf) = stdin.read(Vec::with_capacity(256)).await;
                let n = res.unwrap();
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                let mut quit = false;
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    match String::from_utf8_lossy(&line).trim() {
                        "report" => {
                            let (cpu_ms, wall_ms) = match first.get() {
                                Some((at, cpu)) => (
                                    (process_cpu() - cpu).as_millis(),
                                    at.elapsed().as_millis(),
                                ),
                                None => (0, 0),
                            };
                            println!(
                                "CHILD report emfile={} cpu_ms={cpu_ms} wall_ms={wall_ms} active={} other={}",
                                reports.get(),
                                server.active_connections(),
                                other.borrow().len()
                            );
                            std::io::stdout().flush().unwrap();
                        }
                        "quit" => quit = true,
                        other => panic!("unknown command {other:?}"),
                    }
                }
                if quit {
                    break;
                }
            }
            assert!(server.is_serving(), "the server stopped serving");
            server.close();
            assert!(other.borrow().is_empty(), "{:?}", other.borrow());
        })
        .unwrap();
    event_loop.close().unwrap();
}

struct Report {
    emfile: u64,
    cpu_ms: u64,
    wall_ms: u64,
    active: u64,
}

fn parse_report(line: &str) -> Report {
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .parse()
            .unwrap()
    };
    Report {
        emfile: field("emfile"),
        cpu_ms: field("cpu_ms"),
        wall_ms: field("wall_ms"),
        active: field("active"),
    }
}

#[test]
fn emfile_on_accept_backs_off_and_recovers() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child_main();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness may print on the same line first ("test ... ").
            if let Some(i) = line.find("CHILD ") {
                let _ = tx.send(line[i + "CHILD ".len()..].to_string());
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no {what} line from the child"))
    };
    let port: u16 = next("port").strip_prefix("port ").unwrap().parse().unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // Far more clients than the child has fds for; the backlog takes them all.
    let mut clients: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    writeln!(stdin, "report").unwrap();
    let r = parse_report(&next("report"));
    eprintln!(
        "EMFILE: {} reports, {} ms CPU in {} ms since the first, {} connections open",
        r.emfile, r.cpu_ms, r.wall_ms, r.active
    );
    assert!(r.emfile >= 1, "no accept failure was reported");
    assert!(
        r.wall_ms >= 500,
        "the first failure came late: {} ms",
        r.wall_ms
    );
    // One report per back-off (100 ms), not a storm.
    assert!(r.emfile <= r.wall_ms / 50 + 5, "{} reports", r.emfile);
    // Not spinning: well under a quarter of a core while out of fds.
    assert!(
        r.cpu_ms * 4 < r.wall_ms,
        "{} ms CPU in {} ms",
        r.cpu_ms,
        r.wall_ms
    );
    assert!(r.active > 0 && r.active < 40, "{} open", r.active);

    // Free fds: the first clients leave; their server sides close.
    let rest = clients.split_off(30);
    drop(clients);
    for (i, mut c) in rest.into_iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let msg = format!("ping {i}");
        c.write_all(msg.as_bytes()).unwrap();
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("client {i} was not served: {e}"));
        assert_eq!(got, msg.as_bytes());
    }
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "child: {status}");
}
