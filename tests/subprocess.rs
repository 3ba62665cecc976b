//! Child processes with real programs (`/bin/sh`, `cat`, `yes | head`, `sleep`): return
//! codes and signal deaths, callback order, 64 MiB through a pipe with every byte checked,
//! stdin backpressure, `close` killing, 200 children with no fd or zombie left, and bad
//! input.
//!
//! The tests of this file run one at a time (a lock): the fd and zombie checks look at the
//! whole process.

mod util;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::process::{Command, Stdio, SubprocessOptions};
use ringloop::{EventLoop, SubprocessProtocol, SubprocessTransport, get_running_loop};
use util::{assert_fds_back_to, serial, settled_open_fds};

/// Whether `pid` is still our unreaped child (a zombie or running).
fn is_unreaped_child(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG only reads the pid and writes `status`.
    let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    rc == 0 || rc == pid as libc::pid_t
}

#[derive(Debug, PartialEq)]
enum Event {
    Made,
    Data(i32, usize),
    PipeLost(i32, Option<io::ErrorKind>),
    Exited,
    Lost,
    PauseWriting,
    ResumeWriting,
}

/// Records every callback; resolves `done` at `connection_lost`.
struct Recorder {
    events: Rc<RefCell<Vec<Event>>>,
    out: Vec<u8>,
    err: Vec<u8>,
    keep: bool,
    transport: Option<SubprocessTransport>,
    done: ringloop::Future<()>,
}

impl Recorder {
    fn new(done: &ringloop::Future<()>) -> Self {
        Recorder {
            events: Rc::default(),
            out: Vec::new(),
            err: Vec::new(),
            keep: true,
            transport: None,
            done: done.clone(),
        }
    }
}

impl SubprocessProtocol for Recorder {
    fn connection_made(&mut self, t: &SubprocessTransport) {
        self.transport = Some(t.clone());
        self.events.borrow_mut().push(Event::Made);
    }
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        if self.keep {
            match fd {
                1 => self.out.extend_from_slice(data),
                _ => self.err.extend_from_slice(data),
            }
        }
        self.events.borrow_mut().push(Event::Data(fd, data.len()));
    }
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        self.events
            .borrow_mut()
            .push(Event::PipeLost(fd, exc.map(|e| e.kind())));
    }
    fn process_exited(&mut self) {
        self.events.borrow_mut().push(Event::Exited);
    }
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        assert!(exc.is_none());
        self.transport = None;
        self.events.borrow_mut().push(Event::Lost);
        let _ = self.done.set_result(());
    }
    fn pause_writing(&mut self) {
        self.events.borrow_mut().push(Event::PauseWriting);
    }
    fn resume_writing(&mut self) {
        self.events.borrow_mut().push(Event::ResumeWriting);
    }
}

