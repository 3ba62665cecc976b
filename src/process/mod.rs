//! Child processes on the loop: asyncio's `subprocess_exec` / `subprocess_shell` with a
//! [`SubprocessProtocol`], and the high-level [`Process`] (`wait`, `communicate`) with a
//! [`Command`] builder.
//!
//! # How a child is run
//!
//! - **Spawning** uses `std::process::Command` (posix_spawn, or fork+exec): nothing runs
//!   between fork and exec that touches the ring, and every fd ringloop opens is
//!   close-on-exec, so the child gets only its stdin, stdout and stderr. `std` keeps the
//!   parent thread's signal mask in the child, so when the spawning thread blocks signals
//!   (as [`EventLoop::add_signal_handler`] does) a `pre_exec` hook empties the child's mask
//!   — the child sees `SIGINT` and friends with their default actions.
//! - **Pipes** are ordinary blocking pipes; the parent ends become
//!   [`ReadPipeTransport`](crate::transport::ReadPipeTransport)s (stdout, stderr) and a
//!   [`WritePipeTransport`](crate::transport::WritePipeTransport) (stdin) whose reads and
//!   writes are io_uring ops. A child that goes away while we write to it gives
//!   `EPIPE`, never a `SIGPIPE` death: see the policy on `WritePipeTransport`.
//! - **Exit** is learned from a pidfd: `IORING_OP_WAITID` where the kernel has it,
//!   otherwise a poll on the pidfd then `waitid(P_PIDFD, WNOHANG)`. There is no `SIGCHLD`
//!   handler and no thread per child, and each child is reaped as soon as it ends.
//! - **Return codes** follow asyncio: the exit code, or minus the signal number for a
//!   child killed by a signal.
//!
//! # Examples
//!
//! ```
//! use ringloop::process::Command;
//!
//! ringloop::run(async {
//!     let out = Command::shell("printf 'b\\na\\n' | sort").output().await.unwrap();
//!     assert_eq!(out.stdout, b"a\nb\n");
//!     assert!(out.status.success());
//! })
//! .unwrap();
//! ```

mod child;
mod protocol;
mod transport;

pub use child::{
    Command, ExitStatus, Output, Process, ProcessReader, ProcessWriter, create_subprocess_exec,
    create_subprocess_shell,
};
pub use protocol::SubprocessProtocol;
pub use transport::{PipeTransport, SubprocessTransport};

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;

use crate::event_loop::EventLoop;
use crate::fd::SharedFd;
use transport::ParentPipes;

/// What one of a child's standard streams is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// A pipe to the parent, as a pipe transport.
    Piped,
    /// The parent's own stream.
    Inherit,
    /// `/dev/null`.
    Null,
    /// (stderr only) wherever stdout goes — the stdout pipe when stdout is piped.
    Stdout,
}

/// How to start a child: its standard streams, working directory and environment.
///
/// `SubprocessOptions::default()` pipes all three streams, as asyncio's
/// `subprocess_exec` does.
#[derive(Debug, Clone)]
pub struct SubprocessOptions {
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    cwd: Option<PathBuf>,
    env_clear: bool,
    env: Vec<(OsString, Option<OsString>)>,
}

impl Default for SubprocessOptions {
    fn default() -> Self {
        SubprocessOptions::with_stdio(Stdio::Piped)
    }
}

impl SubprocessOptions {
    /// All three streams piped.
    pub fn new() -> Self {
        Self::default()
    }

    /// All three streams set to `stdio` (`Stdio::Stdout` is only valid for stderr).
    pub(crate) fn with_stdio(stdio: Stdio) -> Self {
        SubprocessOptions {
            stdin: stdio,
            stdout: stdio,
            stderr: stdio,
            cwd: None,
            env_clear: false,
            env: Vec::new(),
        }
    }

    /// The child's stdin (`Piped`, `Inherit` or `Null`).
    pub fn stdin(mut self, stdio: Stdio) -> Self {
        self.stdin = stdio;
        self
    }

