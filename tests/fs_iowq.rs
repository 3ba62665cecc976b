//! The io-wq cap (`LoopBuilder::iowq_max_workers`, PITFALLS #19): 256 concurrent
//! buffered reads of uncached pages, plus 256 concurrent `fsync`s and `statx`es (work
//! the kernel always hands to io-wq), must not raise this thread's `iou-wrk` threads
//! above the cap. A control run with a larger cap shows the same load does spawn more
//! workers than that, so the bound is what the cap made, not an idle kernel.
//! Only meaningful on io_uring; on the epoll engine the test checks the loop still
//! builds and reads with the option set (it has no io-wq).

mod util;

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use ringloop::fs::{self, File};
use ringloop::{EventLoop, LoopBuilder};
use util::{TempDir, pattern, pattern_byte, run_on};

const OPS: u64 = 256;
const CHUNK: u64 = 64 * 1024;

/// This thread's io-wq workers: the kernel names them `iou-wrk-<tid of the submitter>`.
fn my_workers() -> usize {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let name = format!("iou-wrk-{tid}");
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|comm| comm.trim_end() == name)
                .count()
        })
        .unwrap_or(0)
}

/// Runs the load on a loop built with `(bounded, unbounded)` and returns the most
/// workers seen while it ran.
fn peak_workers(bounded: u32, unbounded: u32) -> usize {
    let dir = TempDir::new("fs-iowq");
    let path = dir.join("data");
    let builder = LoopBuilder::default().iowq_max_workers(bounded, unbounded);
    run_on(builder, Duration::from_secs(30), async move {
        fs::write(&path, pattern(3, (OPS * CHUNK) as usize))
            .await
            .unwrap();
        let file = Rc::new(File::open(&path).await.unwrap());
        file.sync_all().await.unwrap();
        // Drop the file's pages from the page cache, so the reads reach the disk.
        // SAFETY: fadvise only advises the kernel about this open fd.
        let rc = unsafe { libc::posix_fadvise(raw(&file), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(rc, 0);

        let peak = Rc::new(std::cell::Cell::new(0usize));
        let done = Rc::new(std::cell::Cell::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            ringloop::spawn(async move {
                while !done.get() {
                    peak.set(peak.get().max(my_workers()));
                    ringloop::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let mut tasks = Vec::new();
        for i in 0..OPS {
            let f = file.clone();
            tasks.push(ringloop::spawn(async move {
                let (r, buf) = f
                    .read_at(Vec::with_capacity(CHUNK as usize), i * CHUNK)
                    .await;
                assert_eq!(r.unwrap(), CHUNK as usize);
                let at = i * CHUNK;
                assert!(
                    buf.iter()
                        .enumerate()
                        .all(|(k, b)| *b == pattern_byte(3, at + k as u64))
                );
            }));
            let f = file.clone();
            tasks.push(ringloop::spawn(async move { f.sync_data().await.unwrap() }));
            let p = path.clone();
            tasks.push(ringloop::spawn(async move {
                assert_eq!(fs::metadata(&p).await.unwrap().len(), OPS * CHUNK);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        peak.set(peak.get().max(my_workers()));
        done.set(true);
        sampler.await.unwrap();
        if let Ok(f) = Rc::try_unwrap(file) {
            f.close().await.unwrap();
        }
        peak.get()
    })
}

fn raw(f: &File) -> i32 {
    f.as_raw_fd()
}

fn on_uring() -> bool {
    let lp = EventLoop::builder().build().unwrap();
    let uring = lp.engine() == ringloop::Engine::Uring;
    lp.close().unwrap();
    uring
}

#[test]
fn workers_stay_under_the_cap() {
    let capped = peak_workers(2, 2);
    eprintln!("iou-wrk peak with a cap of 2+2: {capped}");
    if !on_uring() {
        assert_eq!(capped, 0, "the epoll engine has no io-wq");
        return;
    }
    assert!(
        capped <= 4,
        "{capped} io-wq workers with a cap of 2 bounded + 2 unbounded"
    );
}

#[test]
fn the_load_spawns_more_workers_without_a_tight_cap() {
    if !on_uring() {
        return;
    }
    let loose = peak_workers(32, 32);
    eprintln!("iou-wrk peak with a cap of 32+32: {loose}");
    assert!(
        loose > 4,
        "the load should need more than 4 workers when allowed (saw {loose}); \
         otherwise the capped test proves nothing"
    );
}
