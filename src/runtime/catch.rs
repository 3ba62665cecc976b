//! [`CatchPanic`]: a future whose panic becomes [`Error::Panic`] instead of unwinding into
//! the task, so whoever waits on another thread always gets an outcome.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;

/// Polls the boxed future under `catch_unwind`; after a panic it is dropped and never
/// polled again.
pub(crate) struct CatchPanic<F> {
    future: Option<Pin<Box<F>>>,
}

impl<F: Future> CatchPanic<F> {
    pub(crate) fn new(future: F) -> Self {
        CatchPanic {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F> CatchPanic<F> {
    /// Drops the future now (a cancellation); later polls report `InvalidState`.
    pub(crate) fn drop_future(&mut self) {
        self.future = None;
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(Err(Error::InvalidState("polled after completion")));
        };
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => {
                self.future = None;
                Poll::Ready(Ok(v))
            }
            Err(payload) => {
                self.future = None;
                Poll::Ready(Err(Error::from_panic(payload)))
            }
        }
    }
}

/// Calls `f`, turning a panic into [`Error::Panic`].
pub(crate) fn call<R>(f: impl FnOnce() -> R) -> Result<R, Error> {
    catch_unwind(AssertUnwindSafe(f)).map_err(Error::from_panic)
}
