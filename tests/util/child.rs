//! Child processes: re-running the current test binary in a child role, and starting the
//! example binaries built beside it.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The env var that tells a re-executed test binary which child role to play.
pub const CHILD_ENV: &str = "RINGLOOP_TEST_CHILD";

/// The child role this process was started with, if any.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Re-runs the current test binary, only the test `test_name`, with `CHILD_ENV=role`, and
/// returns its output. The child is killed if it runs longer than `limit`.
///
/// The child gets no `RINGLOOP_ENGINE` (it tests the default engine's own paths) unless
/// `engine` names one.
pub fn run_child(test_name: &str, role: &str, limit: Duration) -> Output {
    run_child_with_engine(test_name, role, limit, None)
}

/// [`run_child`] with `RINGLOOP_ENGINE` set to `engine` in the child.
pub fn run_child_with_engine(
    test_name: &str,
    role: &str,
    limit: Duration,
    engine: Option<&str>,
) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    let mut command = Command::new(exe);
    command.env_remove("RINGLOOP_ENGINE");
    if let Some(engine) = engine {
        command.env("RINGLOOP_ENGINE", engine);
    }
    let mut child = command
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the test binary as a child");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("child output")
}

/// The child's stdout and stderr, for failure messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The path of example `name` built beside this test binary
/// (`target/<profile>/deps/<test>-<hash>` → `target/<profile>/examples/<name>`), or `None`
/// (said on stderr) when it was not built.
pub fn example_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: {} not built", path.display());
        None
    }
}

/// Starts a server binary with `args` (stdout and stderr piped) and reads the
/// `listening on <ip:port>` line it must print first.
pub fn start_listening_child(
    bin: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut first)
        .expect("the first stdout line");
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line {first:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("first line {first:?}: {e}"));
    (child, addr)
}

/// Waits for `child` to exit, killing it and failing the test after `limit`.
pub fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("child {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
