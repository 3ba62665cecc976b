//! Runs a shell pipeline as a child of the loop, prints its output as it arrives, and
//! reports how it ended.
//!
//! ```text
//! cargo run --example subprocess                  # printf 'b\na\nc\n' | sort, then a few ticks
//! cargo run --example subprocess -- 'ls -l | wc'  # any shell command
//! ```
//!
//! Exits 0 when the child exited 0 (and, for the default pipeline, printed what `sort`
//! should); otherwise exits 1.

use std::io::{self, Write};
use std::time::Instant;

use ringloop::process::{Stdio, SubprocessOptions};
use ringloop::{SubprocessProtocol, SubprocessTransport, get_running_loop};

const DEFAULT: &str =
    "printf 'b\\na\\nc\\n' | sort; for i in 1 2 3; do sleep 0.1; echo tick $i; done";
const DEFAULT_OUTPUT: &str = "a\nb\nc\ntick 1\ntick 2\ntick 3\n";

/// Streams the child's output to our stdout, tagged with when each chunk arrived.
struct Stream {
    start: Instant,
    output: Vec<u8>,
    done: ringloop::Future<()>,
}

impl SubprocessProtocol for Stream {
    fn connection_made(&mut self, t: &SubprocessTransport) {
        println!(
            "[{:>5} ms] started pid {}",
            self.start.elapsed().as_millis(),
            t.get_pid()
        );
    }

    fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) {
        self.output.extend_from_slice(data);
        for line in String::from_utf8_lossy(data).lines() {
            println!("[{:>5} ms] | {line}", self.start.elapsed().as_millis());
        }
        let _ = io::stdout().flush();
    }

    fn process_exited(&mut self) {
        println!(
            "[{:>5} ms] process exited",
            self.start.elapsed().as_millis()
        );
    }

    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        let _ = self.done.set_result(());
    }
}

fn main() {
    let custom = std::env::args().nth(1);
    let cmd = custom.clone().unwrap_or_else(|| DEFAULT.to_string());
    let result = ringloop::run(async move {
        let event_loop = get_running_loop()?;
        let done = ringloop::Future::new();
        let d = done.clone();
        println!("running: {cmd}");
        // stderr joins stdout in one pipe; stdin reads /dev/null.
        let options = SubprocessOptions::new()
            .stdin(Stdio::Null)
            .stderr(Stdio::Stdout);
        let start = Instant::now();
        let (transport, protocol) = event_loop
            .subprocess_shell(
                move || Stream {
                    start,
                    output: Vec::new(),
                    done: d,
                },
                &cmd,
                options,
            )
            .await?;
        done.await?;
        let returncode = transport.get_returncode();
        let output = std::mem::take(&mut protocol.borrow_mut().output);
        Ok::<_, Box<dyn std::error::Error>>((returncode, output))
    });
    let (returncode, output) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("subprocess: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("subprocess: {e}");
            std::process::exit(1);
        }
    };
    match returncode {
        Some(code) if code < 0 => println!("killed by {}", ringloop::signal::signal_name(-code)),
        Some(code) => println!("exit code {code}"),
        None => println!("no return code"),
    }
    if returncode != Some(0) {
        std::process::exit(1);
    }
    if custom.is_none() && output != DEFAULT_OUTPUT.as_bytes() {
        eprintln!("unexpected output: {:?}", String::from_utf8_lossy(&output));
        std::process::exit(1);
    }
}
