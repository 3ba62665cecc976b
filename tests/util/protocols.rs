//! Protocols for the networking tests: one that records every callback, an echo with
//! backpressure, and a buffered one that verifies a patterned stream.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ringloop::{BufferedProtocol, Protocol, StreamTransport};

use super::Verifier;

/// One protocol callback, as recorded by [`Recorder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Made,
    Data(usize),
    Eof,
    /// `connection_lost`, with the error's raw OS code (or -1 for an error without one).
    Lost(Option<i32>),
    PauseWriting,
    ResumeWriting,
}

/// What a [`Recorder`] saw, shared with the test.
#[derive(Default)]
pub struct Seen {
    pub events: RefCell<Vec<Ev>>,
    pub bytes: RefCell<Vec<u8>>,
    pub transport: RefCell<Option<StreamTransport>>,
    /// Write-buffer size when `pause_writing`/`resume_writing`/`connection_lost` ran.
    pub size_at_pause: Cell<Option<usize>>,
    pub size_at_resume: Cell<Option<usize>>,
    pub size_at_lost: Cell<Option<usize>>,
}

impl Seen {
    pub fn events(&self) -> Vec<Ev> {
        self.events.borrow().clone()
    }

    pub fn transport(&self) -> StreamTransport {
        self.transport
            .borrow()
            .clone()
            .expect("connection_made ran")
    }

    pub fn count(&self, f: impl Fn(&Ev) -> bool) -> usize {
        self.events.borrow().iter().filter(|e| f(e)).count()
    }

    pub fn lost(&self) -> bool {
        self.count(|e| matches!(e, Ev::Lost(_))) > 0
    }

    /// Asserts asyncio's callback order: made, data*, eof?, lost exactly once and last.
    pub fn assert_order(&self) {
        let ev = self.events();
        let core: Vec<&Ev> = ev
            .iter()
            .filter(|e| !matches!(e, Ev::PauseWriting | Ev::ResumeWriting))
            .collect();
        assert_eq!(core.first(), Some(&&Ev::Made), "made first: {ev:?}");
        assert!(
            matches!(core.last(), Some(Ev::Lost(_))),
            "lost last: {ev:?}"
        );
        assert_eq!(self.count(|e| matches!(e, Ev::Lost(_))), 1, "{ev:?}");
        assert_eq!(self.count(|e| *e == Ev::Made), 1, "{ev:?}");
        assert!(self.count(|e| *e == Ev::Eof) <= 1, "{ev:?}");
        if let Some(eof) = core.iter().position(|e| **e == Ev::Eof) {
            assert!(
                core[eof..].iter().all(|e| !matches!(e, Ev::Data(_))),
                "no data after eof: {ev:?}"
            );
        }
    }
}

type Hook = Box<dyn FnMut(&StreamTransport, &[u8])>;
type TransportHook = Box<dyn FnMut(&StreamTransport)>;

/// A protocol that records every callback into a shared [`Seen`].
pub struct Recorder {
    pub seen: Rc<Seen>,
    /// What `eof_received` returns.
    pub keep_open_on_eof: bool,
    /// Called after each `data_received` is recorded.
    pub on_data: Option<Hook>,
    /// Called at `connection_made`.
    pub on_made: Option<TransportHook>,
    /// Called at `eof_received` (before it returns).
    pub on_eof: Option<TransportHook>,
}

