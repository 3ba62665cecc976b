//! The transport's handle on its protocol: stream or buffered, shared with the user.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use super::StreamTransport;
use crate::protocol::{BufferedProtocol, Protocol};

/// A stream transport's protocol.
#[derive(Clone)]
pub(crate) enum ProtocolRef {
    Stream(Rc<RefCell<dyn Protocol>>),
    Buffered(Rc<RefCell<dyn BufferedProtocol>>),
    /// After `connection_lost` (breaks the transport ↔ protocol cycle).
    Gone,
}

impl ProtocolRef {
    pub(crate) fn connection_made(&self, t: &StreamTransport) {
        match self {
            ProtocolRef::Stream(p) => p.borrow_mut().connection_made(t),
            ProtocolRef::Buffered(p) => p.borrow_mut().connection_made(t),
            ProtocolRef::Gone => {}
        }
    }

    /// Delivers bytes; an error if a buffered protocol offers no room.
    pub(crate) fn data_received(&self, data: &[u8]) -> io::Result<()> {
        match self {
            ProtocolRef::Stream(p) => p.borrow_mut().data_received(data),
            ProtocolRef::Buffered(p) => {
                let mut off = 0;
                while off < data.len() {
                    let mut p = p.borrow_mut();
                    let rest = &data[off..];
                    let buf = p.get_buffer(rest.len());
                    if buf.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "BufferedProtocol::get_buffer returned an empty buffer",
                        ));
                    }
                    let n = buf.len().min(rest.len());
                    buf[..n].copy_from_slice(&rest[..n]);
                    p.buffer_updated(n);
                    off += n;
                }
            }
            ProtocolRef::Gone => {}
        }
        Ok(())
    }

    pub(crate) fn eof_received(&self) -> bool {
        match self {
            ProtocolRef::Stream(p) => p.borrow_mut().eof_received(),
            ProtocolRef::Buffered(p) => p.borrow_mut().eof_received(),
            ProtocolRef::Gone => false,
        }
    }

    pub(crate) fn connection_lost(&self, exc: Option<io::Error>) {
        match self {
            ProtocolRef::Stream(p) => p.borrow_mut().connection_lost(exc),
            ProtocolRef::Buffered(p) => p.borrow_mut().connection_lost(exc),
            ProtocolRef::Gone => {}
        }
    }

    /// Calls `pause_writing`; false if the protocol is busy in another callback (the
    /// caller retries through `call_soon`).
    pub(crate) fn try_pause_writing(&self) -> bool {
        match self {
            ProtocolRef::Stream(p) => p.try_borrow_mut().map(|mut p| p.pause_writing()).is_ok(),
            ProtocolRef::Buffered(p) => p.try_borrow_mut().map(|mut p| p.pause_writing()).is_ok(),
            ProtocolRef::Gone => true,
        }
    }

    /// Calls `resume_writing`; false if the protocol is busy.
    pub(crate) fn try_resume_writing(&self) -> bool {
        match self {
            ProtocolRef::Stream(p) => p.try_borrow_mut().map(|mut p| p.resume_writing()).is_ok(),
            ProtocolRef::Buffered(p) => p.try_borrow_mut().map(|mut p| p.resume_writing()).is_ok(),
            ProtocolRef::Gone => true,
        }
    }
}
