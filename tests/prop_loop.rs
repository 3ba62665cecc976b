//! A property test of the loop's ordering rules (ASYNCIO_SEMANTICS.md rules 1, 2, 5, 6, 7
//! and 9): seeded random programs of loop operations run on a real loop, and their event
//! log is replayed against a model of asyncio's loop.
//!
//! A program is a tree of [`Action`]s: `call_soon` / `call_later` / `call_at` of callbacks
//! whose bodies are more actions, cancels of random (timer) handles — some twice, some
//! after they ran, some not yet scheduled —, spawned tasks that yield, `sleep(0)` or sleep a
//! little a random number of times, cancels and drops of their `JoinHandle`s (dropping one
//! detaches the task, see `src/task/mod.rs`), and `ringloop::Future`s with done-callbacks
//! added, removed, set and cancelled.
//!
//! The run records every callback, task poll, task end, done-callback and return value
//! with the loop iteration it happened in. The [`Model`] then simulates asyncio's loop —
//! a FIFO ready queue drained once per iteration (what a batch schedules waits for the
//! next one), a timer heap keyed by (deadline, sequence), tasks stepped through the ready
//! queue — and checks the log event by event. Only which timers were due in which
//! iteration depends on the clock; the model reads that from the log and checks it
//! instead: timers run in key order, never before their deadline, and none is passed over
//! while a later-keyed one fires.
//!
//! `RINGLOOP_PROP_SEED=<n>` replays one seed; `RINGLOOP_PROP_SEEDS=<count>` and
//! `RINGLOOP_PROP_START=<n>` run other ranges. A failure prints the seed, the program and
//! the log.

mod util;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ringloop::{CallbackId, EventLoop, Handle, JoinHandle, TimerHandle};

// ---------------------------------------------------------------------------------------
// Programs and their generator.

/// splitmix64: a small, seedable generator (no crate needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One operation a program performs, at set-up or inside a callback.
#[derive(Debug, Clone)]
enum Action {
    /// `call_soon` of callback `h` running `body`.
    Soon { h: usize, body: Rc<[Action]> },
    /// `call_later(delay_us)` of callback `h`.
    Later {
        h: usize,
        delay_us: u64,
        body: Rc<[Action]>,
    },
    /// `call_at(base + offset_us)` (base: the program's start; negative is in the past).
    At {
        h: usize,
        offset_us: i64,
        body: Rc<[Action]>,
    },
    /// `cancel()` on handle `h`, if it was scheduled by now.
    CancelHandle { h: usize },
    /// `create_task` of task `t` awaiting `steps` in turn.
    Spawn { t: usize, steps: Rc<[Step]> },
    /// `JoinHandle::cancel` on task `t` (if its handle is still held).
    CancelTask { t: usize },
    /// Drops task `t`'s `JoinHandle` (the task is detached, keeps running).
    DropJoin { t: usize },
    /// A new `ringloop::Future` `f`.
    NewFuture { f: usize },
    /// `add_done_callback` of done-callback `c` on future `f`.
    AddDone { f: usize, c: usize },
    /// `remove_done_callback` of done-callback `c` (on its own future).
    RemoveDone { c: usize },
    /// `set_result` on future `f`.
    SetResult { f: usize },
    /// `cancel` on future `f`.
    CancelFuture { f: usize },
}

/// What a task awaits at one step.
#[derive(Debug, Clone, Copy)]
enum Step {
    YieldNow,
    SleepZero,
    /// `sleep` of 1 µs ..= 5 ms.
    Sleep {
        us: u64,
    },
}

/// A generated program: the actions run before `run_forever`.
#[derive(Debug)]
struct Program {
    top: Rc<[Action]>,
}

/// Knobs of a family of programs.
#[derive(Clone, Copy)]
struct Mix {
    /// Weights of: soon, later, at, cancel handle, spawn, cancel task, drop join, future ops.
    weights: [u64; 8],
    max_top: u64,
    max_nested: u64,
    max_depth: u32,
    max_handles: usize,
}

const MIXED: Mix = Mix {
    weights: [22, 14, 10, 14, 10, 5, 3, 30],
    max_top: 14,
    max_nested: 4,
    max_depth: 3,
    max_handles: 48,
};

const TIMER_HEAVY: Mix = Mix {
    weights: [8, 30, 34, 20, 4, 2, 1, 1],
    max_top: 16,
    max_nested: 4,
    max_depth: 3,
    max_handles: 64,
};

struct Gen {
    rng: Rng,
    mix: Mix,
    handles: usize,
    tasks: usize,
    futures: usize,
    /// Done-callback id → its future.
    callbacks: Vec<usize>,
}

impl Gen {
    fn program(seed: u64, mix: Mix) -> Program {
        let mut g = Gen {
            rng: Rng(seed),
            mix,
            handles: 0,
            tasks: 0,
            futures: 0,
            callbacks: Vec::new(),
        };
        let n = 1 + g.rng.below(mix.max_top);
        Program {
            top: g.actions(n, 0).into(),
        }
    }