    /// The child's stdout (`Piped`, `Inherit` or `Null`).
    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.stdout = stdio;
        self
    }

    /// The child's stderr (`Piped`, `Inherit`, `Null` or `Stdout`).
    pub fn stderr(mut self, stdio: Stdio) -> Self {
        self.stderr = stdio;
        self
    }

    /// The child's working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Sets several environment variables.
    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds afterwards).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self.env.clear();
        self
    }
}

impl EventLoop {
    /// asyncio's `subprocess_exec`: runs `program` with `args` (no shell) and connects a
    /// protocol from `factory` to it. `connection_made` has been called when this returns.
    ///
    /// Errors name the program (`spawn "nosuch": No such file or directory (os error 2)`);
    /// the loop goes on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use ringloop::process::{Stdio, SubprocessOptions};
    /// use ringloop::{SubprocessProtocol, get_running_loop};
    ///
    /// struct Collect {
    ///     out: Vec<u8>,
    ///     done: ringloop::Future<()>,
    /// }
    /// impl SubprocessProtocol for Collect {
    ///     fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) {
    ///         self.out.extend_from_slice(data);
    ///     }
    ///     fn connection_lost(&mut self, _exc: Option<io::Error>) {
    ///         let _ = self.done.set_result(());
    ///     }
    /// }
    ///
    /// ringloop::run(async {
    ///     let l = get_running_loop().unwrap();
    ///     let done = ringloop::Future::new();
    ///     let d = done.clone();
    ///     let options = SubprocessOptions::new().stderr(Stdio::Stdout);
    ///     let (transport, protocol) = l
    ///         .subprocess_exec(move || Collect { out: Vec::new(), done: d }, "echo", ["hi"], options)
    ///         .await
    ///         .unwrap();
    ///     done.await.unwrap();
    ///     assert_eq!(protocol.borrow().out, b"hi\n");
    ///     assert_eq!(transport.get_returncode(), Some(0));
    /// })
    /// .unwrap();
    /// ```
    pub async fn subprocess_exec<P, F, I, S>(
        &self,
        factory: F,
        program: impl AsRef<OsStr>,
        args: I,
        options: SubprocessOptions,
    ) -> io::Result<(SubprocessTransport, Rc<RefCell<P>>)>
    where
        P: SubprocessProtocol,
        F: FnOnce() -> P,
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = std::process::Command::new(program.as_ref());
        cmd.args(args);
        spawn(self, factory, cmd, program.as_ref(), &options, false)
    }

    /// asyncio's `subprocess_shell`: runs `cmd` with `/bin/sh -c`. As
    /// [`EventLoop::subprocess_exec`] otherwise.
    pub async fn subprocess_shell<P, F>(
        &self,
        factory: F,
        cmd: impl AsRef<OsStr>,
        options: SubprocessOptions,
    ) -> io::Result<(SubprocessTransport, Rc<RefCell<P>>)>
    where
        P: SubprocessProtocol,
        F: FnOnce() -> P,
    {
        let mut sh = std::process::Command::new("/bin/sh");
        sh.arg("-c").arg(cmd.as_ref());
        spawn(self, factory, sh, cmd.as_ref(), &options, false)
    }
}

