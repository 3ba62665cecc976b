//! # ringloop
//!
//! Python asyncio's event-loop model for Rust — a loop with `call_soon`, `call_later`,
//! `run_forever`; futures with done-callbacks; tasks — driven by a Linux **io_uring** ring
//! instead of readiness polling. Operations are submitted as SQEs with owned buffers, and
//! their completions wake tasks; timers are io_uring timeout ops.
//!
//! ```
//! use std::time::Duration;
//!
//! let out = ringloop::run(async {
//!     let a = ringloop::spawn(async { ringloop::sleep(Duration::from_millis(5)).await; 1 });
//!     let b = ringloop::spawn(async { 2 });
//!     a.await.unwrap() + b.await.unwrap()
//! })
//! .unwrap();
//! assert_eq!(out, 3);
//! ```
//!
//! ## asyncio → ringloop
//!
//! | asyncio | ringloop |
//! |---|---|
//! | `asyncio.run(main())` | [`run`]`(main())` |
//! | `loop.call_soon(cb)` / `call_soon_threadsafe` | [`EventLoop::call_soon`] / [`EventLoop::call_soon_threadsafe`], [`RemoteHandle`] |
//! | `loop.call_later(delay, cb)` / `call_at(when, cb)` / `time()` | [`EventLoop::call_later`] (`Duration`) / [`EventLoop::call_at`] / [`EventLoop::time`] (`Instant`) |
//! | `Handle.cancel()` / `TimerHandle.cancel()` | [`Handle::cancel`] / [`TimerHandle::cancel`] |
//! | `run_forever`, `run_until_complete`, `stop`, `close`, `is_running`, `is_closed` | same names on [`EventLoop`] |
//! | `get_event_loop`, `set_event_loop`, `new_event_loop`, `get_running_loop` | same names |
//! | `loop.set_exception_handler` | [`EventLoop::set_exception_handler`] |
//! | `asyncio.Future` | [`Future`] |
//! | `create_task`, `ensure_future`, `Task.cancel()` | [`spawn`] / [`create_task`] / [`ensure_future`] → [`JoinHandle`] ([`JoinHandle::cancel`]) |
//! | `sleep`, `wait_for`, `timeout`, `gather`, `wait`, `as_completed` | [`sleep`], [`wait_for`], [`timeout`], [`gather`], [`wait`], [`as_completed`] |
//! | `asyncio.TaskGroup` (`create_task`, `async with` exit), `ExceptionGroup` | [`TaskGroup`] ([`TaskGroup::create_task`], [`TaskGroup::create_try_task`], [`TaskGroup::join`]), [`TaskGroupError`] |
//! | `asyncio.shield` | [`shield`] |
//! | `current_task`, `all_tasks`, `Task.get_name` / `set_name`, `Task.cancelled` | [`current_task`], [`all_tasks`] → [`Task`]; [`JoinHandle::get_name`] / [`JoinHandle::set_name`], [`JoinHandle::cancelled`] |
//! | `asyncio.timeout_at(when)` (as a deadline for one awaitable) | [`timeout_at`] |
//! | `asyncio.timeout(delay)` / `timeout_at(when)` as `Timeout` (`when`, `reschedule`, `expired`) | [`Timeout::after`] / [`Timeout::at`], [`Timeout::wrap`], [`Timeout::when`], [`Timeout::reschedule`], [`Timeout::expired`] |
//! | `loop.add_signal_handler(sig, cb)` / `remove_signal_handler(sig)` | [`EventLoop::add_signal_handler`] / [`EventLoop::remove_signal_handler`] (a signalfd read through the ring; see [`signal`]) |
//! | `loop.run_in_executor(None, f)` / `(executor, f)`, `set_default_executor`, `shutdown_default_executor` | [`EventLoop::run_in_executor`] / [`EventLoop::run_in_executor_with`] ([`Executor`]), [`EventLoop::set_default_executor`], [`EventLoop::shutdown_default_executor`] |
//! | `loop.subprocess_exec` / `subprocess_shell`, `SubprocessProtocol`, `SubprocessTransport` | [`EventLoop::subprocess_exec`] / [`EventLoop::subprocess_shell`] ([`process::SubprocessOptions`]), [`SubprocessProtocol`], [`SubprocessTransport`] (exit learned from a pidfd; see [`process`]) |
//! | `asyncio.create_subprocess_exec` / `_shell`, `Process.wait()`, `communicate()` | [`process::create_subprocess_exec`] / [`process::create_subprocess_shell`], [`process::Command`], [`process::Process`] |
//! | `asyncio.open_connection` / `start_server`, `open_unix_connection` / `start_unix_server` (`limit=`) | [`open_connection`] / [`start_server`], [`open_unix_connection`] / [`start_unix_server`] (`_with` variants take the limit; see [`streams`]) |
//! | `StreamReader.read(n)` / `read(-1)`, `readline`, `readuntil`, `readexactly`, `at_eof` | [`StreamReader::read`] / [`StreamReader::read_to_end`], [`StreamReader::readline`], [`StreamReader::readuntil`], [`StreamReader::readexactly`], [`StreamReader::at_eof`] |
//! | `IncompleteReadError(partial, expected)`, `LimitOverrunError(consumed)` | [`StreamError::IncompleteRead`], [`StreamError::LimitOverrun`] |
//! | `StreamWriter.write`, `writelines`, `drain`, `write_eof`, `can_write_eof`, `close`, `is_closing`, `wait_closed`, `get_extra_info`, `transport` | same names on [`StreamWriter`] |
//! | `asyncio.Lock` (`acquire`, `release`, `locked`, `async with`) | [`Lock`] (`acquire().await` → [`LockGuard`], released on drop; [`Lock::release`], [`Lock::locked`]) |
//! | `asyncio.Event` (`set`, `clear`, `is_set`, `wait`) | [`Event`] |
//! | `asyncio.Condition` (`acquire`, `wait`, `wait_for`, `notify`, `notify_all`) | [`Condition`] ([`Condition::with_lock`]; `wait(guard).await` → the guard back) |
//! | `asyncio.Semaphore` / `BoundedSemaphore` | [`Semaphore`] / [`BoundedSemaphore`] (`acquire().await` → [`SemaphoreGuard`]; [`Semaphore::release`]; over-release: [`sync::TooManyReleases`]) |
//! | `asyncio.Barrier` (`wait`, `reset`, `abort`, `parties`, `n_waiting`, `broken`), `BrokenBarrierError` | [`Barrier`] (`wait().await` → this task's index), [`BrokenBarrier`] |
//! | `asyncio.Queue` / `PriorityQueue` / `LifoQueue` (`put`, `get`, `put_nowait`, `get_nowait`, `qsize`, `maxsize`, `empty`, `full`, `task_done`, `join`, `shutdown`) | [`Queue`] / [`PriorityQueue`] / [`LifoQueue`] (`new(maxsize)`, 0 = unbounded; see [`queue`]) |
//! | `QueueShutDown`, `QueueFull`, `QueueEmpty` | [`QueueShutDown`] (carries the item back from `put`), [`queue::TryPutError`] (`Full`/`ShutDown`, with the item), [`queue::TryGetError`] (`Empty`/`ShutDown`) |
//! | `asyncio.run_coroutine_threadsafe(coro, loop)` → `concurrent.futures.Future` (`result()`, `cancel()`) | [`run_coroutine_threadsafe`]`(&remote, \|\| fut)` → [`ConcurrentFuture`] (awaitable, [`ConcurrentFuture::wait`], [`ConcurrentFuture::cancel`]) |
//! | one loop per thread, by hand | [`Runtime`]: N loops on N threads, [`Runtime::run`] a main on each (see [`runtime`]) |
//! | `loop.connect_accepted_socket(factory, sock)` | [`EventLoop::connect_accepted_socket`] (a `std::net::TcpStream`) |
//! | exceptions | [`Error`] (`InvalidState`, `Cancelled`, `Timeout`, `Closed`, ...) and `io::Error` for I/O |
//!
//! ## Owned buffers
//!
//! The kernel uses a buffer until the op's completion, even if the future that started it
//! is dropped; so ops take buffers by value and return them: `read(buf) -> (io::Result<usize>, B)`.
//! See [`buf`] and [`fd::Fd`].
//!
//! ## Where io_uring is refused
//!
//! [`EventLoop::new`] returns [`Error::Unavailable`] whose message names the cause (no
//! kernel support, `kernel.io_uring_disabled`, a seccomp filter, `RLIMIT_MEMLOCK`) and the
//! remedy; it never panics.

