//! Signal handlers that run on the loop: asyncio's `add_signal_handler` and
//! `remove_signal_handler`.
//!
//! No code runs inside a signal handler. A handled signal is *blocked* in the loop's
//! thread (`pthread_sigmask`), so the kernel leaves it pending, and the loop reads it from
//! a `signalfd` (close-on-exec, non-blocking) with an io_uring read kept in the ring by a
//! small internal task. Each `signalfd_siginfo` read schedules the signal's callback with
//! `call_soon`, so it runs between other callbacks, panics included in the loop's usual
//! exception handling. A loop has at most one signalfd, whose mask is the set of signals it
//! handles; it is opened with the first handler and closed with the last.
//!
//! # Coalescing
//!
//! The kernel keeps one pending instance of a standard signal (1..=31): several `SIGINT`s
//! that arrive before the loop reads them run the callback **once**, as in asyncio.
//! Real-time signals (`SIGRTMIN..=SIGRTMAX`) queue, and each instance runs the callback.
//!
//! # Threads
//!
//! A signal sent to the *process* (`kill`, a terminal's Ctrl-C) goes to any thread that
//! does not block it. Only the loop's thread blocks it here, so in a multi-threaded
//! program another thread may receive it with its default action (for `SIGINT`, the end of
//! the process). Block the signals in every thread — simplest: add the handlers, or block
//! the signals with `pthread_sigmask`, in the main thread *before* spawning threads, which
//! inherit the mask. A signal sent to the loop's thread (`pthread_kill`, `tgkill`) always
//! reaches the loop.
//!
//! The blocked mask is inherited by `fork`ed children and kept across `exec`, and
//! `std::process::Command` keeps it too. ringloop's own [`process`](crate::process) spawns
//! children with an empty mask; other `fork`/`exec` code should reset it in the child.
//!
//! Removing the last handler for a signal (or closing the loop) discards the instances
//! still pending and restores the thread's previous mask for that signal: it is unblocked
//! again unless it was blocked before the first handler was added. Several loops on one
//! thread may handle the same signal; it stays blocked until the last one lets it go, and
//! each instance reaches one of them.
//!
//! Synchronous fault signals (`SIGSEGV`, `SIGBUS`, `SIGFPE`, `SIGILL`) raised by a real
//! fault cannot be blocked — the kernel kills the process — so handlers for them only see
//! instances sent with `kill`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

use crate::error::Error;
use crate::event_loop::{EventLoop, ExceptionContext, Phase, Service, get_running_loop};
use crate::fd::Fd;
use crate::sys::signal::{self as sys, SIGINFO_SIZE, SigSet};
use crate::task::JoinHandle;

/// Signals read per signalfd read at most.
const BATCH: usize = 16;

type Callback = Rc<dyn Fn()>;
type Handlers = Rc<RefCell<HashMap<i32, Callback>>>;

/// A loop's signal handlers (a loop service, created with the first handler).
#[derive(Default)]
pub(crate) struct LoopSignals {
    state: RefCell<Option<Active>>,
}

/// The signalfd and its reader, while at least one handler exists.
struct Active {
    fd: Fd,
    mask: SigSet,
    handlers: Handlers,
    reader: JoinHandle<()>,
}

impl Service for LoopSignals {
    fn phase(&self) -> Phase {
        Phase::Signals
    }

    /// Removes every handler: the reader stops, the signalfd closes (once the read in
    /// flight completes), and each signal's mask is restored.
    fn close(&self) {
        let Some(active) = self.state.borrow_mut().take() else {
            return;
        };
        active.reader.cancel();
        let signals: Vec<i32> = active.handlers.borrow().keys().copied().collect();
        for sig in signals {
            // Nothing to report to at close; a failure leaves the signal blocked.
            let _ = release(sig);
        }
        // Callbacks are dropped here, outside every borrow.
        drop(active);
    }
}

