//! Waits on the loop for SIGINT or SIGTERM, then says which one came and exits 0.
//!
//! ```text
//! $ cargo run --example signals &
//! waiting for SIGINT or SIGTERM (pid 4242)
//! $ kill -TERM 4242
//! got SIGTERM, exiting
//! ```
//!
//! The handlers are added before any other thread exists, so every thread the program
//! might spawn later inherits the blocked mask and the signals reach the loop.

use std::cell::Cell;
use std::rc::Rc;

use ringloop::EventLoop;
use ringloop::signal::signal_name;

fn main() -> Result<(), ringloop::Error> {
    let event_loop = EventLoop::new()?;
    let got = Rc::new(Cell::new(None));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (got, l) = (got.clone(), event_loop.clone());
        event_loop.add_signal_handler(sig, move || {
            got.set(Some(sig));
            l.stop();
        })?;
    }
    println!("waiting for SIGINT or SIGTERM (pid {})", std::process::id());
    event_loop.run_forever()?;
    if let Some(sig) = got.get() {
        println!("got {}, exiting", signal_name(sig));
    }
    event_loop.close()
}