/// Spawns `cmd` with `options` and wires it to a new protocol.
pub(crate) fn spawn<P, F>(
    event_loop: &EventLoop,
    factory: F,
    mut cmd: std::process::Command,
    what: &OsStr,
    options: &SubprocessOptions,
    force_poll: bool,
) -> io::Result<(SubprocessTransport, Rc<RefCell<P>>)>
where
    P: SubprocessProtocol,
    F: FnOnce() -> P,
{
    if event_loop.is_closed() {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "spawn: the event loop is closed",
        ));
    }
    let program = what.to_string_lossy().into_owned();
    let context = |e: io::Error| {
        let cwd = options
            .cwd
            .as_ref()
            .map(|d| format!(" (cwd {})", d.display()))
            .unwrap_or_default();
        io::Error::new(e.kind(), format!("spawn {program:?}{cwd}: {e}"))
    };
    let pipes = configure(&mut cmd, options).map_err(context)?;
    if crate::sys::process::thread_blocks_signals() {
        crate::sys::process::clear_sigmask_on_exec(&mut cmd);
    }
    let mut child = cmd.spawn().map_err(context)?;
    // The child's ends of the pipes live in `cmd`: close them here, so EOF reaches us.
    drop(cmd);
    let pid = child.id();
    let pidfd = match crate::sys::process::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(context(io::Error::new(
                e.kind(),
                format!("pidfd_open failed ({e}); Linux 5.3+ is needed"),
            )));
        }
    };
    // From here on the pidfd names the child; `child` (no handles left) is just dropped.
    drop(child);
    let protocol = Rc::new(RefCell::new(factory()));
    let transport = SubprocessTransport::start(
        event_loop,
        pid,
        program,
        SharedFd::new(pidfd),
        pipes,
        protocol.clone(),
        force_poll,
    );
    Ok((transport, protocol))
}

/// Applies `options` to `cmd`; returns the parent ends of the pipes it creates.
fn configure(
    cmd: &mut std::process::Command,
    options: &SubprocessOptions,
) -> io::Result<ParentPipes> {
    if let Some(dir) = &options.cwd {
        cmd.current_dir(dir);
    }
    if options.env_clear {
        cmd.env_clear();
    }
    for (k, v) in &options.env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let invalid = |which: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("Stdio::Stdout is only valid for stderr, not for {which}"),
        )
    };
    let mut pipes = ParentPipes {
        stdin: None,
        stdout: None,
        stderr: None,
    };
    match options.stdin {
        Stdio::Piped => {
            let (r, w) = std::io::pipe()?;
            cmd.stdin(OwnedFd::from(r));
            pipes.stdin = Some(SharedFd::new(OwnedFd::from(w)));
        }
        Stdio::Inherit => {
            cmd.stdin(std::process::Stdio::inherit());
        }
        Stdio::Null => {
            cmd.stdin(std::process::Stdio::null());
        }
        Stdio::Stdout => return Err(invalid("stdin")),
    }
    // The child's stdout end, kept for a stderr that follows it.
    let mut stdout_child: Option<OwnedFd> = None;
    match options.stdout {
        Stdio::Piped => {
            let (r, w) = std::io::pipe()?;
            let w = OwnedFd::from(w);
            if options.stderr == Stdio::Stdout {
                stdout_child = Some(w.try_clone()?);
            }
            cmd.stdout(w);
            pipes.stdout = Some(SharedFd::new(OwnedFd::from(r)));
        }
        Stdio::Inherit => {
            cmd.stdout(std::process::Stdio::inherit());
        }
        Stdio::Null => {
            cmd.stdout(std::process::Stdio::null());
        }
        Stdio::Stdout => return Err(invalid("stdout")),
    }
    match options.stderr {
        Stdio::Piped => {
            let (r, w) = std::io::pipe()?;
            cmd.stderr(OwnedFd::from(w));
            pipes.stderr = Some(SharedFd::new(OwnedFd::from(r)));
        }
        Stdio::Inherit => {
            cmd.stderr(std::process::Stdio::inherit());
        }
        Stdio::Null => {
            cmd.stderr(std::process::Stdio::null());
        }
        Stdio::Stdout => match (stdout_child, options.stdout) {
            (Some(fd), _) => {
                cmd.stderr(fd);
            }
            (None, Stdio::Null) => {
                cmd.stderr(std::process::Stdio::null());
            }
            (None, _) => {
                cmd.stderr(std::process::Stdio::from(std::io::stdout()));
            }
        },
    }
    Ok(pipes)
}

#[cfg(test)]
mod tests;