    fn actions(&mut self, n: u64, depth: u32) -> Vec<Action> {
        let mut out = Vec::new();
        for _ in 0..n {
            self.action(depth, &mut out);
        }
        out
    }

    fn body(&mut self, depth: u32) -> Rc<[Action]> {
        if depth + 1 >= self.mix.max_depth || self.handles >= self.mix.max_handles {
            return Rc::from(Vec::new());
        }
        let n = self.rng.below(self.mix.max_nested + 1);
        self.actions(n, depth + 1).into()
    }

    /// A handle id to cancel: mostly existing ones, sometimes one not scheduled yet.
    fn some_handle(&mut self) -> usize {
        self.rng.below(self.handles as u64 + 2) as usize
    }

    fn action(&mut self, depth: u32, out: &mut Vec<Action>) {
        let total: u64 = self.mix.weights.iter().sum();
        let mut roll = self.rng.below(total);
        let mut kind = 0;
        while roll >= self.mix.weights[kind] {
            roll -= self.mix.weights[kind];
            kind += 1;
        }
        match kind {
            0 => {
                let h = self.new_handle();
                let body = self.body(depth);
                out.push(Action::Soon { h, body });
            }
            1 => {
                let h = self.new_handle();
                // Many equal (and zero) delays; a few odd ones.
                let delay_us = if self.rng.chance(20) {
                    self.rng.below(5001)
                } else {
                    self.rng.pick(&[0, 0, 0, 500, 1000, 1000, 2000, 3000, 5000])
                };
                let body = self.body(depth);
                out.push(Action::Later { h, delay_us, body });
            }
            2 => {
                let h = self.new_handle();
                // Equal deadlines on purpose: few distinct offsets from one base instant.
                let offset_us = self
                    .rng
                    .pick(&[-2000, -1, 0, 0, 1000, 1000, 1000, 2500, 4000]);
                let body = self.body(depth);
                out.push(Action::At { h, offset_us, body });
            }
            3 => {
                let h = self.some_handle();
                out.push(Action::CancelHandle { h });
                if self.rng.chance(25) {
                    out.push(Action::CancelHandle { h });
                }
            }
            4 => {
                let t = self.tasks;
                self.tasks += 1;
                let n = self.rng.below(5);
                let steps: Vec<Step> = (0..n)
                    .map(|_| match self.rng.below(3) {
                        0 => Step::YieldNow,
                        1 => Step::SleepZero,
                        _ => Step::Sleep {
                            us: self.rng.pick(&[1, 1000, 1000, 2000, 5000]),
                        },
                    })
                    .collect();
                out.push(Action::Spawn {
                    t,
                    steps: steps.into(),
                });
            }
            5 => {
                let t = self.rng.below(self.tasks as u64 + 1) as usize;
                out.push(Action::CancelTask { t });
            }
            6 => {
                let t = self.rng.below(self.tasks as u64 + 1) as usize;
                out.push(Action::DropJoin { t });
            }
            _ => self.future_action(out),
        }
    }

    fn future_action(&mut self, out: &mut Vec<Action>) {
        if self.futures == 0 || self.rng.chance(15) {
            let f = self.futures;
            self.futures += 1;
            out.push(Action::NewFuture { f });
            return;
        }
        let f = self.rng.below(self.futures as u64) as usize;
        match self.rng.below(10) {
            0..=4 => {
                let c = self.callbacks.len();
                self.callbacks.push(f);
                out.push(Action::AddDone { f, c });
            }
            5 | 6 if !self.callbacks.is_empty() => {
                let c = self.rng.below(self.callbacks.len() as u64) as usize;
                out.push(Action::RemoveDone { c });
            }
            7 | 8 => out.push(Action::SetResult { f }),
            _ => out.push(Action::CancelFuture { f }),
        }
    }

    fn new_handle(&mut self) -> usize {
        self.handles += 1;
        self.handles - 1
    }
}

// ---------------------------------------------------------------------------------------
// The event log. Times are nanoseconds from the program's base instant.

/// Which operation a [`Ev::Ret`] reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    SetResult,
    CancelFuture,
    RemoveDone,
    CancelTask,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    /// The loop's iteration count before `run_forever`.
    Start { it: u64 },
    /// Callback `h` ran.
    Cb { h: usize, it: u64, now: i64 },
    /// Timer `h` was scheduled for `when`.
    Sched { h: usize, it: u64, when: i64 },
    /// Task `t` was polled.
    Poll { t: usize, it: u64, now: i64 },
    /// Task `t` polled its sleep for the first time: its deadline, and whether it was
    /// already over (then no timer is armed).
    SleepArm {
        t: usize,
        it: u64,
        deadline: i64,
        immediate: bool,
    },
    /// Task `t`'s future was dropped (finished or cancelled).
    TaskDrop { t: usize, it: u64 },
    /// Done-callback `c` ran; whether its future was cancelled.
    Done { c: usize, it: u64, cancelled: bool },
    /// What an operation returned (1/0 for true/false and Ok/Err).
    Ret {
        op: Op,
        id: usize,
        it: u64,
        value: usize,
    },
}

