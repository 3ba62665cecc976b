//! `Server`: listening sockets whose multishot accepts become stream transports.
//!
//! Each listener keeps one multishot `accept` in the ring (one SQE for every connection
//! until the kernel ends it; then it is re-armed). No error may make it spin:
//! - `EMFILE`/`ENFILE` (out of fds) and any error not known to be a passing one are
//!   reported through the loop's exception handler and accepting resumes after a back-off
//!   timer, so the server keeps serving once fds free up;
//! - errors the peer caused (`ECONNABORTED`, a network error passed on by accept(2)) re-arm
//!   at once;
//! - `EINVAL` from a multishot accept (a kernel without it) falls back to single-shot
//!   accepts, said once through the exception handler.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::driver::{Completion, OpHandler};
use crate::event_loop::{EventLoop, ExceptionContext, TimerHandle};
use crate::fd::SharedFd;
use crate::op::{self, InFlight};
use crate::sys::socket;
use crate::transport::{ProtocolRef, StreamKind, StreamTransport};

/// How long accepting pauses after running out of fds.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub(crate) type ProtocolFactory = Box<dyn FnMut() -> ProtocolRef>;

pub(crate) struct ServerInner {
    event_loop: EventLoop,
    kind: StreamKind,
    listeners: RefCell<Vec<Rc<Listener>>>,
    factory: RefCell<ProtocolFactory>,
    serving: Cell<bool>,
    closed: Cell<bool>,
    active: Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
    unix_path: Option<PathBuf>,
}

struct Listener {
    server: Weak<ServerInner>,
    fd: RefCell<Option<SharedFd>>,
    raw: i32,
    /// The accept in flight (its fd clone keeps the number from reuse).
    accept: RefCell<Option<InFlight<op::Accepts>>>,
    backoff: RefCell<Option<TimerHandle>>,
    /// Multishot accepts until the kernel refuses one.
    multishot: Cell<bool>,
}

/// A listening server, as asyncio's `Server`.
#[derive(Clone)]
pub struct Server {
    inner: Rc<ServerInner>,
}

impl Server {
    pub(crate) fn new(
        event_loop: &EventLoop,
        kind: StreamKind,
        fds: Vec<OwnedFd>,
        factory: ProtocolFactory,
        unix_path: Option<PathBuf>,
    ) -> Server {
        let inner = Rc::new(ServerInner {
            event_loop: event_loop.clone(),
            kind,
            listeners: RefCell::new(Vec::new()),
            factory: RefCell::new(factory),
            serving: Cell::new(false),
            closed: Cell::new(false),
            active: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            unix_path,
        });
        let listeners = fds
            .into_iter()
            .map(|fd| {
                let fd = SharedFd::new(fd);
                Rc::new(Listener {
                    server: Rc::downgrade(&inner),
                    raw: fd.raw(),
                    fd: RefCell::new(Some(fd)),
                    accept: RefCell::new(None),
                    backoff: RefCell::new(None),
                    multishot: Cell::new(true),
                })
            })
            .collect();
        *inner.listeners.borrow_mut() = listeners;
        Server { inner }
    }

    /// Starts accepting (idempotent).
    pub fn start_serving(&self) {
        if self.inner.closed.get() || self.inner.serving.replace(true) {
            return;
        }
        for l in self.inner.listeners.borrow().iter() {
            l.arm();
        }
    }

    /// Whether the server accepts connections.
    pub fn is_serving(&self) -> bool {
        self.inner.serving.get()
    }

    /// The listening addresses (IP servers).
    pub fn sockets(&self) -> Vec<SocketAddr> {
        self.inner
            .listeners
            .borrow()
            .iter()
            .filter_map(|l| socket::local_addr(l.raw).ok()?.to_socket_addr())
            .collect()
    }

    /// The listening path (Unix servers).
    pub fn path(&self) -> Option<PathBuf> {
        self.inner.unix_path.clone()
    }

    /// Connections currently open.
    pub fn active_connections(&self) -> usize {
        self.inner.active.get()
    }

    /// Stops accepting and closes the listening sockets; open connections are left alone.
    pub fn close(&self) {
        if self.inner.closed.replace(true) {
            return;
        }
        self.inner.serving.set(false);
        for l in self.inner.listeners.borrow().iter() {
            l.stop();
        }
        if let Some(path) = &self.inner.unix_path {
            let _ = std::fs::remove_file(path);
        }
        self.inner.wake_waiters();
    }

