//! [`LoopBuilder`]: a new loop's options (ring sizes, engine, how streams receive), and
//! the loop's construction.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::services::Services;
use super::timers::Timers;
use super::{EventLoop, LoopInner, Shared, State};
use crate::driver::{Driver, Engine, IowqLimits, RingSize};
use crate::error::Error;
use crate::task;

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

/// Options for a new loop.
#[derive(Debug, Clone)]
pub struct LoopBuilder {
    size: RingSize,
    net: NetConfig,
    engine: Option<Engine>,
    iowq: IowqLimits,
}

/// How stream transports receive: options a loop keeps for its transports and buffer
/// rings (read with [`EventLoop::net_config`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetConfig {
    /// Multishot receives from a provided-buffer ring (else one owned-buffer recv each).
    pub(crate) multishot_recv: bool,
    pub(crate) recv_buffers: u16,
    pub(crate) recv_buffer_size: usize,
}

impl Default for LoopBuilder {
    fn default() -> Self {
        LoopBuilder {
            size: RingSize {
                sq_entries: 256,
                cq_entries: 4096,
            },
            net: NetConfig {
                multishot_recv: true,
                recv_buffers: 512,
                recv_buffer_size: 16 * 1024,
            },
            engine: None,
            iowq: IowqLimits::default(),
        }
    }
}

impl LoopBuilder {
    /// Submission queue entries (rounded up to a power of two by the kernel). Default 256.
    pub fn sq_entries(mut self, n: u32) -> Self {
        self.size.sq_entries = n.max(1);
        self
    }

    /// Completion queue entries. Default 4096.
    pub fn cq_entries(mut self, n: u32) -> Self {
        self.size.cq_entries = n.max(1);
        self
    }

    /// Whether receives use multishot ops fed by provided-buffer rings (the default, where
    /// the kernel has them: `recv` on streams, `recvmsg` on datagram endpoints, whose ring
    /// of 32 × 64 KiB buffers is registered with the first endpoint) or one single-shot
    /// receive into an owned buffer per read or datagram.
    pub fn multishot_recv(mut self, on: bool) -> Self {
        self.net.multishot_recv = on;
        self
    }

    /// The provided-buffer ring shared by every stream of the loop: `count` buffers (a
    /// power of two) of `size` bytes. Default 512 × 16 KiB. Also the size of single-shot
    /// receive buffers.
    pub fn recv_buffers(mut self, count: u16, size: usize) -> Self {
        self.net.recv_buffers = count.max(1).next_power_of_two();
        self.net.recv_buffer_size = size.max(1);
        self
    }

    /// Which engine runs the loop's operations. Without this, `RINGLOOP_ENGINE`
    /// (`uring`, `epoll` or `auto`) decides, and io_uring is the default.
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Caps io_uring's kernel worker threads (`iou-wrk-<tid>`) for the thread that builds
    /// this loop (`IORING_REGISTER_IOWQ_MAX_WORKERS`, Linux 5.15+; ignored before, and on
    /// the epoll engine). `bounded` serves file work the kernel cannot do inline (buffered
    /// reads that miss the cache, fsync, statx, opens); `unbounded`, work that may wait
    /// forever (sockets, pipes, splice). 0 leaves a pool at the kernel's limit (`4 × CPUs`
    /// and `RLIMIT_NPROC`). Default: `4 × CPUs` clamped to 4..=32, and 64. The limits are
    /// the thread's: every loop built on it shares them, the last one built sets them.
    ///
    /// ```
    /// let lp = ringloop::LoopBuilder::default().iowq_max_workers(8, 16).build()?;
    /// # lp.close()?; Ok::<(), ringloop::Error>(())
    /// ```
    pub fn iowq_max_workers(mut self, bounded: u32, unbounded: u32) -> Self {
        self.iowq = IowqLimits { bounded, unbounded };
        self
    }

    /// asyncio's `run` on a loop with these options: creates it, makes it current, runs
    /// `fut` to completion, cancels what tasks remain, closes the loop.
    pub fn run<F>(self, fut: F) -> Result<F::Output, Error>
    where
        F: std::future::Future + 'static,
    {
        task::run_on(self.build()?, fut)
    }

    /// Creates the loop. Fails with [`Error::Unavailable`] when io_uring is refused (the
    /// message says why and what to do).
    pub fn build(self) -> Result<EventLoop, Error> {
        let engine = match self.engine {
            Some(e) => e,
            None => Engine::from_env()?,
        };
        let driver = match engine {
            Engine::Uring => Driver::new(self.size).map_err(|e| Error::Unavailable(Arc::new(e)))?,
            Engine::Epoll => Driver::new_epoll()?,
            Engine::Auto => match Driver::new(self.size) {
                Ok(d) => d,
                Err(e) => {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        eprintln!("ringloop: {e}; falling back to the epoll engine");
                    });
                    Driver::new_epoll()?
                }
            },
        };
        match driver.set_iowq_limits(self.iowq) {
            Err(e) if e.kind() != std::io::ErrorKind::Unsupported => {
                return Err(Error::Io(Arc::new(e)));
            }
            _ => {}
        }
        let shared = Shared::new(driver.unparker());
        let inner = Rc::new(LoopInner {
            id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
            driver: Rc::new(driver),
            ready: RefCell::new(VecDeque::with_capacity(256)),
            timers: RefCell::new(Timers::default()),
            tasks: Default::default(),
            shared: Arc::new(shared),
            state: Cell::new(State::Idle),
            stopping: Cell::new(false),
            exception_handler: RefCell::new(None),
            iterations: Cell::new(0),
            since_poll: Cell::new(0),
            cqes: RefCell::new(Vec::with_capacity(256)),
            remote_items: RefCell::new(Vec::new()),
            due: RefCell::new(Vec::new()),
            flush_queue: RefCell::new(Vec::new()),
            flush_batch: RefCell::new(Vec::new()),
            services: Services::default(),
            net: self.net,
            pid: crate::sys::getpid(),
        });
        Ok(EventLoop { inner })
    }
}
