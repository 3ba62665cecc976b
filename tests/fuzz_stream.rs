//! A seeded fuzz of the stream transport's write and flow-control path (issue 6): random
//! sequences of `write` / `writelines` (random sizes and split points of one patterned
//! stream), random `set_write_buffer_limits`, random pauses of the peer's reading and
//! random yields, through a real loopback connection. Checked: the peer receives exactly
//! the bytes written, in order; `get_write_buffer_size` grows by exactly what each write
//! adds and never claims less than the peer already has; `pause_writing` and
//! `resume_writing` alternate, each at the right side of its water mark.
//!
//! `RINGLOOP_FUZZ_SEEDS` (default 100) sets how many seeds run; `RINGLOOP_FUZZ_SEED`
//! replays one. A failing seed is printed.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringloop::{Protocol, StreamTransport, get_running_loop};
use util::*;

/// xorshift64*: small, seeded, good enough to pick sizes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A size skewed to small values, up to `max`.
    fn size(&mut self, max: u64) -> usize {
        let bits = self.below(64 - max.leading_zeros() as u64 + 1);
        (self.below((1u64 << bits).min(max) + 1)) as usize
    }
}

/// The writer's protocol: checks that pause and resume alternate and happen at the right
/// side of the water marks; violations are collected (a panic in a callback would be the
/// loop's business, not this test's).
struct Writer {
    transport: Option<StreamTransport>,
    paused: Rc<Cell<bool>>,
    flips: Rc<Cell<u32>>,
    violations: Rc<RefCell<Vec<String>>>,
    lost: Rc<Cell<bool>>,
}

impl Writer {
    fn check(&mut self, pausing: bool) {
        let t = self.transport.as_ref().expect("connection_made first");
        let size = t.get_write_buffer_size();
        let (low, high) = t.get_write_buffer_limits();
        let mut v = self.violations.borrow_mut();
        if self.paused.get() == pausing {
            v.push(format!(
                "{} twice in a row",
                if pausing { "pause" } else { "resume" }
            ));
        }
        if pausing && size <= high {
            v.push(format!("pause_writing at size {size} <= high {high}"));
        }
        if !pausing && size > low {
            v.push(format!("resume_writing at size {size} > low {low}"));
        }
        self.paused.set(pausing);
        self.flips.set(self.flips.get() + 1);
    }
}

impl Protocol for Writer {
    fn connection_made(&mut self, t: &StreamTransport) {
        self.transport = Some(t.clone());
    }
    fn pause_writing(&mut self) {
        self.check(true);
    }
    fn resume_writing(&mut self) {
        self.check(false);
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        if let Some(e) = exc {
            self.violations.borrow_mut().push(format!("lost with {e}"));
        }
        self.transport = None;
        self.lost.set(true);
    }
}

/// Prints the seed if the test panics while it is alive.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "fuzz_stream: FAILED at seed {} (replay: RINGLOOP_FUZZ_SEED={})",
                self.0, self.0
            );
        }
    }
}

/// What one seed did, for the summary.
#[derive(Default)]
struct Outcome {
    bytes: u64,
    ops: u32,
    flips: u32,
}

