//! One lock per test binary for tests that look at the whole process (fd counts, RSS,
//! rlimits, signal masks and handlers, zombies): they take turns.

use std::sync::{Mutex, MutexGuard};

/// Takes this binary's lock for the rest of the test; a test that panicked while holding
/// it does not poison it for the next.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}