impl EventLoop {
    /// Runs `callback` on the loop whenever signal `sig` arrives (asyncio's
    /// `add_signal_handler`). A handler already set for `sig` is replaced.
    ///
    /// The signal is blocked in this thread and read from a signalfd through the ring;
    /// the callback is scheduled with `call_soon`, never run inside a signal handler.
    /// Standard signals arriving together may run the callback once (they coalesce); read
    /// the [`signal`](crate::signal) module docs for threads and masks.
    ///
    /// Errors: `0`, negative or too large numbers, the C library's reserved real-time
    /// signals, and `SIGKILL`/`SIGSTOP` give an [`Error::Io`] of kind `InvalidInput` whose
    /// message names the signal; a closed loop gives [`Error::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use std::cell::Cell;
    ///
    /// let event_loop = ringloop::EventLoop::new().unwrap();
    /// let got = Rc::new(Cell::new(false));
    /// let (g, l) = (got.clone(), event_loop.clone());
    /// event_loop
    ///     .add_signal_handler(libc::SIGUSR2, move || {
    ///         g.set(true);
    ///         l.stop();
    ///     })
    ///     .unwrap();
    /// // The loop's thread sends the signal to itself; it waits, blocked, for the loop.
    /// unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) };
    /// event_loop.run_forever().unwrap();
    /// assert!(got.get());
    /// assert!(event_loop.remove_signal_handler(libc::SIGUSR2).unwrap());
    /// event_loop.close().unwrap();
    /// ```
    pub fn add_signal_handler(&self, sig: i32, callback: impl Fn() + 'static) -> Result<(), Error> {
        check_signal(sig, "add_signal_handler")?;
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let callback: Callback = Rc::new(callback);
        let signals = self.service::<LoopSignals>();
        let mut state = signals.state.borrow_mut();
        if let Some(active) = state.as_ref() {
            let old = active.handlers.borrow_mut().remove(&sig);
            if let Some(old) = old {
                active.handlers.borrow_mut().insert(sig, callback);
                drop(state);
                drop(old);
                return Ok(());
            }
        }
        hold(sig).map_err(|e| op_error("add_signal_handler", sig, e))?;
        let added = match state.as_mut() {
            Some(active) => {
                let mut mask = active.mask;
                mask.add(sig)
                    .and_then(|()| sys::signalfd_set_mask(&active.fd, &mask))
                    .map(|()| {
                        active.mask = mask;
                        active.handlers.borrow_mut().insert(sig, callback);
                    })
            }
            None => self.open_signalfd(sig, callback).map(|active| {
                *state = Some(active);
            }),
        };
        if let Err(e) = added {
            let _ = release(sig);
            return Err(op_error("add_signal_handler", sig, e));
        }
        Ok(())
    }

    /// Removes the handler for `sig` (asyncio's `remove_signal_handler`); `Ok(true)` if
    /// there was one. Removing the last handler for a signal discards its pending
    /// instances and restores the thread's previous mask for it. Invalid numbers are an
    /// error, as for [`EventLoop::add_signal_handler`].
    pub fn remove_signal_handler(&self, sig: i32) -> Result<bool, Error> {
        check_signal(sig, "remove_signal_handler")?;
        let Some(signals) = self.existing_service::<LoopSignals>() else {
            return Ok(false);
        };
        let mut state = signals.state.borrow_mut();
        let Some(active) = state.as_mut() else {
            return Ok(false);
        };
        let old = active.handlers.borrow_mut().remove(&sig);
        let Some(old) = old else {
            return Ok(false);
        };
        let mut mask = active.mask;
        let mut result = mask.remove(sig);
        active.mask = mask;
        let closing = active.handlers.borrow().is_empty();
        let finished = if closing {
            let finished = state.take();
            if let Some(active) = &finished {
                active.reader.cancel();
            }
            finished
        } else {
            result = result.and_then(|()| sys::signalfd_set_mask(&active.fd, &mask));
            None
        };
        drop(state);
        let released = release(sig);
        // The old callback and (last handler) the signalfd go outside every borrow.
        drop(old);
        drop(finished);
        result
            .and(released)
            .map(|()| true)
            .map_err(|e| op_error("remove_signal_handler", sig, e))
    }

