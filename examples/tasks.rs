//! Ten tasks each sleep one second without blocking the loop: all done in about one
//! second, not ten.

use std::time::{Duration, Instant};

use ringloop::{gather, sleep};

fn main() -> Result<(), ringloop::Error> {
    ringloop::run(async {
        let started = Instant::now();
        let tasks = (0..10).map(|i| async move {
            sleep(Duration::from_secs(1)).await;
            println!("task {i} woke after {:.2?}", started.elapsed());
            i
        });
        let done = gather(tasks).await?;
        let elapsed = started.elapsed();
        println!("{} tasks done in {elapsed:.2?}", done.len());
        assert!(
            elapsed < Duration::from_secs(2),
            "tasks ran one after another"
        );
        Ok(())
    })?
}
