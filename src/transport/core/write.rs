//! The core's write side: a backlog that leaves as one send at the loop's pre-submit
//! flush, one send in flight, short sends continued before anything newer, quiet sends
//! when nothing waits on their completion, `write_eof` once the buffer drained, and the
//! water marks with their notices ([`Told`]).

use std::io;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::super::flow::{Told, WaterMarks};
use super::{Core, Io, Sink, State};
use crate::buf::{IoBuf, Slice};
use crate::driver::Completion;

/// The write side's state.
#[derive(Default)]
pub(super) struct WriteSide {
    pub(super) backlog: BytesMut,
    /// A send is in flight.
    sending: bool,
    /// Bytes of the send in flight not yet taken by the kernel.
    in_flight: usize,
    pub(super) flush_scheduled: bool,
    pub(super) marks: WaterMarks,
    told: Told,
    eof_requested: bool,
    eof_sent: bool,
}

impl WriteSide {
    fn size(&self) -> usize {
        self.backlog.len() + self.in_flight
    }

    /// Whether the protocol was not told of the marks' last change yet.
    pub(super) fn notice_owed(&self) -> bool {
        self.told.owed(&self.marks).is_some()
    }
}

impl<I: Io, S: Sink> Core<I, S> {
    /// Bytes written and not yet taken by the kernel.
    pub(crate) fn write_buffer_size(&self) -> usize {
        self.st.borrow().write.size()
    }

    /// `(low, high)`.
    pub(crate) fn write_buffer_limits(&self) -> (usize, usize) {
        self.st.borrow().write.marks.limits()
    }

    /// Sets the water marks; the protocol hears of it if the buffer is now on the other
    /// side of one.
    pub(crate) fn set_write_buffer_limits(
        self: &Rc<Self>,
        high: Option<usize>,
        low: Option<usize>,
    ) -> io::Result<()> {
        self.st.borrow_mut().write.marks.set(high, low)?;
        self.maybe_pause();
        self.maybe_resume();
        Ok(())
    }