    /// Opens the loop's signalfd for `sig` and starts its reader.
    fn open_signalfd(&self, sig: i32, callback: Callback) -> io::Result<Active> {
        let mask = SigSet::single(sig)?;
        let fd = Fd::from(sys::signalfd(&mask)?);
        let handlers: Handlers = Rc::new(RefCell::new(HashMap::from([(sig, callback)])));
        let reader = self.create_task(read_signals(fd.clone(), handlers.clone()));
        Ok(Active {
            fd,
            mask,
            handlers,
            reader,
        })
    }
}

/// The reader task: one signalfd read in the ring at a time; each signal read schedules
/// its callback.
async fn read_signals(fd: Fd, handlers: Handlers) {
    let mut buf = Vec::with_capacity(SIGINFO_SIZE * BATCH);
    loop {
        buf.clear();
        let (result, returned) = fd.read(buf).await;
        buf = returned;
        let error = match result {
            Ok(n) if n >= SIGINFO_SIZE => {
                dispatch(&buf[..n], &handlers);
                continue;
            }
            Ok(n) => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("a signalfd read returned {n} bytes"),
            ),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        if let Ok(l) = get_running_loop() {
            l.call_exception_handler(ExceptionContext {
                message: "reading the signalfd failed; signal handlers of this loop stop".into(),
                error: Some(error.into()),
            });
        }
        return;
    }
}

/// Schedules the callback of every signal in `bytes` (whole `signalfd_siginfo`s).
fn dispatch(bytes: &[u8], handlers: &Handlers) {
    let Ok(event_loop) = get_running_loop() else {
        return;
    };
    for sig in sys::siginfo_signals(bytes) {
        // A handler removed since the signal was read is not called.
        let callback = handlers.borrow().get(&sig).cloned();
        if let Some(callback) = callback {
            event_loop.call_soon(move || callback());
        }
    }
}

/// Checks that `sig` is a signal a handler may be set for.
fn check_signal(sig: i32, op: &str) -> Result<(), Error> {
    let why = if sig < 1 || sig > sys::sigrtmax() {
        format!("{op}: invalid signal number {sig}")
    } else if sig == libc::SIGKILL || sig == libc::SIGSTOP {
        format!("{op}: {} cannot be caught or blocked", describe(sig))
    } else if sig > 31 && sig < sys::sigrtmin() {
        format!("{op}: signal {sig} is reserved by the C library")
    } else {
        return Ok(());
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, why).into())
}

fn op_error(op: &str, sig: i32, e: io::Error) -> Error {
    io::Error::new(e.kind(), format!("{op}({}): {e}", describe(sig))).into()
}

/// `SIGINT (2)`.
fn describe(sig: i32) -> String {
    format!("{} ({sig})", signal_name(sig))
}

/// The conventional name of a signal number: `SIGINT`, `SIGRTMIN+3`, or `signal 40` for
/// anything else.
///
/// ```
/// assert_eq!(ringloop::signal::signal_name(libc::SIGTERM), "SIGTERM");
/// assert_eq!(ringloop::signal::signal_name(libc::SIGRTMIN() + 1), "SIGRTMIN+1");
/// ```
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match sig {
        1..=31 => NAMES[sig as usize].to_string(),
        _ if sig == sys::sigrtmin() => "SIGRTMIN".to_string(),
        _ if sig > sys::sigrtmin() && sig <= sys::sigrtmax() => {
            format!("SIGRTMIN+{}", sig - sys::sigrtmin())
        }
        _ => format!("signal {sig}"),
    }
}