async fn shell(
    cmd: &str,
    options: SubprocessOptions,
) -> (
    SubprocessTransport,
    Rc<RefCell<Recorder>>,
    ringloop::Future<()>,
) {
    let done = ringloop::Future::new();
    let d = done.clone();
    let l = get_running_loop().unwrap();
    let (t, p) = l
        .subprocess_shell(move || Recorder::new(&d), cmd, options)
        .await
        .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    (t, p, done)
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T> + 'static) -> T
where
    T: 'static,
{
    ringloop::wait_for(f, Duration::from_secs(20))
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out"))
}

#[test]
fn return_codes_and_signal_deaths() {
    let _g = serial();
    ringloop::run(async {
        for (cmd, want) in [
            ("exit 0", 0),
            ("exit 3", 3),
            ("exit 255", 255),
            ("kill -TERM $$", -libc::SIGTERM),
            ("kill -KILL $$", -libc::SIGKILL),
        ] {
            let (t, _p, done) = shell(cmd, SubprocessOptions::new()).await;
            within(cmd, done).await.unwrap();
            assert_eq!(t.get_returncode(), Some(want), "{cmd}");
        }
        // Signals sent through the transport.
        for (sig, want) in [
            (libc::SIGTERM, -15),
            (libc::SIGINT, -2),
            (libc::SIGKILL, -9),
        ] {
            let (t, _p, done) = shell("exec sleep 30", SubprocessOptions::new()).await;
            assert_eq!(t.get_returncode(), None);
            t.send_signal(sig).unwrap();
            within("signal", done).await.unwrap();
            assert_eq!(t.get_returncode(), Some(want));
            let e = t.kill().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        }
    })
    .unwrap();
}

#[test]
fn callbacks_in_order_and_connection_lost_last() {
    let _g = serial();
    ringloop::run(async {
        // Nothing is written to stdin: its end is learned from the reader going away.
        let (t, p, done) = shell("echo out; echo err >&2; exit 4", SubprocessOptions::new()).await;
        within("order", done).await.unwrap();
        assert_eq!(t.get_returncode(), Some(4));
        let p = p.borrow();
        assert_eq!(p.out, b"out\n");
        assert_eq!(p.err, b"err\n");
        let ev = p.events.borrow();
        assert_eq!(ev.first(), Some(&Event::Made));
        assert_eq!(ev.last(), Some(&Event::Lost));
        assert_eq!(ev.iter().filter(|e| **e == Event::Lost).count(), 1);
        assert_eq!(ev.iter().filter(|e| **e == Event::Exited).count(), 1);
        for fd in 0..3 {
            let lost: Vec<_> = ev
                .iter()
                .filter(|e| matches!(e, Event::PipeLost(f, _) if *f == fd))
                .collect();
            assert_eq!(lost, vec![&Event::PipeLost(fd, None)], "{ev:?}");
        }
        // Data for a pipe comes before that pipe's end.
        let pos = |want: &Event| ev.iter().position(|e| e == want).unwrap();
        assert!(pos(&Event::Data(1, 4)) < pos(&Event::PipeLost(1, None)));
        assert!(pos(&Event::Data(2, 4)) < pos(&Event::PipeLost(2, None)));
    })
    .unwrap();
}

#[test]
fn sixty_four_mib_through_stdout_every_byte_checked() {
    let _g = serial();
    const TOTAL: usize = 64 * 1024 * 1024;
    const LINE: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789\n";
    struct Check {
        seen: usize,
        sum: u64,
        bad: Option<usize>,
        done: ringloop::Future<()>,
    }
    impl SubprocessProtocol for Check {
        fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
            assert_eq!(fd, 1);
            for (i, b) in data.iter().enumerate() {
                let at = self.seen + i;
                if self.bad.is_none() && *b != LINE[at % LINE.len()] {
                    self.bad = Some(at);
                }
                self.sum = self.sum.wrapping_mul(31).wrapping_add(u64::from(*b));
            }
            self.seen += data.len();
        }
        fn connection_lost(&mut self, _exc: Option<io::Error>) {
            let _ = self.done.set_result(());
        }
    }
    let mut want_sum = 0u64;
    for at in 0..TOTAL {
        want_sum = want_sum
            .wrapping_mul(31)
            .wrapping_add(u64::from(LINE[at % LINE.len()]));
    }
    let line = std::str::from_utf8(&LINE[..LINE.len() - 1]).unwrap();
    let cmd = format!("yes {line} | head -c {TOTAL}");
    ringloop::run(async move {
        let l = get_running_loop().unwrap();
        let done = ringloop::Future::new();
        let d = done.clone();
        let start = Instant::now();
        let options = SubprocessOptions::new().stdin(Stdio::Null);
        let (t, p) = l
            .subprocess_shell(
                move || Check {
                    seen: 0,
                    sum: 0,
                    bad: None,
                    done: d,
                },
                cmd,
                options,
            )
            .await
            .unwrap();
        within("64 MiB", done).await.unwrap();
        let secs = start.elapsed().as_secs_f64();
        let p = p.borrow();
        assert_eq!(p.bad, None, "first wrong byte");
        assert_eq!(p.seen, TOTAL);
        assert_eq!(p.sum, want_sum);
        assert_eq!(t.get_returncode(), Some(0));
        eprintln!(
            "64 MiB through a pipe in {secs:.3} s ({:.0} MiB/s)",
            64.0 / secs
        );
    })
    .unwrap();
}