    /// Waits until the server is closed and every connection it accepted is gone.
    pub async fn wait_closed(&self) {
        poll_fn(|cx| {
            if self.inner.closed.get() && self.inner.active.get() == 0 {
                return Poll::Ready(());
            }
            self.inner.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Serves until the server is closed.
    pub async fn serve_forever(&self) {
        self.start_serving();
        poll_fn(|cx| {
            if self.inner.closed.get() {
                return Poll::Ready(());
            }
            self.inner.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("sockets", &self.sockets())
            .field("serving", &self.is_serving())
            .field("active", &self.active_connections())
            .finish()
    }
}

impl ServerInner {
    fn wake_waiters(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    fn connection_accepted(self: &Rc<Self>, fd: OwnedFd) {
        if self.kind == StreamKind::Tcp {
            let _ = socket::set_opt(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                1,
            );
        }
        let protocol = (self.factory.borrow_mut())();
        let transport =
            StreamTransport::new(&self.event_loop, SharedFd::new(fd), self.kind, protocol);
        self.active.set(self.active.get() + 1);
        let server = Rc::downgrade(self);
        transport.set_on_lost(Box::new(move || {
            if let Some(s) = server.upgrade() {
                s.active.set(s.active.get().saturating_sub(1));
                s.wake_waiters();
            }
        }));
        transport.start_soon();
    }
}

const TAG_ACCEPT: u32 = 0;

impl Listener {
    fn arm(self: &Rc<Self>) {
        let Some(server) = self.server.upgrade() else {
            return;
        };
        if !server.serving.get()
            || self.accept.borrow().is_some()
            || self.backoff.borrow().is_some()
        {
            return;
        }
        let Some(fd) = self.fd.borrow().clone() else {
            return;
        };
        let multishot = self.multishot.get();
        let accept = if multishot {
            op::Accepts::multishot(fd)
        } else {
            op::Accepts::once(fd)
        };
        match server
            .event_loop
            .driver()
            .submit(accept, self.clone(), TAG_ACCEPT)
        {
            Ok(accept) => *self.accept.borrow_mut() = Some(accept),
            Err((e, _)) => server.event_loop.call_exception_handler(ExceptionContext {
                message: format!("cannot arm accept on fd {}", self.raw),
                error: Some(e.into()),
            }),
        }
    }

    fn stop(&self) {
        if let Some(t) = self.backoff.borrow_mut().take() {
            t.cancel();
        }
        if let (Some(_), Some(accept)) = (self.server.upgrade(), &*self.accept.borrow()) {
            accept.cancel();
        }
        // The listening fd closes once the accept's last CQE has come (it holds a clone).
        self.fd.borrow_mut().take();
    }

    fn back_off(self: &Rc<Self>, server: &Rc<ServerInner>, err: io::Error) {
        server.event_loop.call_exception_handler(ExceptionContext {
            message: format!(
                "accept on fd {} failed; retrying in {ACCEPT_BACKOFF:?}",
                self.raw
            ),
            error: Some(err.into()),
        });
        if let Some(accept) = &*self.accept.borrow() {
            accept.cancel();
        }
        let this = self.clone();
        let timer = server.event_loop.call_later(ACCEPT_BACKOFF, move || {
            this.backoff.borrow_mut().take();
            this.arm();
        });
        *self.backoff.borrow_mut() = Some(timer);
    }
}

impl OpHandler for Listener {
    fn release(&self, _tag: u32, c: &Completion) {
        drop(op::Accepts::accepted(c));
    }

    fn on_completion(self: Rc<Self>, _tag: u32, c: Completion) {
        if !c.more() {
            let accept = self.accept.borrow_mut().take();
            drop(accept.map(InFlight::finish));
        }
        let server = self.server.upgrade();
        if let Some(fd) = op::Accepts::accepted(&c) {
            match &server {
                Some(s) if s.serving.get() => s.connection_accepted(fd),
                _ => drop(fd),
            }
        } else if let Some(s) = &server {
            match -c.result {
                libc::ECANCELED => {}
                // What the peer did (gone before we accepted) or a network error accept(2)
                // passes on for the new connection: keep accepting.
                libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::EHOSTUNREACH
                | libc::ENONET
                | libc::ENOPROTOOPT
                | libc::EOPNOTSUPP
                | libc::EAGAIN
                | libc::EINTR => {}
                libc::EINVAL if self.multishot.get() => {
                    self.multishot.set(false);
                    s.event_loop.call_exception_handler(ExceptionContext {
                        message: format!(
                            "multishot accept on fd {} refused (EINVAL); using single-shot accepts",
                            self.raw
                        ),
                        error: None,
                    });
                }
                // Out of fds or memory, or an error we cannot place: report it and retry
                // after a pause, never at once.
                e if self.backoff.borrow().is_none() && s.serving.get() => {
                    self.back_off(s, io::Error::from_raw_os_error(e));
                }
                _ => {}
            }
        }
        if !c.more() {
            self.arm();
        }
    }
}