impl Ev {
    fn kind(&self) -> &'static str {
        match self {
            Ev::Start { .. } => "start",
            Ev::Cb { .. } => "callback",
            Ev::Sched { .. } => "timer",
            Ev::Poll { .. } => "poll",
            Ev::SleepArm { .. } => "sleep",
            Ev::TaskDrop { .. } => "task end",
            Ev::Done { .. } => "done-callback",
            Ev::Ret { op, .. } => match op {
                Op::SetResult => "set_result",
                Op::CancelFuture => "future cancel",
                Op::RemoveDone => "remove_done_callback",
                Op::CancelTask => "task cancel",
            },
        }
    }

    fn it(&self) -> u64 {
        match *self {
            Ev::Start { it }
            | Ev::Cb { it, .. }
            | Ev::Sched { it, .. }
            | Ev::Poll { it, .. }
            | Ev::SleepArm { it, .. }
            | Ev::TaskDrop { it, .. }
            | Ev::Done { it, .. }
            | Ev::Ret { it, .. } => it,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running a program on a real loop.

#[derive(Clone, Copy, PartialEq, Eq)]
enum HState {
    Pending,
    Ran,
    Cancelled,
}

#[derive(Clone)]
enum AnyHandle {
    Soon(Handle),
    Timer(TimerHandle),
}

/// A scheduled callback's handle and whether it ran, was cancelled, or neither yet.
type Scheduled = (AnyHandle, Rc<Cell<HState>>);

/// The running program's state. Counts what is still to happen and stops the loop when
/// nothing is.
struct Rt {
    l: EventLoop,
    base: Instant,
    log: RefCell<Vec<Ev>>,
    pending: Cell<i64>,
    handles: RefCell<HashMap<usize, Scheduled>>,
    joins: RefCell<HashMap<usize, JoinHandle<usize>>>,
    futures: RefCell<HashMap<usize, ringloop::Future<u32>>>,
    /// Done-callbacks added but not yet scheduled, per future.
    registered: RefCell<HashMap<usize, usize>>,
    callbacks: RefCell<HashMap<usize, (usize, CallbackId)>>,
}

impl Rt {
    fn rel(&self, t: Instant) -> i64 {
        if t >= self.base {
            (t - self.base).as_nanos() as i64
        } else {
            -((self.base - t).as_nanos() as i64)
        }
    }

    fn now(&self) -> i64 {
        self.rel(self.l.time())
    }

    fn it(&self) -> u64 {
        self.l.iterations()
    }

    fn push(&self, ev: Ev) {
        self.log.borrow_mut().push(ev);
    }

    fn inc(&self, n: i64) {
        self.pending.set(self.pending.get() + n);
    }

    fn dec(&self) {
        let left = self.pending.get() - 1;
        self.pending.set(left);
        assert!(left >= 0, "pending count went negative");
        if left == 0 {
            self.l.stop();
        }
    }

    fn ret(&self, op: Op, id: usize, value: usize) {
        self.push(Ev::Ret {
            op,
            id,
            it: self.it(),
            value,
        });
    }
}

fn callback(
    rt: &Rc<Rt>,
    h: usize,
    body: &Rc<[Action]>,
    state: &Rc<Cell<HState>>,
) -> impl FnOnce() + 'static {
    let (rt, body, state) = (rt.clone(), body.clone(), state.clone());
    move || {
        state.set(HState::Ran);
        rt.push(Ev::Cb {
            h,
            it: rt.it(),
            now: rt.now(),
        });
        exec(&rt, &body);
        rt.dec();
    }
}

fn exec(rt: &Rc<Rt>, actions: &[Action]) {
    for action in actions {
        exec_one(rt, action);
    }
}

fn exec_one(rt: &Rc<Rt>, action: &Action) {
    match action {
        Action::Soon { h, body } => {
            let state = Rc::new(Cell::new(HState::Pending));
            rt.inc(1);
            let handle = rt.l.call_soon(callback(rt, *h, body, &state));
            rt.handles
                .borrow_mut()
                .insert(*h, (AnyHandle::Soon(handle), state));
        }
        Action::Later { h, delay_us, body } => {
            let state = Rc::new(Cell::new(HState::Pending));
            rt.inc(1);
            let handle = rt.l.call_later(
                Duration::from_micros(*delay_us),
                callback(rt, *h, body, &state),
            );
            schedule_timer(rt, *h, handle, state);
        }
        Action::At { h, offset_us, body } => {
            let state = Rc::new(Cell::new(HState::Pending));
            rt.inc(1);
            let offset = Duration::from_micros(offset_us.unsigned_abs());
            let when = if *offset_us < 0 {
                rt.base - offset
            } else {
                rt.base + offset
            };
            let handle = rt.l.call_at(when, callback(rt, *h, body, &state));
            schedule_timer(rt, *h, handle, state);
        }
        Action::CancelHandle { h } => {
            let found = rt.handles.borrow().get(h).cloned();
            if let Some((handle, state)) = found {
                match &handle {
                    AnyHandle::Soon(x) => x.cancel(),
                    AnyHandle::Timer(x) => x.cancel(),
                }
                let cancelled = match &handle {
                    AnyHandle::Soon(x) => x.cancelled(),
                    AnyHandle::Timer(x) => x.cancelled(),
                };
                assert!(cancelled, "handle {h}: cancelled() is false after cancel()");
                if state.get() == HState::Pending {
                    state.set(HState::Cancelled);
                    rt.dec();
                }
            }
        }
        Action::Spawn { t, steps } => {
            rt.inc(1);
            let task = Traced {
                rt: rt.clone(),
                t: *t,
                inner: Box::pin(task_body(rt.clone(), *t, steps.clone())),
            };
            let join = rt.l.create_task(task);
            rt.joins.borrow_mut().insert(*t, join);
        }
        Action::CancelTask { t } => {
            let value = rt.joins.borrow().get(t).map(|j| j.cancel());
            if let Some(value) = value {
                rt.ret(Op::CancelTask, *t, value as usize);
            }
        }
        Action::DropJoin { t } => {
            let join = rt.joins.borrow_mut().remove(t);
            drop(join);
        }
        Action::NewFuture { f } => {
            let fut = ringloop::Future::with_loop(Some(&rt.l));
            rt.futures.borrow_mut().insert(*f, fut);
            rt.registered.borrow_mut().insert(*f, 0);
        }
        Action::AddDone { f, c } => {
            let Some(fut) = rt.futures.borrow().get(f).cloned() else {
                return;
            };
            let (rt2, c2) = (rt.clone(), *c);
            let done_now = fut.done();
            let id = fut.add_done_callback(move |fut: &ringloop::Future<u32>| {
                rt2.push(Ev::Done {
                    c: c2,
                    it: rt2.it(),
                    cancelled: fut.cancelled(),
                });
                rt2.dec();
            });
            if done_now {
                rt.inc(1);
            } else {
                *rt.registered.borrow_mut().entry(*f).or_default() += 1;
            }
            rt.callbacks.borrow_mut().insert(*c, (*f, id));
        }
        Action::RemoveDone { c } => {
            let Some((f, id)) = rt.callbacks.borrow().get(c).copied() else {
                return;
            };
            let Some(fut) = rt.futures.borrow().get(&f).cloned() else {
                return;
            };
            let removed = fut.remove_done_callback(id);
            if removed == 1 {
                *rt.registered.borrow_mut().entry(f).or_default() -= 1;
            }
            rt.ret(Op::RemoveDone, *c, removed);
        }
        Action::SetResult { f } | Action::CancelFuture { f } => {
            let Some(fut) = rt.futures.borrow().get(f).cloned() else {
                return;
            };
            let (op, ok) = match action {
                Action::SetResult { .. } => (Op::SetResult, fut.set_result(7).is_ok()),
                _ => (Op::CancelFuture, fut.cancel()),
            };
            if ok {
                let n = std::mem::take(rt.registered.borrow_mut().entry(*f).or_default());
                rt.inc(n as i64);
            }
            rt.ret(op, *f, ok as usize);
        }
    }
}

fn schedule_timer(rt: &Rc<Rt>, h: usize, handle: TimerHandle, state: Rc<Cell<HState>>) {
    rt.push(Ev::Sched {
        h,
        it: rt.it(),
        when: rt.rel(handle.when()),
    });
    rt.handles
        .borrow_mut()
        .insert(h, (AnyHandle::Timer(handle), state));
}

async fn task_body(rt: Rc<Rt>, t: usize, steps: Rc<[Step]>) -> usize {
    for step in steps.iter() {
        match *step {
            Step::YieldNow => ringloop::yield_now().await,
            Step::SleepZero => ringloop::sleep(Duration::ZERO).await,
            Step::Sleep { us } => {
                let mut sleep = ringloop::sleep(Duration::from_micros(us));
                let deadline = rt.rel(sleep.deadline());
                let mut first = true;
                std::future::poll_fn(|cx| {
                    let polled = Pin::new(&mut sleep).poll(cx);
                    if first {
                        first = false;
                        rt.push(Ev::SleepArm {
                            t,
                            it: rt.it(),
                            deadline,
                            immediate: polled.is_ready(),
                        });
                    }
                    polled
                })
                .await
            }
        }
    }
    t
}

/// A task's future that logs each poll and its own drop.
struct Traced<F> {
    rt: Rc<Rt>,
    t: usize,
    inner: Pin<Box<F>>,
}

impl<F: std::future::Future> std::future::Future for Traced<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.rt.push(Ev::Poll {
            t: self.t,
            it: self.rt.it(),
            now: self.rt.now(),
        });
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for Traced<F> {
    fn drop(&mut self) {
        self.rt.push(Ev::TaskDrop {
            t: self.t,
            it: self.rt.it(),
        });
        self.rt.dec();
    }
}

/// What a run produced: the log, and each still-held `JoinHandle`'s outcome
/// (`Some(true)`: its output, `Some(false)`: cancelled, `None`: not finished).
struct Run {
    log: Vec<Ev>,
    joins: Vec<(usize, Option<bool>)>,
    watchdog_fired: bool,
}

/// How long a program may run before the test calls it a hang.
const WATCHDOG: Duration = Duration::from_secs(10);

fn run_program(program: &Program) -> Run {
    let l = EventLoop::new().expect("event loop");
    let fired = Rc::new(Cell::new(false));
    let watchdog = {
        let (l2, fired2) = (l.clone(), fired.clone());
        l.call_later(WATCHDOG, move || {
            fired2.set(true);
            l2.stop();
        })
    };
    let rt = Rc::new(Rt {
        l: l.clone(),
        base: l.time(),
        log: RefCell::new(Vec::new()),
        pending: Cell::new(0),
        handles: RefCell::new(HashMap::new()),
        joins: RefCell::new(HashMap::new()),
        futures: RefCell::new(HashMap::new()),
        registered: RefCell::new(HashMap::new()),
        callbacks: RefCell::new(HashMap::new()),
    });
    rt.push(Ev::Start { it: rt.it() });
    // Set-up holds one count, so cancels in it do not reach zero before the end.
    rt.inc(1);
    exec(&rt, &program.top);
    rt.dec();
    l.run_forever().expect("run_forever");
    watchdog.cancel();
    let log = rt.log.borrow().clone();
    let mut joins: Vec<(usize, Option<bool>)> = {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        rt.joins
            .borrow_mut()
            .iter_mut()
            .map(|(t, j)| {
                let outcome = match Pin::new(j).poll(&mut cx) {
                    Poll::Ready(Ok(v)) => {
                        assert_eq!(v, *t, "task {t} returned another task's output");
                        Some(true)
                    }
                    Poll::Ready(Err(ringloop::Error::Cancelled)) => Some(false),
                    Poll::Ready(Err(e)) => panic!("task {t} failed: {e}"),
                    Poll::Pending => None,
                };
                (*t, outcome)
            })
            .collect()
    };
    joins.sort();
    // Break the Rc cycles (handles hold callbacks holding `rt`) before closing.
    rt.handles.borrow_mut().clear();
    rt.joins.borrow_mut().clear();
    rt.futures.borrow_mut().clear();
    rt.callbacks.borrow_mut().clear();
    l.close().expect("close");
    Run {
        log,
        joins,
        watchdog_fired: fired.get(),
    }
}

// ---------------------------------------------------------------------------------------
// The model: asyncio's loop, replayed against the log.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Callback(usize),
    Done { c: usize, cancelled: bool },
    Task(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    Callback(usize),
    /// Task `t`'s sleep.
    Sleep(usize),
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    /// (deadline, scheduling sequence).
    key: (i64, u64),
    kind: TimerKind,
    /// The iteration that scheduled it (the set-up iteration for the program's own).
    scheduled_in: u64,
}

struct MHandle {
    state: HState,
    /// The deadline, for timers.
    when: Option<i64>,
    body: Rc<[Action]>,
}

struct MTask {
    steps: Rc<[Step]>,
    /// The step being awaited (or about to be).
    pc: usize,
    /// Whether step `pc`'s await returned Pending (the next poll completes it).
    awaiting: bool,
    /// In the ready queue (asyncio: a task is scheduled at most once).
    scheduled: bool,
    cancel_requested: bool,
    /// `Some(true)` finished with its output, `Some(false)` cancelled.
    finished: Option<bool>,
    /// The deadline of the sleep it waits on.
    sleeping: Option<i64>,
    join_held: bool,
}

struct MFuture {
    done: bool,
    cancelled: bool,
    /// Done-callbacks added and not yet scheduled, in the order added.
    registered: Vec<usize>,
}

struct Model<'a> {
    log: &'a [Ev],
    pos: usize,
    ready: VecDeque<Item>,
    heap: Vec<Timer>,
    seq: u64,
    handles: HashMap<usize, MHandle>,
    tasks: HashMap<usize, MTask>,
    futures: HashMap<usize, MFuture>,
    /// Done-callback → its future, for callbacks whose `add_done_callback` ran.
    callbacks: HashMap<usize, usize>,
    /// Test-only switch: expect equal deadlines in reverse scheduling order (a deliberately
    /// wrong rule, to see the test fail).
    reverse_ties: bool,
}

