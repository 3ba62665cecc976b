//! [`SubprocessProtocol`]: the callbacks of a child process and its pipes.

use std::io;

use super::SubprocessTransport;

/// Callbacks for a child process (asyncio's `SubprocessProtocol`).
///
/// Order: `connection_made` first; then, interleaved as things happen,
/// `pipe_data_received` for the child's stdout (fd 1) and stderr (fd 2),
/// `pipe_connection_lost` once per pipe (fd 0, 1 or 2), and `process_exited` once; finally
/// `connection_lost`, exactly once, only after the process exited **and** every pipe
/// closed. Callbacks take `&mut self`; the transport never holds a borrow of its state
/// while calling them, so a protocol may call back into the transport from any callback.
pub trait SubprocessProtocol: 'static {
    /// The child is running; keep `transport` (a cheap clone) to write to its stdin,
    /// signal it or close it.
    fn connection_made(&mut self, transport: &SubprocessTransport) {
        let _ = transport;
    }
    /// The child wrote `data` to its stdout (`fd == 1`) or stderr (`fd == 2`).
    fn pipe_data_received(&mut self, fd: i32, data: &[u8]) {
        let _ = (fd, data);
    }
    /// A pipe ended: `None` at end of file or after `close`, else the error (for stdin,
    /// `EPIPE` when the child went away with bytes still unwritten).
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<io::Error>) {
        let _ = (fd, exc);
    }
    /// The child ended; [`SubprocessTransport::get_returncode`] has its return code.
    fn process_exited(&mut self) {}
    /// Everything is over: the child was reaped and every pipe is closed. Called once,
    /// last.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }
    /// The stdin pipe's write buffer went above its high-water mark.
    fn pause_writing(&mut self) {}
    /// The stdin pipe's write buffer drained to its low-water mark.
    fn resume_writing(&mut self) {}
}
