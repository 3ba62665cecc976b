//! A write to a child's stdin after the child went away, in a process where `SIGPIPE`
//! has its **default** action (terminate), in a program of its own (`harness = false`):
//! the kernel sends `SIGPIPE` for an io_uring write to a pipe without readers, so
//! ringloop must keep it from killing the process and surface `EPIPE` instead.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use ringloop::process::{Stdio, SubprocessOptions};
use ringloop::{SubprocessProtocol, SubprocessTransport, get_running_loop};

struct P {
    stdin_lost: Rc<RefCell<Vec<Option<io::ErrorKind>>>>,
    done: ringloop::Future<()>,
}

impl SubprocessProtocol for P {
    fn connection_made(&mut self, t: &SubprocessTransport) {
        // More than the pipe holds: the write is still going when `head` exits.
        t.stdin().unwrap().write(&vec![b'x'; 4 << 20]).unwrap();
    }
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        if fd == 0 {
            self.stdin_lost.borrow_mut().push(exc.map(|e| e.kind()));
        }
    }
    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        let _ = self.done.set_result(());
    }
}

fn main() {
    // SAFETY: restoring the default disposition before any thread or loop exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let lost = Rc::new(RefCell::new(Vec::new()));
    let l2 = lost.clone();
    ringloop::run(async move {
        let l = get_running_loop().unwrap();
        let done = ringloop::Future::new();
        let d = done.clone();
        let options = SubprocessOptions::new()
            .stdout(Stdio::Null)
            .stderr(Stdio::Null);
        let (t, _p) = l
            .subprocess_exec(
                move || P {
                    stdin_lost: l2,
                    done: d,
                },
                "head",
                ["-c", "1"],
                options,
            )
            .await
            .expect("spawn head");
        ringloop::wait_for(done, Duration::from_secs(20))
            .await
            .expect("connection_lost in time")
            .unwrap();
        assert_eq!(t.get_returncode(), Some(0));
    })
    .expect("the loop runs");
    assert_eq!(*lost.borrow(), vec![Some(io::ErrorKind::BrokenPipe)]);
    println!("subprocess_sigpipe: EPIPE surfaced, SIGPIPE (default action) did not kill us");
}
