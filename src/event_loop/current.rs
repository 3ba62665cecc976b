//! The thread's loops: the one running now, and the one `set_event_loop` chose.
//!
//! asyncio keeps both: `get_running_loop()` answers only inside a running loop;
//! `get_event_loop()` falls back to the thread's current loop (creating one if none).
//!
//! A current loop left set when the thread exits is closed by the thread-local
//! destructors, possibly after `RUNNING` was destroyed: closing wakes tasks and runs
//! destructors that ask for the running or current loop. So the accessors used on those
//! paths use `try_with` and read a destroyed slot as empty, rather than panicking inside
//! a TLS destructor (which aborts the process).

use std::cell::RefCell;
use std::io;
use std::rc::{Rc, Weak};

use super::{EventLoop, LoopInner};
use crate::driver::Driver;
use crate::error::Error;

thread_local! {
    static RUNNING: RefCell<Option<Rc<LoopInner>>> = const { RefCell::new(None) };
    static CURRENT: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// Marks `inner` as the thread's running loop until the guard drops.
pub(crate) fn enter_running(inner: &Rc<LoopInner>) -> Result<RunningGuard, Error> {
    RUNNING.with(|r| {
        let mut r = r.borrow_mut();
        if r.is_some() {
            return Err(Error::InvalidState(
                "cannot run an event loop while another loop is running in this thread",
            ));
        }
        *r = Some(inner.clone());
        Ok(RunningGuard(()))
    })
}

pub(crate) struct RunningGuard(());

impl Drop for RunningGuard {
    fn drop(&mut self) {
        let previous = RUNNING.with(|r| r.borrow_mut().take());
        drop(previous);
    }
}

/// Runs `f` with the running loop of this thread, if any.
pub(crate) fn with_running<R>(f: impl FnOnce(Option<&Rc<LoopInner>>) -> R) -> R {
    let running = RUNNING
        .try_with(|r| r.try_borrow().ok().and_then(|r| r.clone()))
        .ok()
        .flatten();
    f(running.as_ref())
}

/// The running loop, as asyncio's `get_running_loop()`.
pub fn get_running_loop() -> Result<EventLoop, Error> {
    with_running(|r| r.cloned())
        .map(|inner| EventLoop { inner })
        .ok_or(Error::InvalidState("no running event loop"))
}

/// The running loop, else the thread's current loop, else a new one made current.
pub fn get_event_loop() -> Result<EventLoop, Error> {
    if let Ok(l) = get_running_loop() {
        return Ok(l);
    }
    if let Some(l) = get_event_loop_if_set() {
        return Ok(l);
    }
    let l = new_event_loop()?;
    set_event_loop(Some(l.clone()));
    Ok(l)
}

/// The thread's current loop, if `set_event_loop` set one.
pub(crate) fn get_event_loop_if_set() -> Option<EventLoop> {
    CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()
}

/// Makes `event_loop` the thread's current loop (or clears it with `None`).
///
/// At thread exit, once the thread's loop slot is gone, this only drops `event_loop`.
pub fn set_event_loop(event_loop: Option<EventLoop>) {
    let mut event_loop = event_loop;
    let old = CURRENT.try_with(|c| match c.try_borrow_mut() {
        Ok(mut c) => std::mem::replace(&mut *c, event_loop.take()),
        Err(_) => None,
    });
    drop(old);
    drop(event_loop);
}

/// A new loop with default settings (not made current).
pub fn new_event_loop() -> Result<EventLoop, Error> {
    EventLoop::new()
}

/// The driver ops submit to: the running loop's, else the current loop's.
pub(crate) fn current_driver() -> io::Result<Rc<Driver>> {
    if let Some(d) = with_running(|r| r.map(|l| l.driver.clone())) {
        return Ok(d);
    }
    get_event_loop_if_set()
        .map(|l| l.inner.driver.clone())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "no event loop: ringloop operations must run inside a running loop",
            )
        })
}

/// An fd is about to be closed (or handed to a close op): tell the engines that may have
/// it registered — the driver of the loop it was made on (if that loop is still alive),
/// and the running or current loop's, if that is another.
pub(crate) fn fd_closing(fd: std::os::fd::RawFd, made_on: &Weak<Driver>) {
    let maker = made_on.upgrade();
    if let Some(driver) = &maker {
        driver.fd_closing(fd);
    }
    if let Ok(current) = current_driver()
        && maker.as_ref().is_none_or(|m| !Rc::ptr_eq(m, &current))
    {
        current.fd_closing(fd);
    }
}