fn one_seed(seed: u64) -> Outcome {
    let _guard = SeedGuard(seed);
    run(async move {
        let mut rng = Rng::new(seed);
        let l = get_running_loop().unwrap();
        let exceptions = count_exceptions();
        let received = Rc::new(RefCell::new(Verifier::new(seed)));
        let r2 = received.clone();
        let (server, list) = recorder_server(move |r| {
            let r3 = r2.clone();
            r.on_data = Some(Box::new(move |_, data| r3.borrow_mut().feed(data)));
        })
        .await;
        let lost = Rc::new(Cell::new(false));
        let (paused, flips, violations) = (
            Rc::new(Cell::new(false)),
            Rc::new(Cell::new(0)),
            Rc::new(RefCell::new(Vec::new())),
        );
        let writer = Writer {
            transport: None,
            paused: paused.clone(),
            flips: flips.clone(),
            violations: violations.clone(),
            lost: lost.clone(),
        };
        let (t, _p) = l
            .create_connection(move || writer, &server.sockets()[0].to_string())
            .await
            .unwrap();
        let peer = accepted(&list, 0).await.transport();

        let mut written = 0u64;
        let ops = 20 + rng.below(150) as u32;
        let mut chunk = Vec::new();
        for op in 0..ops {
            let before = t.get_write_buffer_size();
            match rng.below(10) {
                0..=3 => {
                    let n = rng.size(256 * 1024);
                    chunk.resize(n, 0);
                    fill_pattern(seed, written, &mut chunk);
                    t.write(&chunk).unwrap();
                    written += n as u64;
                    assert_eq!(t.get_write_buffer_size(), before + n, "op {op}: write {n}");
                }
                4..=5 => {
                    // One stretch of the stream, cut at random points.
                    let n = rng.size(256 * 1024);
                    chunk.resize(n, 0);
                    fill_pattern(seed, written, &mut chunk);
                    let mut cuts: Vec<usize> = (0..rng.below(6))
                        .map(|_| rng.below(n as u64 + 1) as usize)
                        .collect();
                    cuts.push(0);
                    cuts.push(n);
                    cuts.sort_unstable();
                    t.writelines(cuts.windows(2).map(|w| &chunk[w[0]..w[1]]))
                        .unwrap();
                    written += n as u64;
                    assert_eq!(
                        t.get_write_buffer_size(),
                        before + n,
                        "op {op}: writelines {n}"
                    );
                }
                6 => {
                    let high = rng.size(512 * 1024);
                    let low = if rng.below(3) == 0 {
                        None
                    } else {
                        Some(rng.below(high as u64 + 1) as usize)
                    };
                    t.set_write_buffer_limits(Some(high), low).unwrap();
                    assert_eq!(t.get_write_buffer_size(), before, "op {op}: limits");
                }
                7 => {
                    if peer.is_reading() {
                        peer.pause_reading();
                    } else {
                        peer.resume_reading();
                    }
                }
                _ => {
                    let ms = rng.below(3);
                    ringloop::sleep(Duration::from_millis(ms)).await;
                }
            }
            let size = t.get_write_buffer_size() as u64;
            let got = received.borrow().received;
            assert!(
                got + size <= written,
                "op {op}: peer has {got}, buffer claims {size}, only {written} written"
            );
        }
        // Drain: the peer reads again, the writer half-closes, the peer sees it all.
        peer.resume_reading();
        t.write_eof().unwrap();
        wait_until(Duration::from_secs(20), "the peer got everything", || {
            received.borrow().received >= written && t.get_write_buffer_size() == 0
        })
        .await;
        assert!(!paused.get(), "still paused with an empty buffer");
        t.close();
        // A clean end: the writer's connection_lost(None) comes before the loop closes.
        wait_until(
            Duration::from_secs(10),
            "the writer's connection_lost",
            || lost.get(),
        )
        .await;
        server.close();
        server.wait_closed().await;
        received.borrow().assert_complete(written, "peer");
        assert!(violations.borrow().is_empty(), "{:?}", violations.borrow());
        assert!(exceptions.borrow().is_empty(), "{:?}", exceptions.borrow());
        Outcome {
            bytes: written,
            ops,
            flips: flips.get(),
        }
    })
}

#[test]
fn fuzz_write_path_random_splits_limits_and_peer_pauses() {
    let fds = open_fds();
    let seeds: Vec<u64> = match std::env::var("RINGLOOP_FUZZ_SEED") {
        Ok(s) => vec![s.parse().expect("RINGLOOP_FUZZ_SEED: a number")],
        Err(_) => {
            let n = std::env::var("RINGLOOP_FUZZ_SEEDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(100u64);
            (1..=n).collect()
        }
    };
    let started = Instant::now();
    let mut total = Outcome::default();
    for &seed in &seeds {
        let o = one_seed(seed);
        total.bytes += o.bytes;
        total.ops += o.ops;
        total.flips += o.flips;
    }
    assert_fds_back_to(fds, Duration::from_secs(2), "fds leaked");
    eprintln!(
        "fuzz_stream: {} seeds, {} ops, {:.1} MiB checked, {} pause/resume flips, in {:.2?}",
        seeds.len(),
        total.ops,
        total.bytes as f64 / (1 << 20) as f64,
        total.flips,
        started.elapsed()
    );
    assert!(total.flips > 0, "flow control never engaged");
}