#[test]
fn stdin_backpressure_with_a_child_that_does_not_read() {
    let _g = serial();
    ringloop::run(async {
        let (t, p, done) = shell("exec sleep 5", SubprocessOptions::new()).await;
        let stdin = t.stdin().unwrap();
        let chunk = vec![7u8; 16 * 1024];
        let mut written = 0usize;
        let paused =
            |p: &Rc<RefCell<Recorder>>| p.borrow().events.borrow().contains(&Event::PauseWriting);
        while !paused(&p) {
            stdin.write(&chunk).unwrap();
            written += chunk.len();
            assert!(written < 64 * 1024 * 1024, "pause_writing never came");
            ringloop::yield_now().await;
        }
        // The pipe holds 64 KiB; the transport pauses above its 64 KiB high mark.
        let buffered = stdin.get_write_buffer_size();
        assert!(buffered > 64 * 1024, "{buffered}");
        assert!(buffered < 256 * 1024, "memory bounded: {buffered} buffered");
        assert!(written < 512 * 1024, "{written} written before the pause");
        let start = Instant::now();
        t.close();
        assert!(t.is_closing());
        within("close", done).await.unwrap();
        assert!(start.elapsed() < Duration::from_secs(3));
        assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));
        let ev = p
            .borrow()
            .events
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Event::PipeLost(0, k) => Some(*k),
                _ => None,
            })
            .collect::<Vec<_>>();
        assert_eq!(
            ev,
            vec![Some(io::ErrorKind::BrokenPipe)],
            "EPIPE surfaces, no SIGPIPE death"
        );
    })
    .unwrap();
}

#[test]
fn close_kills_a_running_child_and_leaves_a_finished_one_alone() {
    let _g = serial();
    ringloop::run(async {
        let (t, _p, done) = shell("exec sleep 30", SubprocessOptions::new()).await;
        let start = Instant::now();
        t.close();
        t.close();
        within("close", done).await.unwrap();
        assert!(start.elapsed() < Duration::from_secs(3));
        assert_eq!(t.get_returncode(), Some(-libc::SIGKILL));

        let (t, p, done) = shell("exit 0", SubprocessOptions::new()).await;
        within("exit", done).await.unwrap();
        t.close();
        assert_eq!(t.get_returncode(), Some(0));
        ringloop::sleep(Duration::from_millis(20)).await;
        assert_eq!(t.get_returncode(), Some(0));
        let lost = p
            .borrow()
            .events
            .borrow()
            .iter()
            .filter(|e| **e == Event::Lost)
            .count();
        assert_eq!(lost, 1);
    })
    .unwrap();
}

#[test]
fn two_hundred_children_no_fd_and_no_zombie_left() {
    let _g = serial();
    let before = settled_open_fds();
    let pids = ringloop::run(async {
        let mut pids = Vec::new();
        let mut running = Vec::new();
        for i in 0..200 {
            let options = if i % 2 == 0 {
                SubprocessOptions::new()
            } else {
                SubprocessOptions::new()
                    .stdin(Stdio::Null)
                    .stderr(Stdio::Stdout)
            };
            let (t, p, done) = shell(&format!("echo {i}"), options).await;
            pids.push(t.get_pid());
            running.push((i, t, p, done));
        }
        for (i, t, p, done) in running {
            within("child", done).await.unwrap();
            assert_eq!(t.get_returncode(), Some(0));
            assert_eq!(p.borrow().out, format!("{i}\n").as_bytes());
        }
        pids
    })
    .unwrap();
    assert_eq!(pids.len(), 200);
    for pid in pids {
        assert!(!is_unreaped_child(pid), "pid {pid} left as a zombie");
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // A recycled pid belongs to someone else; ours would be a zombie ('Z').
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            let ppid: Option<u32> = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok());
            assert!(
                !(state == Some("Z") && ppid == Some(std::process::id())),
                "zombie {pid}"
            );
        }
    }
    assert_fds_back_to(before, Duration::from_secs(1), "fds leaked");
}

