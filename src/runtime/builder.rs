//! [`RuntimeBuilder`]: how many loops, on which CPUs, with which loop options, and the
//! start of the loop threads.

use std::sync::{Arc, mpsc};

use super::RuntimeError;
use super::control::Control;
use super::threads::{self, Runtime};
use crate::driver::Engine;
use crate::error::Error;
use crate::event_loop::{LoopBuilder, RemoteHandle};

/// Which CPU each loop thread is pinned to.
#[derive(Debug, Clone, Default)]
enum Pinning {
    #[default]
    None,
    /// Loop `i` on the `i`-th CPU this process may use (wrapping around).
    Cores,
    /// Loop `i` on `cpus[i % len]`.
    Cpus(Vec<usize>),
}

/// Options for a [`Runtime`].
///
/// # Examples
///
/// ```
/// let rt = ringloop::Runtime::builder()
///     .threads(2)
///     .thread_name("worker")
///     .loop_builder(ringloop::EventLoop::builder().cq_entries(8192))
///     .build()
///     .unwrap();
/// assert_eq!(rt.len(), 2);
/// rt.shutdown().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct RuntimeBuilder {
    threads: Option<usize>,
    pinning: Pinning,
    loop_builder: LoopBuilder,
    name: String,
    block_signals: Vec<i32>,
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        RuntimeBuilder {
            threads: None,
            pinning: Pinning::None,
            loop_builder: LoopBuilder::default(),
            name: "ringloop".into(),
            block_signals: Vec::new(),
        }
    }
}

impl RuntimeBuilder {
    /// How many loops (one thread each). Default: `std::thread::available_parallelism`.
    /// Zero is taken as one.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }

    /// Pins loop `i`'s thread to the `i`-th CPU the process may use
    /// (`sched_getaffinity`), wrapping around when there are more loops than CPUs.
    /// Default off.
    pub fn pin_threads(mut self, on: bool) -> Self {
        self.pinning = if on { Pinning::Cores } else { Pinning::None };
        self
    }

    /// Pins loop `i`'s thread to `cpus[i % cpus.len()]`. A CPU the process may not use
    /// fails [`build`](RuntimeBuilder::build), naming the loop.
    pub fn cpus(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        let cpus: Vec<usize> = cpus.into_iter().collect();
        self.pinning = if cpus.is_empty() {
            Pinning::None
        } else {
            Pinning::Cpus(cpus)
        };
        self
    }

    /// The options every loop is built with (ring sizes, engine, receive buffers).
    pub fn loop_builder(mut self, builder: LoopBuilder) -> Self {
        self.loop_builder = builder;
        self
    }

    /// Shorthand for the loop builder's [`LoopBuilder::engine`].
    pub fn engine(mut self, engine: Engine) -> Self {
        self.loop_builder = self.loop_builder.engine(engine);
        self
    }

    /// Loop threads are named `<prefix>-<index>`. Default `ringloop`.
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// Blocks `signals` in the thread calling [`build`](RuntimeBuilder::build) and so in
    /// every loop thread (they inherit its mask). A signal sent to the process then stays
    /// pending until a loop that handles it
    /// ([`EventLoop::add_signal_handler`](crate::EventLoop::add_signal_handler)) reads it,
    /// instead of reaching a thread where its default action ends the process. Threads
    /// the caller started before keep their masks.
    pub fn block_signals(mut self, signals: &[i32]) -> Self {
        self.block_signals = signals.to_vec();
        self
    }

    /// Starts the loop threads; returns once every loop is built and running. If one
    /// cannot be built, the others are stopped and joined, and the error names it.
    pub fn build(self) -> Result<Runtime, RuntimeError> {
        let count = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        for &sig in &self.block_signals {
            crate::sys::signal::block_signal(sig).map_err(|e| RuntimeError::Failed {
                index: 0,
                thread: current_thread_name(),
                error: Error::from(e),
            })?;
        }
        let cpus: Option<Vec<usize>> =
            match &self.pinning {
                Pinning::None => None,
                Pinning::Cpus(cpus) => Some(cpus.clone()),
                Pinning::Cores => Some(crate::sys::affinity::allowed_cpus().map_err(|e| {
                    RuntimeError::Failed {
                        index: 0,
                        thread: current_thread_name(),
                        error: Error::from(e),
                    }
                })?),
            };
        let names: Vec<String> = (0..count).map(|i| format!("{}-{i}", self.name)).collect();
        let control = Arc::new(Control::new(names.clone()));
        let mut joins = Vec::with_capacity(count);
        let mut ready = Vec::with_capacity(count);
        let mut first_error = None;
        for (index, name) in names.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Result<RemoteHandle, Error>>();
            let cpu = cpus.as_ref().map(|c| c[index % c.len()]);
            let start = threads::LoopStart {
                index,
                cpu,
                builder: self.loop_builder.clone(),
                control: control.clone(),
                ready: tx,
            };
            match std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || threads::loop_thread(start))
            {
                Ok(join) => {
                    joins.push(Some(join));
                    ready.push(rx);
                }
                Err(e) => {
                    control.exited(index);
                    first_error = Some(RuntimeError::Failed {
                        index,
                        thread: name.clone(),
                        error: Error::from(e),
                    });
                    break;
                }
            }
        }
        let mut handles = Vec::with_capacity(count);
        for (index, rx) in ready.into_iter().enumerate() {
            match rx.recv() {
                Ok(Ok(handle)) => handles.push(handle),
                Ok(Err(error)) => {
                    first_error.get_or_insert(RuntimeError::Failed {
                        index,
                        thread: names[index].clone(),
                        error,
                    });
                }
                Err(_) => {
                    first_error.get_or_insert(RuntimeError::Failed {
                        index,
                        thread: names[index].clone(),
                        error: Error::InvalidState(
                            "the loop thread ended before its loop was built",
                        ),
                    });
                }
            }
        }
        if let Some(error) = first_error {
            // Stop what was built (a thread that could not build its loop has exited),
            // then join every thread that was started.
            control.set_handles(handles.into());
            control.stop();
            for index in joins.len()..count {
                control.exited(index);
            }
            control.wait_exited(None, None);
            for join in joins.into_iter().flatten() {
                let _ = join.join();
            }
            return Err(error);
        }
        let handles: Arc<[RemoteHandle]> = handles.into();
        control.set_handles(handles.clone());
        Ok(Runtime::new_started(control, handles, joins))
    }
}

fn current_thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("the building thread")
        .to_string()
}
