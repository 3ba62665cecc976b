//! [`RuntimeError`]: why a runtime could not start, or which loop brought it down.

use std::fmt;

use crate::error::Error;

/// What went wrong in a [`Runtime`](super::Runtime); each variant names the loop.
#[derive(Debug, Clone)]
pub enum RuntimeError {
    /// Code on loop `index` panicked (its main, a task nobody awaited, a callback): the
    /// runtime was shut down.
    Panicked {
        /// The loop's index (0-based).
        index: usize,
        /// The loop thread's name.
        thread: String,
        /// Where it panicked and the panic's message.
        message: String,
    },
    /// Loop `index` failed: it could not be built (io_uring refused, a CPU it may not be
    /// pinned to, no thread), its main was cancelled, or its driver failed.
    Failed {
        /// The loop's index (0-based).
        index: usize,
        /// The loop thread's name.
        thread: String,
        /// The cause.
        error: Error,
    },
    /// The runtime is shut down (or shutting down after a failure reported earlier).
    Closed,
    /// Loop threads did not finish within [`Runtime::shutdown_timeout`](super::Runtime::shutdown_timeout)'s
    /// bound (a callback that never returns); they were detached, not joined.
    Stuck {
        /// The indices of the loops still running.
        indices: Vec<usize>,
    },
}

impl RuntimeError {
    /// The index of the loop at fault, when one is.
    pub fn loop_index(&self) -> Option<usize> {
        match self {
            RuntimeError::Panicked { index, .. } | RuntimeError::Failed { index, .. } => {
                Some(*index)
            }
            RuntimeError::Stuck { indices } => indices.first().copied(),
            RuntimeError::Closed => None,
        }
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Panicked {
                index,
                thread,
                message,
            } => write!(f, "loop {index} (thread {thread}) panicked: {message}"),
            RuntimeError::Failed {
                index,
                thread,
                error,
            } => write!(f, "loop {index} (thread {thread}) failed: {error}"),
            RuntimeError::Closed => f.write_str("the runtime is shut down"),
            RuntimeError::Stuck { indices } => write!(
                f,
                "loops {indices:?} did not stop within the bound; their threads were detached"
            ),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeError::Failed { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<RuntimeError> for Error {
    /// [`Error::Other`] holding the `RuntimeError` (downcast it to read the loop).
    fn from(e: RuntimeError) -> Self {
        Error::other(e)
    }
}