    /// Appends `parts` to the backlog as one write.
    ///
    /// As in asyncio's proactor transport, the first write on an idle transport starts a
    /// send (here: at the loop's next flush) and is not judged for flow control — a send
    /// that completes at once must not pause; it is judged when it completes short. A
    /// write that queues behind earlier bytes (a send in flight, or a backlog waiting for
    /// the flush) is judged at once.
    pub(crate) fn write<'a>(
        self: &Rc<Self>,
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        if st.life.closing || st.life.lost_scheduled {
            return Err(self.io.closed_error());
        }
        let w = &mut st.write;
        if w.eof_requested {
            return Err(self.io.eof_error());
        }
        let queued_behind = w.sending || !w.backlog.is_empty();
        for data in parts {
            w.backlog.extend_from_slice(data);
        }
        if w.backlog.is_empty() {
            return Ok(());
        }
        let schedule = !w.sending && !w.flush_scheduled;
        w.flush_scheduled |= schedule;
        drop(st);
        if schedule {
            self.io.schedule_flush(self.clone());
        }
        if queued_behind {
            self.maybe_pause();
        }
        Ok(())
    }

    /// Closes the write side once the buffer is flushed.
    pub(crate) fn write_eof(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.life.closing || st.write.eof_requested {
                return;
            }
            st.write.eof_requested = true;
        }
        self.after_flush();
    }

    /// Sends the backlog as one send, if no send is in flight (the flush).
    pub(super) fn start_send(self: &Rc<Self>) {
        let mut guard = self.st.borrow_mut();
        let st = &mut *guard;
        let w = &mut st.write;
        if w.sending || w.backlog.is_empty() || st.life.lost_scheduled {
            return;
        }
        let data = w.backlog.split().freeze();
        w.in_flight = data.len();
        // Quiet when nothing waits on this send (no close, write_eof or paused protocol
        // to act on its completion): the enter that submits it may then sleep through it.
        let quiet = !st.life.closing && !w.eof_requested && !w.marks.paused();
        self.push_send(st, data.slice(..), quiet);
    }

    fn push_send(self: &Rc<Self>, st: &mut State, buf: Slice<Bytes>, quiet: bool) {
        match self.io.send(self.handler(), buf, quiet) {
            Ok(true) => st.write.sending = true,
            Ok(false) => {
                // The fd is gone (the transport is over).
                st.write.backlog.clear();
                st.write.in_flight = 0;
            }
            Err(e) => {
                st.write.in_flight = 0;
                let this = self.clone();
                self.io
                    .call_soon(Box::new(move || this.fatal_error(e, I::SENDING)));
            }
        }
    }

    pub(super) fn on_send(self: &Rc<Self>, c: Completion) {
        let Some((result, slice)) = self.io.complete_send(c) else {
            return;
        };
        let mut guard = self.st.borrow_mut();
        let st = &mut *guard;
        st.write.sending = false;
        // An `at_once` send that found no room is sent again, waiting for room.
        let (result, again) = match result {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => (Ok(0), true),
            r => (r, false),
        };
        match result {
            Ok(n) => {
                let (begin, end) = (slice.begin() + n, slice.end());
                st.write.in_flight = end - begin;
                if begin < end && !st.life.lost_scheduled {
                    if n == 0 && !again {
                        drop(guard);
                        self.fatal_error(io::Error::from(io::ErrorKind::WriteZero), I::SENDING);
                        return;
                    }
                    // Short send: continue from where it stopped, before anything newer.
                    let rest = slice.into_inner().slice(begin..end);
                    self.push_send(st, rest, false);
                    drop(guard);
                    self.maybe_pause();
                    return;
                }
                st.write.in_flight = 0;
                let w = &mut st.write;
                let more = !w.backlog.is_empty() && !st.life.lost_scheduled;
                let schedule = more && !w.flush_scheduled;
                w.flush_scheduled |= schedule;
                drop(guard);
                if schedule {
                    self.io.schedule_flush(self.clone());
                }
                self.maybe_resume();
                self.after_flush();
            }
            Err(e) => {
                st.write.in_flight = 0;
                let over = st.life.lost_scheduled;
                drop(guard);
                if !over && e.raw_os_error() != Some(libc::ECANCELED) {
                    self.fatal_error(e, I::SENDING);
                }
            }
        }
        self.maybe_release_fd();
    }

    /// After the buffer drained: a pending `write_eof` or `close` takes effect.
    pub(super) fn after_flush(self: &Rc<Self>) {
        let mut guard = self.st.borrow_mut();
        let st = &mut *guard;
        let w = &mut st.write;
        if w.sending || !w.backlog.is_empty() {
            return;
        }
        if w.eof_requested && !w.eof_sent {
            w.eof_sent = true;
            self.io.shutdown_write();
        }
        if st.life.closing && !st.life.lost_scheduled {
            drop(guard);
            self.schedule_lost(None);
        }
    }

    fn maybe_pause(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        let size = st.write.size();
        if st.life.lost_scheduled || !st.write.marks.pause_due(size) {
            return;
        }
        self.throttle(&mut st);
        drop(st);
        self.sync_flow();
    }

    fn maybe_resume(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        let size = st.write.size();
        if st.life.lost_scheduled || !st.write.marks.resume_due(size) {
            return;
        }
        drop(st);
        self.sync_flow();
    }

    /// Tells the protocol `pause_writing` or `resume_writing` when its last word differs
    /// from the marks' state. A protocol busy in a callback (writing from
    /// `data_received` is the usual case) hears it through `call_soon`, or before the
    /// next delivery of data, whichever comes first.
    pub(super) fn sync_flow(self: &Rc<Self>) {
        loop {
            let want = {
                let mut st = self.st.borrow_mut();
                let over = st.life.lost_scheduled;
                let w = &mut st.write;
                match w.told.owed(&w.marks) {
                    Some(want) if !over => {
                        w.told.tell(want);
                        want
                    }
                    _ => return,
                }
            };
            let heard = if want {
                self.sink.try_pause_writing()
            } else {
                self.sink.try_resume_writing()
            };
            if !heard {
                let schedule = self.st.borrow_mut().write.told.busy(want);
                if schedule {
                    let this = self.clone();
                    self.io.call_soon(Box::new(move || {
                        this.st.borrow_mut().write.told.retried();
                        this.sync_flow();
                    }));
                }
                return;
            }
        }
    }
}