impl Recorder {
    pub fn new() -> (Recorder, Rc<Seen>) {
        let seen = Rc::new(Seen::default());
        (
            Recorder {
                seen: seen.clone(),
                keep_open_on_eof: false,
                on_data: None,
                on_made: None,
                on_eof: None,
            },
            seen,
        )
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.seen.events.borrow_mut().push(Ev::Made);
        *self.seen.transport.borrow_mut() = Some(transport.clone());
        if let Some(f) = &mut self.on_made {
            f(transport);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.seen.events.borrow_mut().push(Ev::Data(data.len()));
        self.seen.bytes.borrow_mut().extend_from_slice(data);
        if let Some(f) = &mut self.on_data {
            let t = self.seen.transport();
            f(&t, data);
        }
    }

    fn eof_received(&mut self) -> bool {
        self.seen.events.borrow_mut().push(Ev::Eof);
        if let Some(f) = &mut self.on_eof {
            let t = self.seen.transport();
            f(&t);
        }
        self.keep_open_on_eof
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let code = exc.map(|e| e.raw_os_error().unwrap_or(-1));
        self.seen.events.borrow_mut().push(Ev::Lost(code));
        if let Some(t) = self.seen.transport.borrow().as_ref() {
            self.seen.size_at_lost.set(Some(t.get_write_buffer_size()));
        }
    }

    fn pause_writing(&mut self) {
        self.seen.events.borrow_mut().push(Ev::PauseWriting);
        if let Some(t) = self.seen.transport.borrow().as_ref() {
            self.seen.size_at_pause.set(Some(t.get_write_buffer_size()));
        }
    }

    fn resume_writing(&mut self) {
        self.seen.events.borrow_mut().push(Ev::ResumeWriting);
        if let Some(t) = self.seen.transport.borrow().as_ref() {
            self.seen
                .size_at_resume
                .set(Some(t.get_write_buffer_size()));
        }
    }
}

/// Counters an [`Echo`] server shares with its test (plain atomics: servers may run on
/// their own thread).
#[derive(Default)]
pub struct EchoStats {
    pub made: AtomicUsize,
    pub lost_clean: AtomicUsize,
    pub lost_error: AtomicUsize,
    pub bytes: AtomicUsize,
    pub paused: AtomicUsize,
}

/// Echoes every byte; mirrors write backpressure onto reading; closes (after flushing) at
/// end of stream.
pub struct Echo {
    pub transport: Option<StreamTransport>,
    pub stats: std::sync::Arc<EchoStats>,
}

impl Echo {
    pub fn new(stats: &std::sync::Arc<EchoStats>) -> Echo {
        Echo {
            transport: None,
            stats: stats.clone(),
        }
    }
}

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.stats.made.fetch_add(1, Ordering::Relaxed);
        self.transport = Some(transport.clone());
    }

    fn data_received(&mut self, data: &[u8]) {
        self.stats.bytes.fetch_add(data.len(), Ordering::Relaxed);
        if let Some(t) = &self.transport {
            t.write(data).expect("echo write");
        }
    }

    fn pause_writing(&mut self) {
        self.stats.paused.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        match exc {
            None => self.stats.lost_clean.fetch_add(1, Ordering::Relaxed),
            Some(_) => self.stats.lost_error.fetch_add(1, Ordering::Relaxed),
        };
        self.transport = None;
    }
}

/// A [`BufferedProtocol`] that verifies a patterned stream through a small buffer of its
/// own (several `get_buffer` calls per receive), optionally echoing it.
pub struct BufferedCheck {
    pub buf: Vec<u8>,
    pub verifier: Rc<RefCell<Verifier>>,
    pub transport: Option<StreamTransport>,
    pub echo: bool,
    pub eof: Rc<Cell<bool>>,
    pub lost: Rc<Cell<usize>>,
}

impl BufferedProtocol for BufferedCheck {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.transport = Some(transport.clone());
    }

    fn get_buffer(&mut self, _size_hint: usize) -> &mut [u8] {
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        self.verifier.borrow_mut().feed(&self.buf[..nbytes]);
        if self.echo
            && let Some(t) = &self.transport
        {
            t.write(&self.buf[..nbytes]).expect("echo write");
        }
    }

    fn eof_received(&mut self) -> bool {
        self.eof.set(true);
        false
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        assert!(exc.is_none(), "buffered connection lost: {exc:?}");
        self.lost.set(self.lost.get() + 1);
        self.transport = None;
    }
}
