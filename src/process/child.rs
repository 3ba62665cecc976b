//! The high-level child: [`Process`] (asyncio's `asyncio.subprocess.Process`) with
//! [`ProcessReader`]/[`ProcessWriter`] for its pipes, made by [`Command`],
//! [`create_subprocess_exec`](super::create_subprocess_exec) or
//! [`create_subprocess_shell`](super::create_subprocess_shell). Built on the same
//! [`SubprocessTransport`] and pipe transports as the protocol API: a collecting protocol
//! buffers what the child writes and pauses a pipe that holds more than
//! [`READ_LIMIT`](Process::READ_LIMIT) unread bytes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::{Stdio, SubprocessOptions, SubprocessProtocol, SubprocessTransport};
use crate::event_loop::{EventLoop, get_running_loop};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitStatus {
    returncode: i32,
}

impl ExitStatus {
    pub(crate) fn from_returncode(returncode: i32) -> Self {
        ExitStatus { returncode }
    }

    /// asyncio's return code: the exit code, or minus the signal that killed the child.
    pub fn returncode(&self) -> i32 {
        self.returncode
    }

    /// The exit code, if the child exited (was not killed by a signal).
    pub fn code(&self) -> Option<i32> {
        (self.returncode >= 0).then_some(self.returncode)
    }

    /// The signal that killed the child, if one did.
    pub fn signal(&self) -> Option<i32> {
        (self.returncode < 0).then_some(-self.returncode)
    }

    /// Whether the child exited with code 0.
    pub fn success(&self) -> bool {
        self.returncode == 0
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.signal() {
            Some(sig) => write!(f, "killed by {}", crate::signal::signal_name(sig)),
            None => write!(f, "exit code {}", self.returncode),
        }
    }
}

/// What [`Command::output`] collects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How the child ended.
    pub status: ExitStatus,
    /// Everything it wrote to stdout (empty unless piped).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr (empty unless piped).
    pub stderr: Vec<u8>,
}

/// Bytes from one pipe, waiting for a reader.
#[derive(Default)]
struct Incoming {
    chunks: VecDeque<Vec<u8>>,
    len: usize,
    done: bool,
    error: Option<io::Error>,
    paused: bool,
}

/// The protocol behind a [`Process`].
#[derive(Default)]
pub(crate) struct Collector {
    transport: Option<SubprocessTransport>,
    /// Index 1 stdout, 2 stderr (0 unused).
    incoming: [Incoming; 3],
    stdin_paused: bool,
    stdin_lost: bool,
    stdin_error: Option<io::Error>,
    /// `communicate` reads everything: never pause.
    unbounded: bool,
    wakers: Vec<Waker>,
}

impl Collector {
    fn wake_all(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }

    fn register(&mut self, waker: &Waker) {
        if !self.wakers.iter().any(|w| w.will_wake(waker)) {
            self.wakers.push(waker.clone());
        }
    }
}

impl SubprocessProtocol for Collector {
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        self.transport = Some(transport.clone());
    }

    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let Some(pipe) = usize::try_from(fd)
            .ok()
            .and_then(|i| self.incoming.get_mut(i))
        else {
            return;
        };
        pipe.chunks.push_back(data.to_vec());
        pipe.len += data.len();
        if !self.unbounded && !pipe.paused && pipe.len > Process::READ_LIMIT {
            pipe.paused = true;
            if let Some(t) = self.transport.as_ref().and_then(|t| read_pipe(t, fd)) {
                t.pause_reading();
            }
        }
        self.wake_all();
    }

    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        if fd == 0 {
            self.stdin_lost = true;
            self.stdin_error = exc;
        } else if let Some(pipe) = usize::try_from(fd)
            .ok()
            .and_then(|i| self.incoming.get_mut(i))
        {
            pipe.done = true;
            pipe.error = exc;
        }
        self.wake_all();
    }

    fn process_exited(&mut self) {
        self.wake_all();
    }

    fn connection_lost(&mut self, _exc: Option<io::Error>) {
        // Break the protocol → transport cycle.
        self.transport = None;
        self.wake_all();
    }

    fn pause_writing(&mut self) {
        self.stdin_paused = true;
    }

    fn resume_writing(&mut self) {
        self.stdin_paused = false;
        self.wake_all();
    }
}