type Check<T = ()> = Result<T, String>;

impl<'a> Model<'a> {
    fn new(log: &'a [Ev]) -> Self {
        Model {
            log,
            pos: 0,
            ready: VecDeque::new(),
            heap: Vec::new(),
            seq: 0,
            handles: HashMap::new(),
            tasks: HashMap::new(),
            futures: HashMap::new(),
            callbacks: HashMap::new(),
            reverse_ties: false,
        }
    }

    /// The next logged event, which the model expects to be `what` (for the message).
    fn next(&mut self, what: &dyn fmt::Debug) -> Check<Ev> {
        match self.log.get(self.pos) {
            Some(ev) => {
                self.pos += 1;
                Ok(ev.clone())
            }
            None => Err(format!("expected {what:?}, but the log ended")),
        }
    }

    fn expect(&mut self, want: Ev) -> Check {
        let got = self.next(&want)?;
        if got != want {
            return Err(format!(
                "event #{}: expected {want:?}, got {got:?}",
                self.pos - 1
            ));
        }
        Ok(())
    }

    fn order_key(&self, key: (i64, u64)) -> (i64, i64) {
        if self.reverse_ties {
            (key.0, -(key.1 as i64))
        } else {
            (key.0, key.1 as i64)
        }
    }

    fn check(&mut self, program: &Program, run: &Run) -> Check {
        let Some(&Ev::Start { it: start }) = self.log.first() else {
            return Err("the log does not begin with Start".into());
        };
        self.pos = 1;
        // Set-up runs "in" the iteration count before run_forever.
        self.exec(&program.top, start)?;
        let mut k = start;
        loop {
            k += 1;
            if let Some(ev) = self.log.get(self.pos)
                && ev.it() < k
            {
                return Err(format!(
                    "event #{}: {ev:?} is logged in iteration {} after iteration {} ended",
                    self.pos,
                    ev.it(),
                    k - 1
                ));
            }
            if self.pos == self.log.len() && self.ready.is_empty() {
                break;
            }
            self.iteration(k)?;
        }
        if let Some(t) = self.heap.iter().find(|t| self.timer_live(t)) {
            return Err(format!("timer {t:?} never fired"));
        }
        let mut want: Vec<(usize, Option<bool>)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.join_held)
            .map(|(id, t)| (*id, t.finished))
            .collect();
        want.sort();
        if want != run.joins {
            return Err(format!(
                "join handles: expected (task, finished with output?) {want:?}, got {:?}",
                run.joins
            ));
        }
        Ok(())
    }

    /// Whether a timer still counts: not cancelled, and (a sleep) not of a task whose
    /// cancellation makes its firing unobservable.
    fn timer_live(&self, timer: &Timer) -> bool {
        match timer.kind {
            TimerKind::Callback(h) => self.handles[&h].state == HState::Pending,
            TimerKind::Sleep(t) => !self.tasks[&t].cancel_requested,
        }
    }

    /// One loop iteration `k`: the batch is everything queued before it, then the timers
    /// due at its start, in (deadline, sequence) order.
    fn iteration(&mut self, k: u64) -> Check {
        // Which timers fired now: the log says (timer callbacks run in the iteration their
        // timer fires; a sleeping task not otherwise queued runs only when its timer does).
        let end = self.pos
            + self.log[self.pos..]
                .iter()
                .take_while(|e| e.it() == k)
                .count();
        let mut fired: Vec<Timer> = Vec::new();
        for ev in &self.log[self.pos..end] {
            let found = match *ev {
                Ev::Cb { h, .. } => self
                    .heap
                    .iter()
                    .position(|t| t.kind == TimerKind::Callback(h)),
                Ev::Poll { t, .. } | Ev::TaskDrop { t, .. }
                    if self.tasks.get(&t).is_some_and(|x| !x.scheduled) =>
                {
                    self.heap.iter().position(|x| x.kind == TimerKind::Sleep(t))
                }
                _ => None,
            };
            if let Some(i) = found {
                fired.push(self.heap.swap_remove(i));
            }
        }
        fired.sort_by_key(|t| self.order_key(t.key));
        let mut batch: Vec<Item> = self.ready.drain(..).collect();
        for timer in &fired {
            match timer.kind {
                TimerKind::Callback(h) => batch.push(Item::Callback(h)),
                TimerKind::Sleep(t) => {
                    let task = self.tasks.get_mut(&t).expect("sleeping task");
                    task.scheduled = true;
                    batch.push(Item::Task(t));
                }
            }
        }
        for item in batch {
            self.run_item(item, k)?;
        }
        if let Some(ev) = self.log.get(self.pos)
            && ev.it() == k
        {
            return Err(format!(
                "event #{}: {ev:?} in iteration {k}, where the model has nothing left to run",
                self.pos
            ));
        }
        // No timer due before one that fired was passed over.
        if let Some(last) = fired.last() {
            let last_key = self.order_key(last.key);
            if let Some(skipped) = self.heap.iter().find(|t| {
                t.scheduled_in < k && self.timer_live(t) && self.order_key(t.key) < last_key
            }) {
                return Err(format!(
                    "iteration {k}: timer {skipped:?} was due before {last:?}, which fired, but did not fire"
                ));
            }
        }
        Ok(())
    }

    fn run_item(&mut self, item: Item, k: u64) -> Check {
        match item {
            Item::Callback(h) => {
                let handle = self.handles.get_mut(&h).expect("queued handle");
                match handle.state {
                    HState::Cancelled => return Ok(()),
                    HState::Ran => return Err(format!("model: callback {h} queued twice")),
                    HState::Pending => handle.state = HState::Ran,
                }
                let (when, body) = (handle.when, handle.body.clone());
                let got = self.next(&format!("callback {h} in iteration {k}"))?;
                match got {
                    Ev::Cb { h: gh, it, now } if gh == h && it == k => {
                        if let Some(when) = when
                            && now < when
                        {
                            return Err(format!(
                                "timer {h} ran {} ns before its deadline",
                                when - now
                            ));
                        }
                    }
                    other => {
                        return Err(format!(
                            "event #{}: expected callback {h} in iteration {k}, got {other:?}",
                            self.pos - 1
                        ));
                    }
                }
                self.exec(&body, k)
            }
            Item::Done { c, cancelled } => self.expect(Ev::Done {
                c,
                it: k,
                cancelled,
            }),
            Item::Task(t) => self.step_task(t, k),
        }
    }

    fn step_task(&mut self, t: usize, k: u64) -> Check {
        let task = self.tasks.get_mut(&t).expect("queued task");
        task.scheduled = false;
        if task.finished.is_some() {
            return Ok(());
        }
        if task.cancel_requested {
            task.finished = Some(false);
            // Its sleep (if any) is dropped with it.
            self.heap.retain(|x| x.kind != TimerKind::Sleep(t));
            return self.expect(Ev::TaskDrop { t, it: k });
        }
        let sleeping = task.sleeping.take();
        let got = self.next(&format!("a poll of task {t} in iteration {k}"))?;
        match got {
            Ev::Poll { t: gt, it, now } if gt == t && it == k => {
                if let Some(deadline) = sleeping
                    && now < deadline
                {
                    return Err(format!(
                        "task {t} woke {} ns before its sleep's deadline",
                        deadline - now
                    ));
                }
            }
            other => {
                return Err(format!(
                    "event #{}: expected a poll of task {t} in iteration {k}, got {other:?}",
                    self.pos - 1
                ));
            }
        }
        loop {
            let task = self.tasks.get_mut(&t).expect("task");
            let Some(&step) = task.steps.get(task.pc) else {
                task.finished = Some(true);
                return self.expect(Ev::TaskDrop { t, it: k });
            };
            if task.awaiting {
                task.awaiting = false;
                task.pc += 1;
                continue;
            }
            match step {
                Step::YieldNow | Step::SleepZero => {
                    // Wakes itself, so it runs again next iteration.
                    task.awaiting = true;
                    task.scheduled = true;
                    self.ready.push_back(Item::Task(t));
                    return Ok(());
                }
                Step::Sleep { .. } => {
                    let got = self.next(&format!("task {t}'s sleep in iteration {k}"))?;
                    let Ev::SleepArm {
                        t: gt,
                        it,
                        deadline,
                        immediate,
                    } = got
                    else {
                        return Err(format!(
                            "event #{}: expected task {t}'s sleep, got {got:?}",
                            self.pos - 1
                        ));
                    };
                    if gt != t || it != k {
                        return Err(format!(
                            "event #{}: expected task {t}'s sleep in iteration {k}, got {got:?}",
                            self.pos - 1
                        ));
                    }
                    let task = self.tasks.get_mut(&t).expect("task");
                    if immediate {
                        task.pc += 1;
                        continue;
                    }
                    task.awaiting = true;
                    task.sleeping = Some(deadline);
                    self.seq += 1;
                    self.heap.push(Timer {
                        key: (deadline, self.seq),
                        kind: TimerKind::Sleep(t),
                        scheduled_in: k,
                    });
                    return Ok(());
                }
            }
        }
    }

    fn exec(&mut self, actions: &[Action], k: u64) -> Check {
        for action in actions {
            self.exec_one(action, k)?;
        }
        Ok(())
    }

    fn exec_one(&mut self, action: &Action, k: u64) -> Check {
        match action {
            Action::Soon { h, body } => {
                self.handles.insert(
                    *h,
                    MHandle {
                        state: HState::Pending,
                        when: None,
                        body: body.clone(),
                    },
                );
                self.ready.push_back(Item::Callback(*h));
            }
            Action::Later { h, body, .. } | Action::At { h, body, .. } => {
                let got = self.next(&format!("timer {h} scheduled"))?;
                let when = match got {
                    Ev::Sched { h: gh, it, when } if gh == *h && it == k => when,
                    other => {
                        return Err(format!(
                            "event #{}: expected timer {h} scheduled in iteration {k}, got {other:?}",
                            self.pos - 1
                        ));
                    }
                };
                self.seq += 1;
                self.heap.push(Timer {
                    key: (when, self.seq),
                    kind: TimerKind::Callback(*h),
                    scheduled_in: k,
                });
                self.handles.insert(
                    *h,
                    MHandle {
                        state: HState::Pending,
                        when: Some(when),
                        body: body.clone(),
                    },
                );
            }
            Action::CancelHandle { h } => {
                if let Some(handle) = self.handles.get_mut(h)
                    && handle.state == HState::Pending
                {
                    handle.state = HState::Cancelled;
                    self.heap.retain(|t| t.kind != TimerKind::Callback(*h));
                }
            }
            Action::Spawn { t, steps } => {
                self.tasks.insert(
                    *t,
                    MTask {
                        steps: steps.clone(),
                        pc: 0,
                        awaiting: false,
                        scheduled: true,
                        cancel_requested: false,
                        finished: None,
                        sleeping: None,
                        join_held: true,
                    },
                );
                // The first step runs through the ready queue, not inside spawn.
                self.ready.push_back(Item::Task(*t));
            }
            Action::CancelTask { t } => {
                let Some(task) = self.tasks.get_mut(t).filter(|x| x.join_held) else {
                    return Ok(());
                };
                let value = task.finished.is_none() && !task.cancel_requested;
                if value {
                    task.cancel_requested = true;
                    if !task.scheduled {
                        task.scheduled = true;
                        self.ready.push_back(Item::Task(*t));
                    }
                }
                self.expect(Ev::Ret {
                    op: Op::CancelTask,
                    id: *t,
                    it: k,
                    value: value as usize,
                })?;
            }
            Action::DropJoin { t } => {
                if let Some(task) = self.tasks.get_mut(t) {
                    task.join_held = false;
                }
            }
            Action::NewFuture { f } => {
                self.futures.insert(
                    *f,
                    MFuture {
                        done: false,
                        cancelled: false,
                        registered: Vec::new(),
                    },
                );
            }
            Action::AddDone { f, c } => {
                let Some(fut) = self.futures.get_mut(f) else {
                    return Ok(());
                };
                self.callbacks.insert(*c, *f);
                if fut.done {
                    // Also after the fact: through call_soon, never inline.
                    self.ready.push_back(Item::Done {
                        c: *c,
                        cancelled: fut.cancelled,
                    });
                } else {
                    fut.registered.push(*c);
                }
            }
            Action::RemoveDone { c } => {
                let Some(f) = self.callbacks.get(c) else {
                    return Ok(());
                };
                let fut = self.futures.get_mut(f).expect("future");
                let before = fut.registered.len();
                fut.registered.retain(|x| x != c);
                let removed = before - fut.registered.len();
                self.expect(Ev::Ret {
                    op: Op::RemoveDone,
                    id: *c,
                    it: k,
                    value: removed,
                })?;
            }
            Action::SetResult { f } | Action::CancelFuture { f } => {
                let Some(fut) = self.futures.get_mut(f) else {
                    return Ok(());
                };
                let cancel = matches!(action, Action::CancelFuture { .. });
                let ok = !fut.done;
                if ok {
                    fut.done = true;
                    fut.cancelled = cancel;
                    // In the order added, minus the removed ones.
                    for c in std::mem::take(&mut fut.registered) {
                        self.ready.push_back(Item::Done {
                            c,
                            cancelled: cancel,
                        });
                    }
                }
                let op = if cancel {
                    Op::CancelFuture
                } else {
                    Op::SetResult
                };
                self.expect(Ev::Ret {
                    op,
                    id: *f,
                    it: k,
                    value: ok as usize,
                })?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The driver.

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?}: expected a number"),
    }
}