#[test]
fn a_missing_program_is_a_clear_error_and_the_loop_goes_on() {
    let _g = serial();
    let before = settled_open_fds();
    ringloop::run(async {
        let l = get_running_loop().unwrap();
        let e = l
            .subprocess_exec(
                || Recorder::new(&ringloop::Future::new()),
                "ringloop-no-such-program",
                ["x"],
                SubprocessOptions::new(),
            )
            .await
            .err()
            .expect("spawning a missing program fails");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("ringloop-no-such-program"), "{e}");
        let e = Command::new("/nonexistent/dir/prog").spawn().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir/prog"), "{e}");
        let e = Command::new("true")
            .current_dir("/nonexistent-dir")
            .spawn()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir"), "{e}");
        let e = SubprocessOptions::new().stdin(Stdio::Stdout);
        let err = l
            .subprocess_exec(
                || Recorder::new(&ringloop::Future::new()),
                "true",
                [""; 0],
                e,
            )
            .await
            .err()
            .expect("Stdio::Stdout for stdin is refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // The loop goes on.
        let status = Command::new("true").status().await.unwrap();
        assert!(status.success());
    })
    .unwrap();
    assert_fds_back_to(
        before,
        Duration::from_secs(1),
        "a failed spawn leaks no pipe",
    );
}

#[test]
fn communicate_through_cat() {
    let _g = serial();
    ringloop::run(async {
        let input: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
        let child = Command::new("cat")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .stderr(Stdio::Piped)
            .spawn()
            .unwrap();
        assert!(child.pid() > 0);
        let (out, err) = child.communicate(Some(&input)).await.unwrap();
        assert_eq!(out.len(), input.len());
        assert!(out == input);
        assert!(err.is_empty());
        assert_eq!(child.wait().await.unwrap().code(), Some(0));

        // A child that reads nothing: EPIPE is not an error for communicate.
        let child = Command::shell("exit 2")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .spawn()
            .unwrap();
        let (out, _) = child.communicate(Some(&input)).await.unwrap();
        assert!(out.is_empty());
        assert_eq!(child.returncode(), Some(2));
    })
    .unwrap();
}

#[test]
fn streaming_reads_write_all_and_wait() {
    let _g = serial();
    ringloop::run(async {
        let child = Command::new("cat")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .spawn()
            .unwrap();
        let stdin = child.stdin().unwrap();
        let mut stdout = child.stdout().unwrap();
        for i in 0..50 {
            let line = format!("line {i}\n");
            stdin.write_all(line.as_bytes()).await.unwrap();
            let mut got = Vec::new();
            while got.len() < line.len() {
                got.extend(stdout.read_chunk().await.unwrap().unwrap());
            }
            assert_eq!(got, line.as_bytes());
        }
        stdin.close();
        assert_eq!(stdout.read_chunk().await.unwrap(), None);
        assert!(child.wait().await.unwrap().success());
        // A child writing more than the read limit pauses, then resumes as it is read.
        let child = Command::shell("yes | head -c 3000000")
            .stdout(Stdio::Piped)
            .spawn()
            .unwrap();
        ringloop::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            child.returncode(),
            None,
            "blocked on a full pipe while paused"
        );
        let all = child.stdout().unwrap().read_to_end().await.unwrap();
        assert_eq!(all.len(), 3_000_000);
        assert!(all.chunks(2).all(|c| c[0] == b'y'));
        assert!(child.wait().await.unwrap().success());
    })
    .unwrap();
}

