//! The protocol under a stream pair: asyncio's `StreamReaderProtocol` with its
//! `FlowControlMixin`.
//!
//! It is an ordinary [`Protocol`] on an ordinary [`StreamTransport`] — the streams API has
//! no I/O path of its own. Received bytes, end of stream and the connection's end go to the
//! reader's [`ReadState`]; `pause_writing`/`resume_writing` and `connection_lost` go to the
//! [`FlowState`] that [`StreamWriter::drain`](super::StreamWriter::drain) and
//! [`StreamWriter::wait_closed`](super::StreamWriter::wait_closed) wait on.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::Waker;

use super::reader::ReadState;
use super::{StreamReader, StreamWriter, copy_error, pair};
use crate::protocol::Protocol;
use crate::transport::StreamTransport;

/// The writer's view of the connection.
#[derive(Default)]
pub(crate) struct FlowState {
    /// Between `pause_writing` and `resume_writing`.
    pub(crate) paused: bool,
    /// `connection_lost` was called.
    pub(crate) lost: bool,
    /// The error it was called with.
    pub(crate) error: Option<io::Error>,
    pub(crate) drain_wakers: Vec<Waker>,
    pub(crate) closed_wakers: Vec<Waker>,
}

impl FlowState {
    fn wake_drains(&mut self) {
        for w in self.drain_wakers.drain(..) {
            w.wake();
        }
    }
}

/// Registers `waker` once in `list`.
pub(crate) fn register(list: &mut Vec<Waker>, waker: &Waker) {
    if !list.iter().any(|w| w.will_wake(waker)) {
        list.push(waker.clone());
    }
}

/// What the protocol shares with the reader and the writers.
pub(crate) struct Shared {
    pub(crate) read: Rc<RefCell<ReadState>>,
    pub(crate) flow: RefCell<FlowState>,
}

/// Called in `connection_made` with the new pair (server side).
pub(crate) type OnConnect = Box<dyn FnOnce(StreamReader, StreamWriter)>;

/// asyncio's `StreamReaderProtocol`.
pub(crate) struct StreamReaderProtocol {
    pub(crate) shared: Rc<Shared>,
    on_connect: Option<OnConnect>,
}

impl StreamReaderProtocol {
    pub(crate) fn new(limit: usize, on_connect: Option<OnConnect>) -> Self {
        StreamReaderProtocol {
            shared: Rc::new(Shared {
                read: Rc::new(RefCell::new(ReadState::new(limit))),
                flow: RefCell::new(FlowState::default()),
            }),
            on_connect,
        }
    }
}

impl Protocol for StreamReaderProtocol {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.shared
            .read
            .borrow_mut()
            .set_transport(Some(transport.clone()));
        if let Some(cb) = self.on_connect.take() {
            let (reader, writer) = pair(self.shared.clone(), transport.clone());
            cb(reader, writer);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        let pause = self.shared.read.borrow_mut().feed_data(data);
        if let Some(t) = pause {
            t.pause_reading();
        }
    }

    fn eof_received(&mut self) -> bool {
        self.shared.read.borrow_mut().feed_eof();
        // Keep our write side open: the writer closes it (half-close), as asyncio.
        true
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        {
            let mut read = self.shared.read.borrow_mut();
            match &exc {
                None => read.feed_eof(),
                Some(e) => read.set_exception(copy_error(e)),
            }
            read.set_transport(None);
        }
        let (drains, closed) = {
            let mut flow = self.shared.flow.borrow_mut();
            flow.lost = true;
            flow.error = exc;
            (
                std::mem::take(&mut flow.drain_wakers),
                std::mem::take(&mut flow.closed_wakers),
            )
        };
        for w in drains.into_iter().chain(closed) {
            w.wake();
        }
    }

    fn pause_writing(&mut self) {
        self.shared.flow.borrow_mut().paused = true;
    }

    fn resume_writing(&mut self) {
        let mut flow = self.shared.flow.borrow_mut();
        flow.paused = false;
        flow.wake_drains();
    }
}