fn read_pipe(t: &SubprocessTransport, fd: i32) -> Option<crate::transport::ReadPipeTransport> {
    match fd {
        1 => t.stdout(),
        2 => t.stderr(),
        _ => None,
    }
}

/// A running (or finished) child with its pipes: asyncio's `Process`.
///
/// The child is reaped by the loop as soon as it ends; dropping a `Process` neither kills
/// nor waits for it (close its [`transport`](Process::transport) to kill it). A child
/// still running when the loop closes is killed then.
pub struct Process {
    transport: SubprocessTransport,
    collector: Rc<RefCell<Collector>>,
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("transport", &self.transport)
            .finish()
    }
}

impl Process {
    /// Unread bytes a stdout or stderr pipe may hold before reading it is paused.
    pub const READ_LIMIT: usize = 128 * 1024;

    pub(crate) fn new(transport: SubprocessTransport, collector: Rc<RefCell<Collector>>) -> Self {
        Process {
            transport,
            collector,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.transport.get_pid()
    }

    /// `None` while the child runs, then its return code (negative: killed by a signal).
    pub fn returncode(&self) -> Option<i32> {
        self.transport.get_returncode()
    }

    /// The transport underneath.
    pub fn transport(&self) -> &SubprocessTransport {
        &self.transport
    }

    /// The child's stdin, if piped.
    pub fn stdin(&self) -> Option<ProcessWriter> {
        self.transport.stdin().map(|_| ProcessWriter {
            transport: self.transport.clone(),
            collector: self.collector.clone(),
        })
    }

    /// The child's stdout, if piped.
    pub fn stdout(&self) -> Option<ProcessReader> {
        self.transport.stdout().map(|_| self.reader(1))
    }

    /// The child's stderr, if piped.
    pub fn stderr(&self) -> Option<ProcessReader> {
        self.transport.stderr().map(|_| self.reader(2))
    }

    fn reader(&self, fd: i32) -> ProcessReader {
        ProcessReader {
            transport: self.transport.clone(),
            collector: self.collector.clone(),
            fd,
        }
    }

    /// Sends signal `sig` (an error of kind `NotFound` once the child has ended).
    pub fn send_signal(&self, sig: i32) -> io::Result<()> {
        self.transport.send_signal(sig)
    }

    /// Sends `SIGTERM`.
    pub fn terminate(&self) -> io::Result<()> {
        self.transport.terminate()
    }

    /// Sends `SIGKILL`.
    pub fn kill(&self) -> io::Result<()> {
        self.transport.kill()
    }

    /// Waits for the child to end. (A child that fills a pipe nobody reads blocks once
    /// [`READ_LIMIT`](Process::READ_LIMIT) is buffered; read it, or use
    /// [`communicate`](Process::communicate).)
    pub async fn wait(&self) -> io::Result<ExitStatus> {
        let returncode = poll_fn(|cx| match self.transport.poll_returncode(cx.waker()) {
            Some(rc) => Poll::Ready(Ok(rc)),
            None if self.transport.get_loop().is_closed() => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "wait: the event loop is closed",
            ))),
            None => Poll::Pending,
        })
        .await?;
        Ok(ExitStatus::from_returncode(returncode))
    }

    /// Writes `input` to stdin (if piped) and closes it, reads stdout and stderr (those
    /// piped) to their end, and waits for the child. Returns `(stdout, stderr)`. A child
    /// that exits without reading all its input is not an error (`EPIPE` is ignored).
    pub async fn communicate(&self, input: Option<&[u8]>) -> io::Result<(Vec<u8>, Vec<u8>)> {
        self.collector.borrow_mut().unbounded = true;
        for fd in [1, 2] {
            if let Some(t) = read_pipe(&self.transport, fd) {
                self.collector.borrow_mut().incoming[fd as usize].paused = false;
                t.resume_reading();
            }
        }
        if let Some(stdin) = self.transport.stdin() {
            if let Some(input) = input {
                // A child gone already is not an error here (as asyncio's communicate).
                let _ = stdin.write(input);
            }
            stdin.close();
        }
        let stdout = match self.stdout() {
            Some(mut r) => r.read_to_end().await?,
            None => Vec::new(),
        };
        let stderr = match self.stderr() {
            Some(mut r) => r.read_to_end().await?,
            None => Vec::new(),
        };
        self.wait().await?;
        Ok((stdout, stderr))
    }
}

