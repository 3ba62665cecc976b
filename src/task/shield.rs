//! asyncio's `shield(aw)`: work that goes on when whoever awaits it is cancelled.
//!
//! In asyncio, cancelling a task cancels what it awaits; `shield` puts a task in between
//! that the outer cancellation does not reach. In ringloop a cancelled task's future is
//! dropped, and dropping a [`JoinHandle`] detaches its task without cancelling it — so a
//! shield is the task itself: [`shield`] spawns `fut` and hands back its handle. Await the
//! handle; if the awaiting task is cancelled (or a [`timeout`](crate::timeout) around the
//! await expires), the shielded task keeps running to its end. Its own
//! [`JoinHandle::cancel`] still cancels it, as `shield`'s inner task can be cancelled
//! directly in asyncio.

use std::future::Future as StdFuture;

use super::{JoinHandle, spawn};

/// Runs `fut` as a task that the cancellation of its awaiter does not reach.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use ringloop::{shield, sleep, timeout};
///
/// ringloop::run(async {
///     let saved = Rc::new(Cell::new(false));
///     let s = saved.clone();
///     let work = shield(async move {
///         sleep(Duration::from_millis(20)).await;
///         s.set(true);
///     });
///     // The awaiter gives up; the shielded work does not.
///     assert!(timeout(Duration::from_millis(1), work).await.is_err());
///     sleep(Duration::from_millis(40)).await;
///     assert!(saved.get());
/// })
/// .unwrap();
/// ```
///
/// # Panics
///
/// As [`spawn`]: when the thread has no event loop and none can be created.
pub fn shield<F>(fut: F) -> JoinHandle<F::Output>
where
    F: StdFuture + 'static,
{
    spawn(fut)
}
