//! The core driven by hand: a scripted [`Io`] records what the core asks for, and each
//! test delivers the completions itself — no loop, no sockets, no sleeps.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

use bytes::Bytes;

use super::{Core, Io, Recv, Sink, TAG_RECV, TAG_SEND};
use crate::buf::Slice;
use crate::driver::{Completion, OpHandler};
use crate::event_loop::Flush;
use crate::fd::SharedFd;

/// `IORING_CQE_F_MORE`.
const F_MORE: u32 = 1 << 1;

#[derive(Default)]
struct Script {
    /// The receive armed: `Some(multishot)`.
    recv: Cell<Option<bool>>,
    recv_cancels: Cell<u32>,
    /// Data of the next receive completion.
    data: RefCell<VecDeque<Vec<u8>>>,
    sends: RefCell<Vec<(Vec<u8>, bool)>>,
    send: RefCell<Option<Slice<Bytes>>>,
    flushes: RefCell<Vec<Rc<dyn Flush>>>,
    soon: RefCell<VecDeque<Box<dyn FnOnce()>>>,
    reports: Cell<u32>,
    shutdowns: Cell<u32>,
}

impl Io for Rc<Script> {
    fn arm_recv(&self, _: Rc<dyn OpHandler>, multishot: bool) -> io::Result<Option<bool>> {
        self.recv.set(Some(multishot));
        Ok(Some(multishot))
    }
    fn complete_recv<R>(&self, c: Completion, f: impl FnOnce(Recv<'_>) -> R) -> R {
        let multishot = self.recv.get() == Some(true);
        if !c.more() {
            self.recv.set(None);
        }
        if c.result > 0 {
            let data = self.data.borrow_mut().pop_front().unwrap();
            let full = data.len() == 16;
            return f(Recv::Data { bytes: &data, full });
        }
        f(Recv::empty(&c, multishot))
    }
    fn cancel_recv(&self) {
        self.recv_cancels.set(self.recv_cancels.get() + 1);
    }
    fn send(&self, _: Rc<dyn OpHandler>, buf: Slice<Bytes>, quiet: bool) -> io::Result<bool> {
        self.sends
            .borrow_mut()
            .push((buf.get_ref()[buf.begin()..buf.end()].to_vec(), quiet));
        *self.send.borrow_mut() = Some(buf);
        Ok(true)
    }
    fn complete_send(&self, c: Completion) -> Option<(io::Result<usize>, Slice<Bytes>)> {
        let buf = self.send.borrow_mut().take()?;
        Some((c.into_result().map(|n| n as usize), buf))
    }
    fn cancel_all(&self) {
        self.cancel_recv();
    }
    fn shutdown_write(&self) {
        self.shutdowns.set(self.shutdowns.get() + 1);
    }
    fn take_fd(&self) -> Option<SharedFd> {
        None
    }
    fn schedule_flush(&self, flush: Rc<dyn Flush>) {
        self.flushes.borrow_mut().push(flush);
    }
    fn call_soon(&self, f: Box<dyn FnOnce()>) {
        self.soon.borrow_mut().push_back(f);
    }
    fn report(&self, _: &str, _: &io::Error) {
        self.reports.set(self.reports.get() + 1);
    }
    fn closed_error(&self) -> io::Error {
        io::Error::from(io::ErrorKind::NotConnected)
    }
}

/// A protocol that records what it hears; `busy` makes the pause notices fail.
#[derive(Default)]
struct Rec {
    events: RefCell<Vec<String>>,
    busy: Cell<bool>,
}

impl Sink for Rc<Rec> {
    type Detached = ();
    fn data_received(&self, data: &[u8]) -> io::Result<()> {
        self.events
            .borrow_mut()
            .push(format!("data {}", String::from_utf8_lossy(data)));
        Ok(())
    }
    fn eof_received(&self) -> bool {
        self.events.borrow_mut().push("eof".into());
        false
    }
    fn try_pause_writing(&self) -> bool {
        !self.busy.get() && {
            self.events.borrow_mut().push("pause".into());
            true
        }
    }
    fn try_resume_writing(&self) -> bool {
        !self.busy.get() && {
            self.events.borrow_mut().push("resume".into());
            true
        }
    }
    fn connection_lost(&self, err: Option<io::Error>) {
        self.events
            .borrow_mut()
            .push(format!("lost {:?}", err.and_then(|e| e.raw_os_error())));
    }
    fn detach(&self) {}
}

type T = Core<Rc<Script>, Rc<Rec>>;

fn new(multishot: bool) -> (Rc<T>, Rc<Script>, Rc<Rec>) {
    let (io, rec) = (Rc::new(Script::default()), Rc::new(Rec::default()));
    let core = Core::new(io.clone(), rec.clone(), true, multishot);
    core.arm_read();
    (core, io, rec)
}

fn recv(core: &Rc<T>, io: &Script, data: &str, more: bool) {
    io.data.borrow_mut().push_back(data.as_bytes().to_vec());
    let flags = if more { F_MORE } else { 0 };
    core.clone().on_completion(
        TAG_RECV,
        Completion {
            result: data.len() as i32,
            flags,
        },
    );
}

fn complete(core: &Rc<T>, tag: u32, result: i32) {
    core.clone()
        .on_completion(tag, Completion { result, flags: 0 });
}

fn run_soon(io: &Script) {
    loop {
        let f = io.soon.borrow_mut().pop_front();
        match f {
            Some(f) => f(),
            None => break,
        }
    }
}

fn flush(io: &Script) {
    let batch = std::mem::take(&mut *io.flushes.borrow_mut());
    for f in batch {
        f.flush();
    }
}

fn events(rec: &Rec) -> Vec<String> {
    std::mem::take(&mut *rec.events.borrow_mut())
}

#[test]
fn reads_in_order_and_rearms_a_single_shot_receive() {
    let (core, io, rec) = new(false);
    assert_eq!(io.recv.get(), Some(false));
    recv(&core, &io, "ab", false);
    assert_eq!(io.recv.get(), Some(false), "re-armed");
    recv(&core, &io, "cd", false);
    assert_eq!(events(&rec), ["data ab", "data cd"]);
}

#[test]
fn held_while_paused_then_delivered_in_order() {
    let (core, io, rec) = new(true);
    recv(&core, &io, "1", true);
    core.pause_reading();
    assert_eq!(
        io.recv_cancels.get(),
        1,
        "the multishot receive is cancelled"
    );
    recv(&core, &io, "2", true);
    recv(&core, &io, "3", true);
    complete(&core, TAG_RECV, -libc::ECANCELED);
    assert_eq!(io.recv.get(), None, "not re-armed while paused");
    assert_eq!(events(&rec), ["data 1"]);
    core.resume_reading();
    assert!(events(&rec).is_empty(), "held data goes through call_soon");
    run_soon(&io);
    assert_eq!(events(&rec), ["data 2", "data 3"]);
    assert_eq!(
        io.recv.get(),
        Some(false),
        "throttled: single-shot after a pause"
    );
    recv(&core, &io, "short", false);
    assert_eq!(
        io.recv.get(),
        Some(true),
        "a short receive: multishot again"
    );
}

#[test]
fn writes_of_one_iteration_coalesce_and_short_sends_continue() {
    let (core, io, _rec) = new(false);
    core.write([&b"hello "[..]]).unwrap();
    core.write([&b"world"[..]]).unwrap();
    assert_eq!(io.flushes.borrow().len(), 1, "one flush");
    flush(&io);
    assert_eq!(io.sends.borrow()[0], (b"hello world".to_vec(), true));
    complete(&core, TAG_SEND, 4);
    assert_eq!(io.sends.borrow()[1], (b"o world".to_vec(), false));
    assert_eq!(core.write_buffer_size(), 7);
    complete(&core, TAG_SEND, 7);
    assert_eq!(core.write_buffer_size(), 0);
}

#[test]
fn pause_and_resume_writing_at_the_marks() {
    let (core, io, rec) = new(false);
    core.set_write_buffer_limits(Some(8), Some(2)).unwrap();
    core.write([&b"12345"[..]]).unwrap();
    core.write([&b"6789"[..]]).unwrap();
    assert_eq!(events(&rec), ["pause"]);
    flush(&io);
    complete(&core, TAG_SEND, 8);
    assert!(
        events(&rec).is_empty(),
        "a short send continues; no notice yet"
    );
    complete(&core, TAG_SEND, 1);
    assert_eq!(events(&rec), ["resume"]);
}

#[test]
fn a_busy_protocol_hears_pause_before_more_data() {
    let (core, io, rec) = new(true);
    core.set_write_buffer_limits(Some(4), Some(1)).unwrap();
    rec.busy.set(true);
    core.write([&b"abc"[..]]).unwrap();
    core.write([&b"def"[..]]).unwrap();
    assert!(events(&rec).is_empty());
    assert_eq!(
        io.recv_cancels.get(),
        1,
        "write backpressure throttles reading"
    );
    rec.busy.set(false);
    recv(&core, &io, "x", true);
    assert_eq!(events(&rec), ["pause", "data x"]);
    run_soon(&io);
    assert!(events(&rec).is_empty(), "told once");
}

#[test]
fn write_eof_waits_for_the_send_in_flight() {
    let (core, io, _rec) = new(false);
    core.write([&b"abc"[..]]).unwrap();
    flush(&io);
    core.write_eof();
    assert_eq!(io.shutdowns.get(), 0);
    assert!(core.write([&b"x"[..]]).is_err());
    complete(&core, TAG_SEND, 3);
    assert_eq!(io.shutdowns.get(), 1);
}

#[test]
fn close_flushes_then_lost_once() {
    let (core, io, rec) = new(false);
    core.write([&b"abc"[..]]).unwrap();
    flush(&io);
    core.close();
    core.close();
    run_soon(&io);
    assert!(events(&rec).is_empty(), "not before the last byte left");
    complete(&core, TAG_SEND, 3);
    core.force_close(None);
    run_soon(&io);
    assert_eq!(events(&rec), ["lost None"]);
}

#[test]
fn abort_drops_the_backlog_and_ends_once() {
    let (core, io, rec) = new(false);
    core.write([&b"abc"[..]]).unwrap();
    core.force_close(None);
    core.force_close(None);
    core.close();
    assert_eq!(core.write_buffer_size(), 0);
    run_soon(&io);
    assert_eq!(events(&rec), ["lost None"]);
}

#[test]
fn a_fatal_error_is_reported_a_peer_reset_is_not() {
    let (core, io, rec) = new(false);
    complete(&core, TAG_RECV, -libc::EIO);
    run_soon(&io);
    assert_eq!(io.reports.get(), 1);
    assert_eq!(events(&rec), [format!("lost Some({})", libc::EIO)]);
    let (core, io, rec) = new(false);
    complete(&core, TAG_RECV, -libc::ECONNRESET);
    run_soon(&io);
    assert_eq!(io.reports.get(), 0);
    assert_eq!(events(&rec), [format!("lost Some({})", libc::ECONNRESET)]);
}

#[test]
fn eof_reaches_the_protocol_and_closes() {
    let (core, io, rec) = new(false);
    recv(&core, &io, "a", false);
    complete(&core, TAG_RECV, 0);
    run_soon(&io);
    assert_eq!(events(&rec), ["data a", "eof", "lost None"]);
}
