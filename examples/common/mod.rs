//! What the echo examples share: the `--engine` flag, numeric flags, the `listening on`
//! line, waiting for SIGINT/SIGTERM on the loop, and the driver counters printed at exit
//! (`benches/compare.sh` reads that line). Not an example itself: each example includes it
//! with `mod common;`.

#![allow(dead_code)] // each example uses the part it needs

use std::io::Write;
use std::net::SocketAddr;

use ringloop::{DriverStats, Engine, EventLoop, Future, LoopBuilder};

/// A loop builder honouring `--engine uring|epoll|auto` (else `RINGLOOP_ENGINE`).
pub fn loop_builder(args: &[String]) -> Result<LoopBuilder, String> {
    let builder = EventLoop::builder();
    match args.iter().position(|a| a == "--engine") {
        Some(i) => {
            let engine: Engine = args
                .get(i + 1)
                .ok_or("--engine needs uring, epoll or auto")?
                .parse()
                .map_err(|e: ringloop::Error| e.to_string())?;
            Ok(builder.engine(engine))
        }
        None => Ok(builder),
    }
}

/// The value of `name N` in `args`, or `default` when the flag is absent.
pub fn parse_flag(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}")),
        None => Ok(default),
    }
}

/// Prints the server's first stdout line, `listening on <ip:port>`, and flushes it (the
/// tests and scripts wait for it).
pub fn announce(bound: Option<SocketAddr>) {
    println!(
        "listening on {}",
        bound.map(|a| a.to_string()).unwrap_or_default()
    );
    let _ = std::io::stdout().flush();
}

/// Waits on `l` until SIGINT or SIGTERM arrives (handlers run on the loop).
pub async fn until_stop_signal(l: &EventLoop) -> Result<(), String> {
    let stop: Future<()> = Future::new();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let stop = stop.clone();
        l.add_signal_handler(sig, move || {
            let _ = stop.set_result(());
        })
        .map_err(|e| e.to_string())?;
    }
    let _ = stop.await;
    Ok(())
}

/// One line for scripts (`benches/compare.sh`): the driver's counters for the run.
pub fn report_driver(l: &EventLoop) {
    report_stats(&l.driver_stats());
}

/// The end of a multi-loop server (`--threads N`): loop 0 waits for SIGINT/SIGTERM while
/// the others serve; then `close` runs on every loop (closing that loop's server), the
/// loops' driver counters are summed into one line, and the runtime shuts down.
pub fn serve_until_signal(rt: ringloop::Runtime, close: fn()) -> Result<(), String> {
    let run_err = |e: ringloop::RuntimeError| e.to_string();
    for waited in rt
        .run(|ctx| async move {
            match ctx.index() {
                0 => until_stop_signal(ctx.event_loop()).await,
                _ => Ok(()),
            }
        })
        .map_err(run_err)?
    {
        waited?;
    }
    let stats = rt
        .run(move |ctx| async move {
            close();
            ctx.event_loop().driver_stats()
        })
        .map_err(run_err)?;
    let sum = stats.iter().fold(DriverStats::default(), |mut a, s| {
        a.enters += s.enters;
        a.sqes += s.sqes;
        a.cqes += s.cqes;
        a.quiet += s.quiet;
        a
    });
    report_stats(&sum);
    rt.shutdown().map_err(|e| e.to_string())
}

/// The driver-counter line for `stats` (one loop's, or several loops' summed).
pub fn report_stats(stats: &DriverStats) {
    eprintln!(
        "shutting down; driver: enters={} sqes={} cqes={} quiet={}",
        stats.enters, stats.sqes, stats.cqes, stats.quiet
    );
}
