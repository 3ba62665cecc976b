//! A task completes a future after 2 seconds; main awaits it.

use std::time::{Duration, Instant};

use ringloop::{Future, sleep, spawn};

fn main() -> Result<(), ringloop::Error> {
    ringloop::run(async {
        let started = Instant::now();
        let fut: Future<String> = Future::new();
        let setter = fut.clone();
        spawn(async move {
            sleep(Duration::from_secs(2)).await;
            setter
                .set_result("the future is done".to_string())
                .expect("set once");
        });
        let value = fut.await?;
        println!("{value} after {:.2?}", started.elapsed());
        Ok(())
    })?
}
