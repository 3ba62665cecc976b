//! The crate's error type.
//!
//! I/O operations return plain [`std::io::Error`]s, as the standard library does. The
//! asyncio-shaped APIs (futures, tasks, the loop's own state machine) need a few more
//! kinds — an invalid state, a cancellation, a timeout, a closed loop, a panic — and those
//! live in [`Error`]. `Error` is `Clone` because an asyncio future hands the same outcome
//! to every caller of `result()`.
//!
//! Every error type of the crate converts into [`Error`] with `?` ([`io::Error`],
//! [`StreamError`](crate::StreamError), [`TaskGroupError`](crate::TaskGroupError)), and
//! `Error` converts into `io::Error`, so both kinds of function compose:
//!
//! ```
//! use std::time::Duration;
//! use ringloop::{open_connection, start_server, wait_for};
//!
//! ringloop::run(async {
//!     let server = start_server(
//!         |_reader, writer| async move {
//!             writer.write(b"hello\n").unwrap();
//!             let _ = writer.drain().await;
//!         },
//!         ("127.0.0.1", 0),
//!     )
//!     .await?;
//!     let (mut r, _w) = open_connection(server.sockets()[0]).await?;
//!     // The first `?` is the timeout (ringloop::Error), the second the read (StreamError).
//!     let line = wait_for(r.readline(), Duration::from_secs(5)).await??;
//!     assert_eq!(line, b"hello\n");
//!     server.close();
//!     Ok::<_, ringloop::Error>(())
//! })
//! .unwrap()
//! .unwrap();
//! ```

use std::fmt;
use std::io;
use std::sync::Arc;

/// The outcome of a failed future, task or loop operation.
#[derive(Debug, Clone)]
pub enum Error {
    /// The call does not fit the object's state (a result read before it is set, a
    /// second `set_result`, `run_forever` inside a running loop, ...).
    InvalidState(&'static str),
    /// The future or task was cancelled.
    Cancelled,
    /// A deadline passed first ([`timeout`](crate::timeout), [`wait_for`](crate::wait_for)).
    Timeout,
    /// The event loop is closed.
    Closed,
    /// io_uring cannot be used here; the message says why and what to do.
    Unavailable(Arc<io::Error>),
    /// An I/O error.
    Io(Arc<io::Error>),
    /// A task or callback panicked; the payload's message when it had one.
    Panic(String),
    /// An error set by user code through [`Future::set_exception`](crate::Future::set_exception).
    Other(Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps any error as [`Error::Other`].
    pub fn other<E: std::error::Error + Send + Sync + 'static>(err: E) -> Self {
        Error::Other(Arc::new(err))
    }

    /// True for [`Error::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout)
    }

    pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        Error::Panic(panic_message(payload.as_ref()))
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidState(what) => write!(f, "invalid state: {what}"),
            Error::Cancelled => f.write_str("cancelled"),
            Error::Timeout => f.write_str("timed out"),
            Error::Closed => f.write_str("event loop is closed"),
            // The driver's messages already say so; the cause is said once.
            Error::Unavailable(e) if e.to_string().starts_with("io_uring unavailable") => e.fmt(f),
            Error::Unavailable(e) => write!(f, "io_uring unavailable: {e}"),
            Error::Io(e) => e.fmt(f),
            Error::Panic(msg) => write!(f, "panicked: {msg}"),
            Error::Other(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) | Error::Unavailable(e) => Some(e.as_ref()),
            Error::Other(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Io(inner) | Error::Unavailable(inner) => inner.kind(),
            Error::Timeout => io::ErrorKind::TimedOut,
            Error::Cancelled => io::ErrorKind::Interrupted,
            Error::Closed => io::ErrorKind::NotConnected,
            Error::InvalidState(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        if let Error::Io(inner) = &e
            && let Some(code) = inner.raw_os_error()
        {
            return io::Error::from_raw_os_error(code);
        }
        io::Error::new(kind, e)
    }
}

impl From<crate::streams::StreamError> for Error {
    /// An I/O failure stays [`Error::Io`]; an incomplete read or a limit overrun is
    /// [`Error::Other`] holding the `StreamError` (downcast it to read `partial`).
    fn from(e: crate::streams::StreamError) -> Self {
        match e {
            crate::streams::StreamError::Io(e) => Error::from(e),
            other => Error::Other(Arc::new(other)),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_os_code_both_ways() {
        let e: Error = io::Error::from_raw_os_error(libc::ECONNRESET).into();
        let back: io::Error = e.clone().into();
        assert_eq!(back.raw_os_error(), Some(libc::ECONNRESET));
        assert!(e.to_string().contains("reset"));
    }

    #[test]
    fn unavailable_says_its_cause_once() {
        let inner = io::Error::other("io_uring unavailable: kernel.io_uring_disabled is 2");
        let text = Error::Unavailable(Arc::new(inner)).to_string();
        assert_eq!(text.matches("io_uring unavailable").count(), 1, "{text}");
        let bare = Error::Unavailable(Arc::new(io::Error::other("ENOSYS"))).to_string();
        assert_eq!(bare, "io_uring unavailable: ENOSYS");
    }

    #[test]
    fn stream_errors_convert_with_their_kind() {
        use crate::streams::StreamError;
        let io_err: Error = StreamError::Io(io::Error::from_raw_os_error(libc::EPIPE)).into();
        assert!(matches!(&io_err, Error::Io(e) if e.raw_os_error() == Some(libc::EPIPE)));
        let short: Error = StreamError::IncompleteRead {
            partial: b"ab".to_vec(),
            expected: Some(4),
        }
        .into();
        let Error::Other(inner) = &short else {
            panic!("{short:?}");
        };
        let back = inner.downcast_ref::<StreamError>().expect("a StreamError");
        assert!(matches!(back, StreamError::IncompleteRead { partial, .. } if partial == b"ab"));
        assert_eq!(io::Error::from(short).kind(), io::ErrorKind::Other);
    }

    #[test]
    fn panic_messages_are_extracted() {
        let r = std::panic::catch_unwind(|| panic!("boom {}", 7));
        assert_eq!(
            Error::from_panic(r.unwrap_err()).to_string(),
            "panicked: boom 7"
        );
    }
}