/// The read side of a child's stdout or stderr (from [`Process::stdout`] /
/// [`Process::stderr`]). Clones share one buffer.
#[derive(Clone)]
pub struct ProcessReader {
    transport: SubprocessTransport,
    collector: Rc<RefCell<Collector>>,
    fd: i32,
}

impl fmt::Debug for ProcessReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessReader")
            .field("fd", &self.fd)
            .finish()
    }
}

impl ProcessReader {
    /// The next chunk the child wrote, as it arrived; `Ok(None)` at end of file.
    pub async fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let fd = self.fd as usize;
        poll_fn(|cx| {
            let mut c = self.collector.borrow_mut();
            let unbounded = c.unbounded;
            let pipe = &mut c.incoming[fd];
            if let Some(chunk) = pipe.chunks.pop_front() {
                pipe.len -= chunk.len();
                let resume = pipe.paused && (unbounded || pipe.len <= Process::READ_LIMIT / 2);
                if resume {
                    pipe.paused = false;
                }
                drop(c);
                if resume && let Some(t) = read_pipe(&self.transport, self.fd) {
                    t.resume_reading();
                }
                return Poll::Ready(Ok(Some(chunk)));
            }
            if let Some(e) = pipe.error.take() {
                return Poll::Ready(Err(e));
            }
            if pipe.done {
                return Poll::Ready(Ok(None));
            }
            c.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Everything until end of file.
    pub async fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(chunk) = self.read_chunk().await? {
            if all.is_empty() {
                all = chunk;
            } else {
                all.extend_from_slice(&chunk);
            }
        }
        Ok(all)
    }
}

/// The write side of a child's stdin (from [`Process::stdin`]).
#[derive(Clone)]
pub struct ProcessWriter {
    transport: SubprocessTransport,
    collector: Rc<RefCell<Collector>>,
}

impl fmt::Debug for ProcessWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessWriter").finish()
    }
}

impl ProcessWriter {
    fn pipe(&self) -> io::Result<crate::transport::WritePipeTransport> {
        self.transport
            .stdin()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "stdin is not piped"))
    }

    /// Queues `data` (never blocks; follow with [`drain`](ProcessWriter::drain)).
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        if let Some(e) = self.lost_error() {
            return Err(e);
        }
        self.pipe()?.write(data)
    }

    /// Waits until the write buffer is at or below its low-water mark. Errors once the
    /// pipe broke (the child closed its stdin or exited).
    pub async fn drain(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut c = self.collector.borrow_mut();
            if c.stdin_lost {
                return Poll::Ready(match &c.stdin_error {
                    Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    None => Ok(()),
                });
            }
            if !c.stdin_paused {
                return Poll::Ready(Ok(()));
            }
            c.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// `write` then `drain`.
    pub async fn write_all(&self, data: &[u8]) -> io::Result<()> {
        self.write(data)?;
        self.drain().await
    }

    /// Flushes, then closes the pipe (the child reads end of file).
    pub fn close(&self) {
        if let Ok(p) = self.pipe() {
            p.close();
        }
    }

    fn lost_error(&self) -> Option<io::Error> {
        let c = self.collector.borrow();
        c.stdin_error
            .as_ref()
            .map(|e| io::Error::new(e.kind(), e.to_string()))
    }
}

/// A builder for a child, in the style of `std::process::Command`; its standard streams
/// default to [`Stdio::Inherit`] (as asyncio's `create_subprocess_exec`).
///
/// ```
/// use ringloop::process::{Command, Stdio};
///
/// ringloop::run(async {
///     let child = Command::new("cat").stdin(Stdio::Piped).stdout(Stdio::Piped).spawn().unwrap();
///     let (out, _) = child.communicate(Some(b"hello")).await.unwrap();
///     assert_eq!(out, b"hello");
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    shell: bool,
    options: SubprocessOptions,
    set: [bool; 3],
}

