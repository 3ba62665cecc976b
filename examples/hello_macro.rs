//! `#[ringloop::main]`: `async fn main` on a ringloop loop (feature `macros`).
//!
//! ```text
//! cargo run --features macros --example hello_macro          # prints, exits 0
//! cargo run --features macros --example hello_macro -- fail  # main's error: exit 1
//! ```

use std::time::Duration;

#[ringloop::main]
async fn main() -> Result<(), ringloop::Error> {
    if std::env::args().nth(1).as_deref() == Some("fail") {
        // An error from main ends the program with exit code 1, as a plain main's does.
        return Err(ringloop::Error::Io(std::sync::Arc::new(
            std::io::Error::other("asked to fail"),
        )));
    }
    ringloop::sleep(Duration::from_millis(10)).await;
    println!("slept 10 ms on the loop");
    Ok(())
}
