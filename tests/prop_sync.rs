//! Property tests of FIFO fairness under random cancellation, for `Lock`, `Semaphore`
//! and `Queue` (issue 15): seeded random schedules of waiters, late arrivals, releases,
//! `put_nowait`/`get_nowait` calls and cancellations (a cancelled task's future is
//! dropped at its next step, anywhere in its life: queued, woken but not yet run, or
//! holding), run on a real loop, then checked:
//!
//! - Lock / Semaphore: at most `units` holders at any time; acquisitions happen in
//!   arrival order (no barging, no overtaking, whoever is cancelled); every task not
//!   cancelled acquires (no lost wake-up); at the end the primitive is free and has no
//!   waiters.
//! - Queue: the items come out in exactly the order they went in, none lost and none
//!   twice (`put order == got ++ left in the queue`, or `++ dropped` by an immediate
//!   shutdown); once the tasks settle, no getter waits while an item is queued and no
//!   putter while there is room (no lost wake-up); a producer's item is either put or given back by the shutdown; every
//!   task ends once the queue is shut down; `join` returns once every item got is
//!   marked done; no waiter slot is left.
//!
//! `RINGLOOP_PROP_SEED=<n>` replays one seed; `RINGLOOP_PROP_SEEDS=<count>` and
//! `RINGLOOP_PROP_START=<n>` run other ranges (default: seeds 0..300).

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ringloop::{JoinHandle, Lock, Queue, Semaphore, spawn, yield_now};

/// splitmix64, as in `tests/prop_loop.rs`.
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

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn seeds() -> Vec<u64> {
    match env_u64("RINGLOOP_PROP_SEED") {
        Some(seed) => vec![seed],
        None => {
            let start = env_u64("RINGLOOP_PROP_START").unwrap_or(0);
            let count = env_u64("RINGLOOP_PROP_SEEDS").unwrap_or(300);
            (start..start + count).collect()
        }
    }
}

fn replay(test: &str, seed: u64) -> String {
    format!("seed {seed} (replay: RINGLOOP_PROP_SEED={seed} cargo test --test prop_sync {test})")
}

/// Runs one seed's case; a hang (a lost wake-up) fails with the seed.
async fn bounded(test: &str, seed: u64, case: impl std::future::Future<Output = ()>) {
    if ringloop::timeout(Duration::from_secs(5), case)
        .await
        .is_err()
    {
        panic!("{}: hung (a lost wake-up?)", replay(test, seed));
    }
}

// ---------------------------------------------------------------------------------------
// Lock and Semaphore.

#[derive(Clone)]
enum Prim {
    Lock(Lock),
    Sem(Semaphore),
}

/// A held guard, released when dropped.
type Held = Box<dyn std::any::Any>;

impl Prim {
    async fn acquire(&self) -> Held {
        match self {
            Prim::Lock(l) => Box::new(l.acquire().await),
            Prim::Sem(s) => Box::new(s.acquire().await),
        }
    }

    fn idle(&self, units: usize) -> bool {
        match self {
            Prim::Lock(l) => !l.locked() && l.waiters() == 0,
            Prim::Sem(s) => s.value() == units && s.waiters() == 0 && !s.locked(),
        }
    }
}

/// Counts a holder out when its task leaves the critical section, however it leaves.
struct Holding(Rc<Cell<usize>>);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

struct Shared {
    /// Task indices in acquisition order.
    acquired: RefCell<Vec<usize>>,
    holders: Rc<Cell<usize>>,
    max_holders: Cell<usize>,
}

fn waiter(prim: &Prim, shared: &Rc<Shared>, index: usize, hold: u64) -> JoinHandle<()> {
    let (prim, shared) = (prim.clone(), shared.clone());
    spawn(async move {
        let _held = prim.acquire().await;
        shared.holders.set(shared.holders.get() + 1);
        let _holding = Holding(shared.holders.clone());
        shared
            .max_holders
            .set(shared.max_holders.get().max(shared.holders.get()));
        shared.acquired.borrow_mut().push(index);
        for _ in 0..hold {
            yield_now().await;
        }
    })
}