impl Command {
    /// Runs `program` (looked up in `PATH` if it has no slash).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            shell: false,
            options: SubprocessOptions::with_stdio(Stdio::Inherit),
            set: [false; 3],
        }
    }

    /// Runs `cmd` with `/bin/sh -c`.
    pub fn shell(cmd: impl AsRef<OsStr>) -> Self {
        Command {
            shell: true,
            ..Command::new(cmd)
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The child's stdin.
    pub fn stdin(mut self, stdio: Stdio) -> Self {
        self.options = self.options.stdin(stdio);
        self.set[0] = true;
        self
    }

    /// The child's stdout.
    pub fn stdout(mut self, stdio: Stdio) -> Self {
        self.options = self.options.stdout(stdio);
        self.set[1] = true;
        self
    }

    /// The child's stderr (`Stdio::Stdout` sends it wherever stdout goes).
    pub fn stderr(mut self, stdio: Stdio) -> Self {
        self.options = self.options.stderr(stdio);
        self.set[2] = true;
        self
    }

    /// The working directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options = self.options.cwd(dir);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.options = self.options.env(key, value);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.options = self.options.env_remove(key);
        self
    }

    /// Starts from an empty environment.
    pub fn env_clear(mut self) -> Self {
        self.options = self.options.env_clear();
        self
    }

    /// Starts the child on the running loop.
    pub fn spawn(&self) -> io::Result<Process> {
        self.spawn_with(&self.options, false)
    }

    pub(crate) fn spawn_with(
        &self,
        options: &SubprocessOptions,
        force_poll: bool,
    ) -> io::Result<Process> {
        let event_loop = running_loop()?;
        let cmd = if self.shell {
            let mut sh = std::process::Command::new("/bin/sh");
            sh.arg("-c").arg(&self.program);
            sh
        } else {
            let mut cmd = std::process::Command::new(&self.program);
            cmd.args(&self.args);
            cmd
        };
        let (transport, collector) = super::spawn(
            &event_loop,
            Collector::default,
            cmd,
            &self.program,
            options,
            force_poll,
        )?;
        Ok(Process::new(transport, collector))
    }

    /// Runs the child to its end and collects its output. Streams not set explicitly
    /// default here to: stdin `Null`, stdout and stderr `Piped` (as `std`'s `output`).
    pub async fn output(&self) -> io::Result<Output> {
        let mut options = self.options.clone();
        if !self.set[0] {
            options = options.stdin(Stdio::Null);
        }
        if !self.set[1] {
            options = options.stdout(Stdio::Piped);
        }
        if !self.set[2] {
            options = options.stderr(Stdio::Piped);
        }
        let child = self.spawn_with(&options, false)?;
        let (stdout, stderr) = child.communicate(None).await?;
        let status = child.wait().await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs the child to its end (streams inherited unless set) and returns how it ended.
    pub async fn status(&self) -> io::Result<ExitStatus> {
        self.spawn()?.wait().await
    }
}

fn running_loop() -> io::Result<EventLoop> {
    get_running_loop().map_err(|_| {
        io::Error::new(
            io::ErrorKind::NotConnected,
            "spawning a child needs a running event loop",
        )
    })
}

/// asyncio's `create_subprocess_exec`: starts `program` with `args` on the running loop.
pub async fn create_subprocess_exec<I, S>(
    program: impl AsRef<OsStr>,
    args: I,
    options: SubprocessOptions,
) -> io::Result<Process>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let event_loop = running_loop()?;
    let mut cmd = std::process::Command::new(program.as_ref());
    cmd.args(args);
    let (transport, collector) = super::spawn(
        &event_loop,
        Collector::default,
        cmd,
        program.as_ref(),
        &options,
        false,
    )?;
    Ok(Process::new(transport, collector))
}

/// asyncio's `create_subprocess_shell`: starts `cmd` with `/bin/sh -c` on the running loop.
pub async fn create_subprocess_shell(
    cmd: impl AsRef<OsStr>,
    options: SubprocessOptions,
) -> io::Result<Process> {
    let event_loop = running_loop()?;
    let mut sh = std::process::Command::new("/bin/sh");
    sh.arg("-c").arg(cmd.as_ref());
    let (transport, collector) = super::spawn(
        &event_loop,
        Collector::default,
        sh,
        cmd.as_ref(),
        &options,
        false,
    )?;
    Ok(Process::new(transport, collector))
}
