//! Synchronization and queue benchmarks against `tokio::sync` on tokio's current-thread
//! runtime, in the same run (issue 15): an uncontended lock, a lock handed back and
//! forth between two tasks, 1,000 tasks woken by one `Event` set (tokio: `Notify`),
//! 1,000 tasks queued on a `Semaphore`, and a `Queue` ping-pong between two tasks
//! (tokio: two bounded `mpsc` channels).
//!
//! `cargo bench --bench sync` (about a minute; 10 samples of ~2 s). Compare ringloop
//! with tokio by ratio on a quiet machine; `-- --quick` only checks that it runs.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringloop::{Event, EventLoop, Lock, Queue, Semaphore};

const UNCONTENDED: u64 = 100_000;
const HANDOFFS: u64 = 10_000;
const WAITERS: u64 = 1_000;
const PINGS: u64 = 10_000;

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn lock_uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock_uncontended_100k");
    group.throughput(Throughput::Elements(UNCONTENDED));
    let l = EventLoop::new().unwrap();
    group.bench_function("ringloop_lock", |b| {
        b.iter(|| {
            l.run_until_complete(async {
                let lock = Lock::new();
                for _ in 0..UNCONTENDED {
                    drop(black_box(lock.acquire().await));
                }
            })
            .unwrap()
        })
    });
    l.close().unwrap();
    let rt = tokio_rt();
    group.bench_function("tokio_mutex", |b| {
        b.iter(|| {
            rt.block_on(async {
                let lock = tokio::sync::Mutex::new(());
                for _ in 0..UNCONTENDED {
                    drop(black_box(lock.lock().await));
                }
            })
        })
    });
    group.finish();
}

fn lock_handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock_handoff_2_tasks_10k");
    group.throughput(Throughput::Elements(HANDOFFS));
    let l = EventLoop::new().unwrap();
    group.bench_function("ringloop_lock", |b| {
        b.iter(|| {
            l.run_until_complete(async {
                let lock = Lock::new();
                let tasks: Vec<_> = (0..2)
                    .map(|_| {
                        let lock = lock.clone();
                        ringloop::spawn(async move {
                            for _ in 0..HANDOFFS / 2 {
                                let g = lock.acquire().await;
                                // Hold across a yield, so the other task queues.
                                ringloop::yield_now().await;
                                drop(g);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
            .unwrap()
        })
    });
    l.close().unwrap();
    let rt = tokio_rt();
    group.bench_function("tokio_mutex", |b| {
        b.iter(|| {
            rt.block_on(async {
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                let tasks: Vec<_> = (0..2)
                    .map(|_| {
                        let lock = lock.clone();
                        tokio::spawn(async move {
                            for _ in 0..HANDOFFS / 2 {
                                let g = lock.lock().await;
                                tokio::task::yield_now().await;
                                drop(g);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

fn event_waiters(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_1000_waiters");
    group.throughput(Throughput::Elements(WAITERS));
    let l = EventLoop::new().unwrap();
    group.bench_function("ringloop_event", |b| {
        b.iter(|| {
            l.run_until_complete(async {
                let ev = Event::new();
                let tasks: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let ev = ev.clone();
                        ringloop::spawn(async move { ev.wait().await })
                    })
                    .collect();
                ringloop::yield_now().await; // every waiter queues
                ev.set();
                for t in tasks {
                    t.await.unwrap();
                }
            })
            .unwrap()
        })
    });
    l.close().unwrap();
    let rt = tokio_rt();
    group.bench_function("tokio_notify", |b| {
        b.iter(|| {
            rt.block_on(async {
                let notify = Arc::new(tokio::sync::Notify::new());
                let registered = Arc::new(AtomicU64::new(0));
                let tasks: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let (n, r) = (notify.clone(), registered.clone());
                        tokio::spawn(async move {
                            let notified = n.notified();
                            tokio::pin!(notified);
                            // notify_waiters wakes only registered waiters.
                            notified.as_mut().enable();
                            r.fetch_add(1, Ordering::Relaxed);
                            notified.await
                        })
                    })
                    .collect();
                // tokio does not run every spawned task before the main future resumes.
                while registered.load(Ordering::Relaxed) < WAITERS {
                    tokio::task::yield_now().await;
                }
                notify.notify_waiters();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

fn semaphore_waiters(c: &mut Criterion) {
    let mut group = c.benchmark_group("semaphore_1000_waiters");
    group.throughput(Throughput::Elements(WAITERS));
    let l = EventLoop::new().unwrap();
    group.bench_function("ringloop_semaphore", |b| {
        b.iter(|| {
            l.run_until_complete(async {
                let sem = Semaphore::new(0);
                let tasks: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let sem = sem.clone();
                        ringloop::spawn(async move { sem.acquire().await.forget() })
                    })
                    .collect();
                ringloop::yield_now().await; // every waiter queues
                for _ in 0..WAITERS {
                    sem.release().unwrap();
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
            .unwrap()
        })
    });
    l.close().unwrap();
    let rt = tokio_rt();
    group.bench_function("tokio_semaphore", |b| {
        b.iter(|| {
            rt.block_on(async {
                let sem = Arc::new(tokio::sync::Semaphore::new(0));
                let tasks: Vec<_> = (0..WAITERS)
                    .map(|_| {
                        let sem = sem.clone();
                        tokio::spawn(async move { sem.acquire().await.unwrap().forget() })
                    })
                    .collect();
                tokio::task::yield_now().await; // every waiter queues
                for _ in 0..WAITERS {
                    sem.add_permits(1);
                }
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

fn queue_ping_pong(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_ping_pong_10k");
    group.throughput(Throughput::Elements(PINGS));
    let l = EventLoop::new().unwrap();
    group.bench_function("ringloop_queue", |b| {
        b.iter(|| {
            l.run_until_complete(async {
                let (ping, pong) = (Queue::new(1), Queue::new(1));
                let echo = {
                    let (ping, pong) = (ping.clone(), pong.clone());
                    ringloop::spawn(async move {
                        while let Ok(n) = ping.get().await {
                            pong.put(n).await.unwrap();
                        }
                    })
                };
                for i in 0..PINGS {
                    ping.put(i).await.unwrap();
                    assert_eq!(pong.get().await, Ok(i));
                }
                ping.shutdown(false);
                echo.await.unwrap();
            })
            .unwrap()
        })
    });
    l.close().unwrap();
    let rt = tokio_rt();
    group.bench_function("tokio_mpsc", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<u64>(1);
                let echo = tokio::spawn(async move {
                    while let Some(n) = ping_rx.recv().await {
                        pong_tx.send(n).await.unwrap();
                    }
                });
                for i in 0..PINGS {
                    ping_tx.send(i).await.unwrap();
                    assert_eq!(pong_rx.recv().await, Some(i));
                }
                drop(ping_tx);
                echo.await.unwrap();
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = sync;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = lock_uncontended, lock_handoff, event_waiters, semaphore_waiters, queue_ping_pong
}
criterion_main!(sync);