/// How many handlers (of all loops on this thread) hold each signal blocked, and whether
/// it was blocked before the first of them.
struct Hold {
    count: usize,
    was_blocked: bool,
}

thread_local! {
    static HOLDS: RefCell<HashMap<i32, Hold>> = RefCell::new(HashMap::new());
}

/// Blocks `sig` in this thread for one more handler.
fn hold(sig: i32) -> io::Result<()> {
    HOLDS
        .try_with(|holds| {
            let mut holds = holds.borrow_mut();
            if let Some(hold) = holds.get_mut(&sig) {
                hold.count += 1;
                return Ok(());
            }
            let was_blocked = sys::block_signal(sig)?;
            holds.insert(
                sig,
                Hold {
                    count: 1,
                    was_blocked,
                },
            );
            Ok(())
        })
        .unwrap_or_else(|_| Err(io::Error::other("the thread is exiting")))
}

/// One handler lets `sig` go; the last one discards its pending instances and unblocks
/// it, unless it was blocked before.
fn release(sig: i32) -> io::Result<()> {
    HOLDS
        .try_with(|holds| {
            let mut holds = holds.borrow_mut();
            let Some(hold) = holds.get_mut(&sig) else {
                return Ok(());
            };
            hold.count -= 1;
            if hold.count > 0 {
                return Ok(());
            }
            let was_blocked = hold.was_blocked;
            holds.remove(&sig);
            if !was_blocked {
                sys::discard_pending(sig)?;
                sys::unblock_signal(sig)?;
            }
            Ok(())
        })
        // The thread is exiting: its mask no longer matters.
        .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(signal_name(libc::SIGINT), "SIGINT");
        assert_eq!(signal_name(libc::SIGSYS), "SIGSYS");
        assert_eq!(signal_name(sys::sigrtmin()), "SIGRTMIN");
        assert_eq!(signal_name(1000), "signal 1000");
        assert_eq!(signal_name(0), "signal 0");
    }

    #[test]
    fn invalid_signals_are_named() {
        for (sig, needle) in [
            (0, "invalid signal number 0"),
            (-3, "invalid signal number -3"),
            (1000, "invalid signal number 1000"),
            (libc::SIGKILL, "SIGKILL (9) cannot be caught"),
            (libc::SIGSTOP, "SIGSTOP (19) cannot be caught"),
            (32, "reserved"),
        ] {
            let e = check_signal(sig, "add_signal_handler").unwrap_err();
            assert!(e.to_string().contains(needle), "{sig}: {e}");
            let io: io::Error = e.into();
            assert_eq!(io.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(check_signal(libc::SIGINT, "x").is_ok());
        assert!(check_signal(sys::sigrtmax(), "x").is_ok());
    }

    #[test]
    fn holds_nest_and_restore_the_previous_mask() {
        // A fresh thread, so no other test shares its mask.
        std::thread::spawn(|| {
            let sig = libc::SIGWINCH;
            let blocked = || sys::current_sigmask().unwrap().contains(sig);
            assert!(!blocked());
            hold(sig).unwrap();
            hold(sig).unwrap();
            assert!(blocked());
            release(sig).unwrap();
            assert!(blocked(), "still held once");
            release(sig).unwrap();
            assert!(!blocked(), "restored");

            sys::block_signal(sig).unwrap();
            hold(sig).unwrap();
            release(sig).unwrap();
            assert!(blocked(), "it was blocked before: stays blocked");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn siginfo_parsing_takes_whole_records() {
        let mut bytes = vec![0u8; SIGINFO_SIZE * 2 + 5];
        bytes[..4].copy_from_slice(&10u32.to_ne_bytes());
        bytes[SIGINFO_SIZE..SIGINFO_SIZE + 4].copy_from_slice(&12u32.to_ne_bytes());
        assert_eq!(sys::siginfo_signals(&bytes).collect::<Vec<_>>(), [10, 12]);
    }
}
