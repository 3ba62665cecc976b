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

/// The driver-counter line for `stats` (one loop's, or several loops' summed).
pub fn report_stats(stats: &DriverStats) {
    eprintln!(
        "shutting down; driver: enters={} sqes={} cqes={} quiet={}",
        stats.enters, stats.sqes, stats.cqes, stats.quiet
    );
}