/// One seeded schedule against `prim` with `units` units (1 for a lock).
async fn fifo_case(test: &str, seed: u64, prim: Prim, units: usize) {
    let mut rng = Rng(seed);
    let shared = Rc::new(Shared {
        acquired: RefCell::new(Vec::new()),
        holders: Rc::new(Cell::new(0)),
        max_holders: Cell::new(0),
    });
    // The test holds every unit at first, so the first waiters all queue.
    let mut own = Vec::new();
    for _ in 0..units {
        own.push(prim.acquire().await);
    }
    let first = 2 + rng.below(10) as usize;
    let late = rng.below(8) as usize;
    let mut tasks = Vec::new();
    for i in 0..first {
        tasks.push(waiter(&prim, &shared, i, rng.below(4)));
    }
    yield_now().await;
    let mut rounds = 0;
    while rounds < 400 && (tasks.iter().any(|t| !t.is_finished()) || tasks.len() < first + late) {
        rounds += 1;
        match rng.below(100) {
            0..=14 => {
                let t = &tasks[rng.below(tasks.len() as u64) as usize];
                t.cancel();
            }
            15..=24 if tasks.len() < first + late => {
                let i = tasks.len();
                tasks.push(waiter(&prim, &shared, i, rng.below(4)));
            }
            25..=34 if !own.is_empty() => {
                own.pop();
            }
            _ => yield_now().await,
        }
    }
    own.clear();
    let mut cancelled = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(()) => {}
            Err(e) if e.is_cancelled() => cancelled.push(i),
            Err(e) => panic!("{}: task {i} failed: {e}", replay(test, seed)),
        }
    }
    let acquired = shared.acquired.borrow();
    let ctx = || {
        format!(
            "{}: acquired {acquired:?}, cancelled {cancelled:?}",
            replay(test, seed)
        )
    };
    assert!(
        shared.max_holders.get() <= units,
        "{}: too many holders",
        ctx()
    );
    assert!(
        acquired.windows(2).all(|w| w[0] < w[1]),
        "{}: not FIFO",
        ctx()
    );
    for i in 0..first + late {
        assert!(
            acquired.contains(&i) || cancelled.contains(&i),
            "{}: task {i} neither acquired nor was cancelled",
            ctx()
        );
    }
    assert!(prim.idle(units), "{}: not idle at the end", ctx());
}

#[test]
fn lock_fifo_under_random_cancellation() {
    util::run(async {
        for seed in seeds() {
            bounded(
                "lock",
                seed,
                fifo_case("lock", seed, Prim::Lock(Lock::new()), 1),
            )
            .await;
        }
    });
}

#[test]
fn semaphore_fifo_under_random_cancellation() {
    util::run(async {
        for seed in seeds() {
            let units = 1 + (seed % 3) as usize;
            let case = fifo_case("semaphore", seed, Prim::Sem(Semaphore::new(units)), units);
            bounded("semaphore", seed, case).await;
        }
    });
}

// ---------------------------------------------------------------------------------------
// Queue.

#[derive(Default)]
struct Log {
    /// Items in the order their put succeeded.
    put: Vec<u64>,
    /// Items in the order they were got.
    got: Vec<u64>,
}

/// Producer `p` puts `(p << 32) | k` for `k` in `0..count`; returns how many it put and
/// the item the shutdown gave back, if one did.
fn producer(
    q: &Queue<u64>,
    log: &Rc<RefCell<Log>>,
    p: u64,
    count: u64,
    yields: Vec<bool>,
) -> JoinHandle<(u64, Option<u64>)> {
    let (q, log) = (q.clone(), log.clone());
    spawn(async move {
        for k in 0..count {
            let item = (p << 32) | k;
            match q.put(item).await {
                Ok(()) => log.borrow_mut().put.push(item),
                Err(back) => return (k, Some(back.into_inner())),
            }
            if yields[k as usize] {
                yield_now().await;
            }
        }
        (count, None)
    })
}

fn consumer(q: &Queue<u64>, log: &Rc<RefCell<Log>>, yields: Vec<bool>) -> JoinHandle<()> {
    let (q, log) = (q.clone(), log.clone());
    spawn(async move {
        let mut n = 0;
        while let Ok(item) = q.get().await {
            log.borrow_mut().got.push(item);
            q.task_done().unwrap();
            if yields[n % yields.len()] {
                yield_now().await;
            }
            n += 1;
        }
    })
}

/// Whether, once the tasks settle, no getter waits while an item is queued and no putter
/// waits while there is room. A lost wake-up leaves one so until the next put or get
/// (or the final shutdown) hides it.
async fn settles(q: &Queue<u64>) -> bool {
    let stuck = || {
        let shown = q.to_string();
        (shown.contains("_getters") && !q.empty()) || (shown.contains("_putters") && !q.full())
    };
    for _ in 0..50 {
        if !stuck() {
            return true;
        }
        yield_now().await;
    }
    !stuck()
}

