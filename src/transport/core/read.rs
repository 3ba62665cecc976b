//! The core's read side: one receive in flight, pause/resume with the completions that
//! arrive while paused held and delivered in order, re-arming after `ENOBUFS` or the end
//! of a multishot receive, end of file, and the backpressure throttle (see the module
//! docs of [`super`]).

use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

use super::{Core, Io, Sink};
use crate::driver::Completion;

/// One receive's completion, as the core sees it.
pub(crate) enum Recv<'a> {
    /// Bytes; `full` when a single-shot receive filled its buffer (more may wait).
    Data { bytes: &'a [u8], full: bool },
    /// End of file.
    Eof,
    /// The buffer ring ran dry (`ENOBUFS`): backpressure, not end of stream.
    NoBuffers,
    /// Cancelled (pause, close, abort or throttle).
    Cancelled,
    /// The kernel refused a multishot receive (`EINVAL`): single-shot from now on.
    Unsupported,
    /// Interrupted (`EINTR`): read again.
    Interrupted,
    /// Any other error.
    Error(io::Error),
}

impl Recv<'static> {
    /// The meaning of a completion that carries no bytes (`result <= 0`).
    pub(crate) fn empty(c: &Completion, multishot: bool) -> Recv<'static> {
        match -c.result {
            0 => Recv::Eof,
            libc::ENOBUFS => Recv::NoBuffers,
            libc::ECANCELED => Recv::Cancelled,
            libc::EINVAL if multishot => Recv::Unsupported,
            libc::EINTR => Recv::Interrupted,
            e => Recv::Error(io::Error::from_raw_os_error(e)),
        }
    }
}

/// What arrived while reading was paused, delivered in order on resume.
enum Held {
    Data(Vec<u8>),
    Eof,
    Error(io::Error),
}

/// The receive in flight.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Armed {
    Idle,
    Single,
    Multishot,
}

/// The read side's state.
pub(super) struct ReadSide {
    /// Not paused.
    pub(super) reading: bool,
    armed: Armed,
    /// Multishot receives are possible (the configuration has them, the kernel takes them).
    multishot: bool,
    /// Backpressure: single-shot receives until the socket drains.
    pub(super) throttled: bool,
    pub(super) held: HeldQueue,
    eof: bool,
}

/// Held completions, in order.
#[derive(Default)]
pub(super) struct HeldQueue(VecDeque<Held>);

impl HeldQueue {
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ReadSide {
    pub(super) fn new(reading: bool, multishot: bool) -> Self {
        ReadSide {
            reading,
            armed: Armed::Idle,
            multishot,
            throttled: false,
            held: HeldQueue::default(),
            eof: false,
        }
    }

    /// Whether a receive is in flight.
    pub(super) fn armed(&self) -> bool {
        self.armed != Armed::Idle
    }

    /// Whether the receive in flight is multishot.
    pub(super) fn multishot_armed(&self) -> bool {
        self.armed == Armed::Multishot
    }

    /// Whether a completion must be held rather than delivered: reading is paused, or
    /// earlier completions are still held (resume delivers them through `call_soon`, and
    /// a receive may complete before that).
    fn must_hold(&self) -> bool {
        !self.reading || !self.held.is_empty()
    }
}

impl<I: Io, S: Sink> Core<I, S> {
    /// Arms the receive, unless one is in flight or reading is paused or over.
    pub(crate) fn arm_read(self: &Rc<Self>) {
        let multishot = {
            let st = self.st.borrow();
            let r = &st.read;
            if !r.reading || r.eof || r.armed() || st.life.closing || st.life.lost_scheduled {
                return;
            }
            r.multishot && !r.throttled
        };
        match self.io.arm_recv(self.handler(), multishot) {
            Ok(Some(multi)) => {
                self.st.borrow_mut().read.armed = if multi {
                    Armed::Multishot
                } else {
                    Armed::Single
                };
            }
            Ok(None) => {}
            Err(e) => self.fatal_error(e, "arming a receive"),
        }
    }

    /// Whether the protocol reads (not paused, not closing).
    pub(crate) fn is_reading(&self) -> bool {
        let st = self.st.borrow();
        st.read.reading && !st.life.closing
    }

