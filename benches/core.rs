//! Core benchmarks: `call_soon` throughput, 100k timers scheduled and fired, 100k tasks
//! spawned and joined — with tokio's current-thread runtime as the peer, in the same run.
//!
//! `cargo bench --bench core`. Kept short (10 samples, ~2 s each) so the whole run takes
//! about a minute; compare the engines by ratio, not by absolute figures.

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringloop::EventLoop;

const CALLBACKS: u64 = 1_000_000;
const TIMERS: u64 = 100_000;
const TASKS: u64 = 100_000;

/// A counter the callbacks bump, shared without a reference count per callback.
fn leaked_counter() -> &'static Cell<u64> {
    Box::leak(Box::new(Cell::new(0)))
}

fn call_soon(c: &mut Criterion) {
    let mut group = c.benchmark_group("call_soon");
    group.throughput(Throughput::Elements(CALLBACKS));
    let l = EventLoop::new().unwrap();
    let counter = leaked_counter();
    group.bench_function("ringloop_1M_callbacks", |b| {
        b.iter(|| {
            for _ in 0..CALLBACKS {
                l.call_soon(move || counter.set(counter.get() + 1));
            }
            l.stop();
            l.run_forever().unwrap();
        })
    });
    black_box(counter.get());
    l.close().unwrap();
    group.finish();
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn timers(c: &mut Criterion) {
    let mut group = c.benchmark_group("timers_100k");
    group.throughput(Throughput::Elements(TIMERS));
    let delay = Duration::from_millis(1);

    let l = EventLoop::new().unwrap();
    group.bench_function("ringloop_call_later", |b| {
        let fired = Rc::new(Cell::new(0u64));
        b.iter(|| {
            fired.set(0);
            for _ in 0..TIMERS {
                let (fired, l2) = (fired.clone(), l.clone());
                l.call_later(delay, move || {
                    fired.set(fired.get() + 1);
                    if fired.get() == TIMERS {
                        l2.stop();
                    }
                });
            }
            l.run_forever().unwrap();
        })
    });
    group.bench_function("ringloop_sleep_in_tasks", |b| {
        b.iter(|| {
            l.run_until_complete(async move {
                let handles: Vec<_> = (0..TIMERS)
                    .map(|_| ringloop::spawn(ringloop::sleep(delay)))
                    .collect();
                for h in handles {
                    h.await.unwrap();
                }
            })
            .unwrap()
        })
    });
    l.close().unwrap();

    let rt = tokio_rt();
    group.bench_function("tokio_sleep_in_tasks", |b| {
        b.iter(|| {
            rt.block_on(async move {
                let handles: Vec<_> = (0..TIMERS)
                    .map(|_| tokio::spawn(tokio::time::sleep(delay)))
                    .collect();
                for h in handles {
                    h.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

fn spawn_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join_100k");
    group.throughput(Throughput::Elements(TASKS));

    let l = EventLoop::new().unwrap();
    group.bench_function("ringloop", |b| {
        b.iter(|| {
            let sum = l
                .run_until_complete(async {
                    let handles: Vec<_> = (0..TASKS)
                        .map(|i| ringloop::spawn(async move { black_box(i) }))
                        .collect();
                    let mut sum = 0;
                    for h in handles {
                        sum += h.await.unwrap();
                    }
                    sum
                })
                .unwrap();
            assert_eq!(sum, TASKS * (TASKS - 1) / 2);
        })
    });
    l.close().unwrap();

    let rt = tokio_rt();
    group.bench_function("tokio_current_thread", |b| {
        b.iter(|| {
            let sum = rt.block_on(async {
                let handles: Vec<_> = (0..TASKS)
                    .map(|i| tokio::spawn(async move { black_box(i) }))
                    .collect();
                let mut sum = 0;
                for h in handles {
                    sum += h.await.unwrap();
                }
                sum
            });
            assert_eq!(sum, TASKS * (TASKS - 1) / 2);
        })
    });
    group.finish();
}

criterion_group! {
    name = core;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = call_soon, timers, spawn_join
}
criterion_main!(core);