#![cfg_attr(
    not(target_os = "linux"),
    doc = "ringloop supports Linux only (it is built on io_uring)."
)]
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_os = "linux"))]
compile_error!("ringloop runs on Linux only: it is built on io_uring.");

pub mod buf;
#[cfg(any(feature = "tokio", feature = "futures-io", feature = "hyper"))]
pub mod compat;
mod driver;
mod error;
mod event_loop;
mod executor;
pub mod fd;
pub mod fs;
mod future;
pub mod net;
mod op;
pub mod process;
mod protocol;
pub mod queue;
pub mod runtime;
pub mod signal;
pub mod streams;
pub mod sync;
mod sys;
mod task;
pub mod transport;

pub use driver::{DriverStats, Engine, SetupMode};
pub use error::{Error, Result};
pub use event_loop::{
    EventLoop, ExceptionContext, Handle, LoopBuilder, POLL_INTERVAL, RemoteHandle, TimerHandle,
    get_event_loop, get_running_loop, new_event_loop, set_event_loop,
};
pub use executor::Executor;
pub use future::{CallbackId, Future};
pub use process::{SubprocessProtocol, SubprocessTransport};
pub use protocol::{BufferedProtocol, DatagramProtocol, Protocol};
pub use queue::{LifoQueue, PriorityQueue, Queue, QueueShutDown};
/// `#[ringloop::main]` / `#[ringloop::test]`: an `async fn` run on a fresh loop, with
/// `engine = "uring" | "epoll" | "auto"` (feature `macros`).
#[cfg(feature = "macros")]
pub use ringloop_macros::{main, test};
pub use runtime::{
    ConcurrentFuture, LoopContext, Runtime, RuntimeBuilder, RuntimeError, run_coroutine_threadsafe,
};
pub use streams::{
    StreamError, StreamReader, StreamWriter, open_connection, open_unix_connection, start_server,
    start_unix_server,
};
pub use sync::{
    Barrier, BoundedSemaphore, BrokenBarrier, Condition, Event, Lock, LockGuard, Semaphore,
    SemaphoreGuard,
};
pub use task::{
    AsCompleted, JoinHandle, ReturnWhen, Sleep, Task, TaskFailure, TaskGroup, TaskGroupError,
    TaskSpawner, Timeout, TimeoutScope, WithTimeout, all_tasks, as_completed, create_task,
    current_task, ensure_future, gather, run, shield, sleep, spawn, timeout, timeout_at, wait,
    wait_for, yield_now,
};
pub use transport::{DatagramTransport, StreamTransport};

/// The README's examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