/// Runs the seeds of one family and panics with a replayable report on the first failure.
fn run_seeds(family: &str, mix: Mix, salt: u64) {
    let seeds: Vec<u64> = match env_u64("RINGLOOP_PROP_SEED") {
        Some(seed) => vec![seed],
        None => {
            let start = env_u64("RINGLOOP_PROP_START").unwrap_or(0);
            let count = env_u64("RINGLOOP_PROP_SEEDS").unwrap_or(200);
            (start..start + count).collect()
        }
    };
    let fds = util::open_fds();
    let started = Instant::now();
    let mut events = 0;
    let mut kinds: HashMap<&'static str, usize> = HashMap::new();
    for &seed in &seeds {
        let program = Gen::program(seed ^ salt, mix);
        let run = run_program(&program);
        events += run.log.len();
        for ev in &run.log {
            *kinds.entry(ev.kind()).or_default() += 1;
        }
        let verdict = if run.watchdog_fired {
            Err(format!("the program did not finish within {WATCHDOG:?}"))
        } else {
            Model::new(&run.log).check(&program, &run)
        };
        if let Err(why) = verdict {
            let log: Vec<String> = run
                .log
                .iter()
                .enumerate()
                .map(|(i, e)| format!("  #{i}: {e:?}"))
                .collect();
            panic!(
                "{family}: seed {seed} breaks the model: {why}\n\
                 replay: RINGLOOP_PROP_SEED={seed} cargo test --release --test prop_loop\n\
                 program: {:#?}\nlog:\n{}",
                program.top,
                log.join("\n")
            );
        }
    }
    assert_eq!(
        util::open_fds(),
        fds,
        "fds leaked across {} loops",
        seeds.len()
    );
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort();
    eprintln!(
        "{family}: {} seeds, {events} events checked in {:?}: {kinds:?}",
        seeds.len(),
        started.elapsed()
    );
}

/// Both families in one test, so the fd count is not disturbed by a parallel test.
#[test]
fn random_programs_follow_the_asyncio_model() {
    run_seeds("mixed", MIXED, 0);
    run_seeds("timer-heavy", TIMER_HEAVY, 0x5EED_0000_0000_0001);
}
