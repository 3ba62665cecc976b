//! Which engine runs a loop's ops, and how its name is parsed (`LoopBuilder::engine`,
//! `RINGLOOP_ENGINE`).

use std::sync::Arc;

use crate::error::Error;

/// Which engine executes the loop's operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A Linux io_uring ring (the point of ringloop).
    Uring,
    /// epoll readiness plus non-blocking syscalls: the baseline, and the fallback where
    /// io_uring is refused.
    Epoll,
    /// io_uring, falling back to epoll (with a note on stderr) only when it is refused.
    Auto,
}

impl std::str::FromStr for Engine {
    type Err = Error;

    /// `uring` (or `io_uring`), `epoll` or `auto`, in any case.
    fn from_str(s: &str) -> Result<Engine, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "uring" | "io_uring" => Ok(Engine::Uring),
            "epoll" => Ok(Engine::Epoll),
            "auto" => Ok(Engine::Auto),
            other => Err(Error::Io(Arc::new(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("unknown engine {other:?}: expected uring, epoll or auto"),
            )))),
        }
    }
}

impl Engine {
    /// The engine `RINGLOOP_ENGINE` asks for (io_uring when unset).
    pub(crate) fn from_env() -> Result<Engine, Error> {
        match std::env::var("RINGLOOP_ENGINE") {
            Err(_) => Ok(Engine::Uring),
            Ok(v) if v.trim().is_empty() => Ok(Engine::Uring),
            Ok(v) => v.parse().map_err(|e| match e {
                Error::Io(io) => Error::Io(Arc::new(std::io::Error::new(
                    io.kind(),
                    format!("RINGLOOP_ENGINE: {io}"),
                ))),
                other => other,
            }),
        }
    }
}
