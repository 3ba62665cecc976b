//! The loop's exception handler: where errors nobody can return go (panicking callbacks
//! and I/O handlers, unobserved task panics, unretrieved future errors, transports' fatal
//! errors, failures of services' background work).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use super::{EventLoop, LoopInner};
use crate::error::Error;

/// What went wrong, handed to the loop's exception handler.
#[derive(Debug, Clone)]
pub struct ExceptionContext {
    /// What the loop was doing.
    pub message: String,
    /// The error, when there is one.
    pub error: Option<Error>,
}

pub(super) type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

impl EventLoop {
    /// Sets the handler for errors the loop catches (panicking callbacks, errors nobody
    /// retrieved); `None` restores the default, which prints to stderr.
    pub fn set_exception_handler(
        &self,
        handler: Option<impl Fn(&EventLoop, &ExceptionContext) + 'static>,
    ) {
        *self.inner.exception_handler.borrow_mut() =
            handler.map(|h| Rc::new(h) as ExceptionHandler);
    }

    /// Reports an error through the exception handler.
    pub fn call_exception_handler(&self, context: ExceptionContext) {
        self.inner.report(context);
    }
}

impl LoopInner {
    /// Calls the exception handler (under `catch_unwind`; a panicking handler falls back
    /// to the default), or prints `ringloop: <message>: <error>` to stderr.
    pub(crate) fn report(self: &Rc<Self>, context: ExceptionContext) {
        let handler = self.exception_handler.borrow().clone();
        match handler {
            Some(h) => {
                let event_loop = EventLoop {
                    inner: self.clone(),
                };
                if catch_unwind(AssertUnwindSafe(|| h(&event_loop, &context))).is_err() {
                    eprintln!("ringloop: the exception handler panicked");
                    default_report(&context);
                }
            }
            None => default_report(&context),
        }
    }
}

fn default_report(context: &ExceptionContext) {
    match &context.error {
        Some(e) => eprintln!("ringloop: {}: {e}", context.message),
        None => eprintln!("ringloop: {}", context.message),
    }
}