async fn queue_case(seed: u64) {
    let test = "queue";
    let mut rng = Rng(seed);
    let maxsize = rng.below(4) as usize;
    let q: Queue<u64> = Queue::new(maxsize);
    let log = Rc::new(RefCell::new(Log::default()));
    let n_producers = 1 + rng.below(3);
    let n_consumers = 1 + rng.below(4);
    let mut counts = Vec::new();
    let mut producers = Vec::new();
    for p in 0..n_producers {
        let count = 1 + rng.below(8);
        let yields = (0..count).map(|_| rng.chance(50)).collect();
        counts.push(count);
        producers.push(producer(&q, &log, p + 1, count, yields));
    }
    let mut consumers = Vec::new();
    for _ in 0..n_consumers {
        let yields = (0..4).map(|_| rng.chance(50)).collect();
        consumers.push(consumer(&q, &log, yields));
    }
    let mut main_k = 0;
    let mut dropped_by_shutdown = 0;
    let shutdown_at = rng.below(300);
    let immediate = rng.chance(30);
    for round in 0..300 {
        if round == shutdown_at {
            if immediate {
                dropped_by_shutdown = q.qsize();
            }
            q.shutdown(immediate);
        }
        match rng.below(100) {
            0..=4 => {
                producers[rng.below(n_producers) as usize].cancel();
            }
            5..=9 => {
                consumers[rng.below(n_consumers) as usize].cancel();
            }
            10..=14 => {
                // The test itself puts (producer 0) ...
                let item = main_k;
                if q.put_nowait(item).is_ok() {
                    log.borrow_mut().put.push(item);
                    main_k += 1;
                }
            }
            15..=19 => {
                // ... and gets.
                if let Ok(item) = q.get_nowait() {
                    log.borrow_mut().got.push(item);
                    q.task_done().unwrap();
                }
            }
            20..=24 => {
                // A put that wakes a getter, then a cancel that may hit it before it runs.
                if q.put_nowait(main_k).is_ok() {
                    log.borrow_mut().put.push(main_k);
                    main_k += 1;
                }
                consumers[rng.below(n_consumers) as usize].cancel();
                assert!(
                    settles(&q).await,
                    "{}: a getter is stuck: {q}",
                    replay(test, seed)
                );
            }
            25..=29 => {
                // A get that wakes a putter, then a cancel that may hit it.
                if let Ok(item) = q.get_nowait() {
                    log.borrow_mut().got.push(item);
                    q.task_done().unwrap();
                }
                producers[rng.below(n_producers) as usize].cancel();
                assert!(
                    settles(&q).await,
                    "{}: a putter is stuck: {q}",
                    replay(test, seed)
                );
            }
            _ => yield_now().await,
        }
    }
    assert!(
        settles(&q).await,
        "{}: a waiter is stuck: {q}",
        replay(test, seed)
    );
    if !q.is_shut_down() {
        q.shutdown(false);
    }
    let ctx = |log: &Log| {
        format!(
            "{}: put {:x?}, got {:x?}",
            replay(test, seed),
            log.put,
            log.got
        )
    };
    for (p, t) in producers.into_iter().enumerate() {
        match t.await {
            Ok((put, back)) => {
                if let Some(item) = back {
                    assert_eq!(item, ((p as u64 + 1) << 32) | put, "{}", ctx(&log.borrow()));
                } else {
                    assert_eq!(put, counts[p], "{}", ctx(&log.borrow()));
                }
            }
            Err(e) => assert!(
                e.is_cancelled(),
                "{}: producer {p}: {e}",
                ctx(&log.borrow())
            ),
        }
    }
    for (c, t) in consumers.into_iter().enumerate() {
        if let Err(e) = t.await {
            assert!(
                e.is_cancelled(),
                "{}: consumer {c}: {e}",
                ctx(&log.borrow())
            );
        }
    }
    // What no consumer took is still queued (unless an immediate shutdown dropped it).
    let mut left = Vec::new();
    while let Ok(item) = q.get_nowait() {
        left.push(item);
        q.task_done().unwrap();
    }
    // Every task has ended: the log is complete.
    let log = std::mem::take(&mut *log.borrow_mut());
    let ctx = || {
        format!(
            "{}, left {left:x?}, dropped {dropped_by_shutdown}",
            ctx(&log)
        )
    };
    assert!(log.put.starts_with(&log.got), "{}: got out of order", ctx());
    let rest = &log.put[log.got.len()..];
    if immediate && dropped_by_shutdown > 0 {
        assert!(left.is_empty(), "{}", ctx());
        assert_eq!(rest.len(), dropped_by_shutdown, "{}", ctx());
    } else {
        assert_eq!(rest, &left[..], "{}: items lost or duplicated", ctx());
    }
    let joined = ringloop::wait_for(q.join(), Duration::from_secs(1)).await;
    assert!(joined.is_ok(), "{}: join did not return", ctx());
    let shown = q.to_string();
    assert!(
        !shown.contains("_getters") && !shown.contains("_putters") && !shown.contains("tasks="),
        "{}: {shown}",
        ctx()
    );
}

#[test]
fn queue_fifo_under_random_cancellation() {
    util::run(async {
        for seed in seeds() {
            bounded("queue", seed, queue_case(seed)).await;
        }
    });
}