#[test]
fn pause_and_resume_reading_a_pipe() {
    let _g = serial();
    struct Pauser {
        total: usize,
        paused_deliveries: Rc<Cell<usize>>,
        paused: Rc<Cell<bool>>,
        t: Option<SubprocessTransport>,
        done: ringloop::Future<()>,
    }
    impl SubprocessProtocol for Pauser {
        fn connection_made(&mut self, t: &SubprocessTransport) {
            self.t = Some(t.clone());
        }
        fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) {
            if self.paused.get() {
                self.paused_deliveries.set(self.paused_deliveries.get() + 1);
            }
            self.total += data.len();
            if self.total > 100_000 && self.total < 200_000 && !self.paused.get() {
                let out = self.t.as_ref().unwrap().stdout().unwrap();
                out.pause_reading();
                out.pause_reading();
                assert!(!out.is_reading());
                self.paused.set(true);
                let (flag, l) = (self.paused.clone(), get_running_loop().unwrap());
                l.call_later(Duration::from_millis(50), move || {
                    flag.set(false);
                    out.resume_reading();
                    out.resume_reading();
                });
            }
        }
        fn connection_lost(&mut self, _exc: Option<io::Error>) {
            self.t = None;
            let _ = self.done.set_result(());
        }
    }
    ringloop::run(async {
        let l = get_running_loop().unwrap();
        let done = ringloop::Future::new();
        let d = done.clone();
        let pd = Rc::new(Cell::new(0));
        let pd2 = pd.clone();
        let (_t, p) = l
            .subprocess_shell(
                move || Pauser {
                    total: 0,
                    paused_deliveries: pd2,
                    paused: Rc::new(Cell::new(false)),
                    t: None,
                    done: d,
                },
                "yes | head -c 1000000",
                SubprocessOptions::new(),
            )
            .await
            .unwrap();
        within("pause", done).await.unwrap();
        assert_eq!(p.borrow().total, 1_000_000);
        assert_eq!(pd.get(), 0, "no data while paused");
    })
    .unwrap();
}

#[test]
fn children_get_a_clean_signal_mask_only_std_fds_env_and_cwd() {
    let _g = serial();
    let event_loop = EventLoop::new().unwrap();
    // The loop's thread blocks SIGINT for this handler; the child must not inherit that.
    event_loop.add_signal_handler(libc::SIGINT, || {}).unwrap();
    event_loop
        .run_until_complete(async {
            let out = Command::new("grep")
                .arg("SigBlk")
                .arg("/proc/self/status")
                .output()
                .await
                .unwrap();
            let line = String::from_utf8(out.stdout).unwrap();
            assert!(line.trim_end().ends_with("0000000000000000"), "{line}");
            let status = Command::shell("kill -INT $$; sleep 5")
                .status()
                .await
                .unwrap();
            assert_eq!(
                status.signal(),
                Some(libc::SIGINT),
                "default SIGINT action in the child"
            );

            // Only fds 0, 1, 2 (and ls's own directory fd) in the child, apart from fds this
            // test process itself inherited without close-on-exec.
            let out = Command::new("ls")
                .arg("/proc/self/fd")
                .output()
                .await
                .unwrap();
            let fds: Vec<u32> = String::from_utf8(out.stdout)
                .unwrap()
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            let inherited = inheritable_fds();
            let extra: Vec<u32> = fds
                .iter()
                .copied()
                .filter(|fd| *fd > 3 && !inherited.contains(fd))
                .collect();
            assert!(
                extra.is_empty(),
                "child fds {fds:?}; not ours to pass on: {extra:?}"
            );

            let out = Command::shell("echo \"$FOO:$HOME\"; pwd; echo oops >&2")
                .env_clear()
                .env("FOO", "bar")
                .current_dir("/tmp")
                .stderr(Stdio::Stdout)
                .output()
                .await
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), "bar:\n/tmp\noops\n");
            assert!(out.stderr.is_empty());
        })
        .unwrap();
    assert!(event_loop.remove_signal_handler(libc::SIGINT).unwrap());
    event_loop.close().unwrap();
}

#[test]
fn closing_the_loop_kills_and_reaps_running_children() {
    let _g = serial();
    let before = settled_open_fds();
    let event_loop = EventLoop::new().unwrap();
    let pid = event_loop
        .run_until_complete(async {
            let (t, _p, _done) = shell("exec sleep 30", SubprocessOptions::new()).await;
            t.get_pid()
        })
        .unwrap();
    assert!(is_unreaped_child_alive(pid));
    let start = Instant::now();
    event_loop.close().unwrap();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(!is_unreaped_child(pid), "killed and reaped at close");
    drop(event_loop);
    assert_fds_back_to(before, Duration::from_secs(1), "fds leaked");
}

fn is_unreaped_child_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// This process's fds without `O_CLOEXEC` (inherited from whoever started the tests).
fn inheritable_fds() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|fd| {
            std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).is_ok_and(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                    .is_some_and(|flags| flags & libc::O_CLOEXEC as u32 == 0)
            })
        })
        .collect()
}