    /// Stops `data_received` until [`Core::resume_reading`]; what is in flight is held.
    pub(crate) fn pause_reading(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        if !st.read.reading || st.life.closing {
            return;
        }
        st.read.reading = false;
        // Whatever the socket holds now waits there, not in our memory.
        st.read.throttled = true;
        if st.read.multishot_armed() {
            self.io.cancel_recv();
        }
    }

    /// Delivers what was held (through `call_soon`), then reads on.
    pub(crate) fn resume_reading(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.read.reading || st.life.closing {
                return;
            }
            st.read.reading = true;
            if st.read.held.is_empty() {
                drop(st);
                self.arm_read();
                return;
            }
        }
        let this = self.clone();
        self.io.call_soon(Box::new(move || this.deliver_held()));
    }

    /// Throttles reading for write backpressure: the multishot receive (if any) makes
    /// way for single-shot ones.
    pub(super) fn throttle(&self, st: &mut super::State) {
        st.read.throttled = true;
        if st.read.multishot_armed() && st.read.reading {
            self.io.cancel_recv();
        }
    }

    pub(super) fn on_recv(self: &Rc<Self>, c: Completion) {
        let last = !c.more();
        self.io
            .complete_recv(c, |recv| self.handle_recv(recv, last));
        self.maybe_release_fd();
    }

    fn handle_recv(self: &Rc<Self>, recv: Recv<'_>, last: bool) {
        let mut st = self.st.borrow_mut();
        let was = st.read.armed;
        if last {
            st.read.armed = Armed::Idle;
        }
        let over = st.life.lost_scheduled || st.life.closing;
        match recv {
            Recv::Data { bytes, full } => {
                if was == Armed::Single && !full && st.read.reading && !st.write.marks.paused() {
                    // The socket is drained and nobody is behind: multishot again.
                    st.read.throttled = false;
                }
                if over {
                    return;
                }
                if st.read.must_hold() {
                    st.read.held.0.push_back(Held::Data(bytes.to_vec()));
                    return;
                }
                let owed = st.write.notice_owed();
                drop(st);
                if owed {
                    // A pause_writing the protocol could not hear while it was busy
                    // reaches it before more data does (as asyncio's, inside `write`).
                    self.sync_flow();
                    let mut st = self.st.borrow_mut();
                    if st.read.must_hold() {
                        st.read.held.0.push_back(Held::Data(bytes.to_vec()));
                        return;
                    }
                }
                if I::REARM_FIRST && last {
                    self.arm_read();
                }
                if let Err(e) = self.sink.data_received(bytes) {
                    self.fatal_error(e, "delivering data");
                    return;
                }
                if !I::REARM_FIRST && last {
                    self.arm_read();
                }
            }
            Recv::Eof => {
                st.read.eof = true;
                if over {
                } else if st.read.must_hold() {
                    st.read.held.0.push_back(Held::Eof);
                } else {
                    drop(st);
                    self.handle_eof();
                }
            }
            Recv::NoBuffers | Recv::Cancelled | Recv::Interrupted => {
                // The ring ran dry (buffers are recycled as completions are delivered,
                // so re-arming finds some), or we cancelled (pause, close, throttle).
                drop(st);
                if last {
                    self.arm_read();
                }
            }
            Recv::Unsupported => {
                st.read.multishot = false;
                drop(st);
                self.arm_read();
            }
            Recv::Error(err) => {
                if over {
                } else if st.read.must_hold() {
                    st.read.held.0.push_back(Held::Error(err));
                } else {
                    drop(st);
                    self.fatal_error(err, "receiving");
                }
            }
        }
    }

    fn handle_eof(self: &Rc<Self>) {
        if !self.sink.eof_received() {
            self.close();
        }
    }

    fn deliver_held(self: &Rc<Self>) {
        loop {
            let item = {
                let mut st = self.st.borrow_mut();
                if !st.read.reading || st.life.lost_scheduled {
                    return;
                }
                match st.read.held.0.pop_front() {
                    Some(item) => item,
                    None => break,
                }
            };
            match item {
                Held::Data(data) => {
                    if let Err(e) = self.sink.data_received(&data) {
                        self.fatal_error(e, "delivering data");
                        return;
                    }
                }
                Held::Eof => self.handle_eof(),
                Held::Error(e) => {
                    self.fatal_error(e, "receiving");
                    return;
                }
            }
        }
        self.arm_read();
    }
}
