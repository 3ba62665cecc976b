//! The queues' errors: [`QueueShutDown`] (asyncio's `QueueShutDown`), [`TryPutError`]
//! and [`TryGetError`] (asyncio's `QueueFull` / `QueueEmpty`, or shut down), and
//! [`TaskDoneTooMany`].
//!
//! An error of a put carries the item back. Converting one into [`crate::Error`] with `?`
//! drops the item (a queue's items need not be `Send`, an `Error` is): the `Error`
//! holds the same error with `()` in its place.

use std::fmt;

/// asyncio's `QueueShutDown`: the queue was shut down. From [`put`](super::GenericQueue::put)
/// it carries the item back (`QueueShutDown<T>`); from [`get`](super::GenericQueue::get)
/// it carries nothing (`QueueShutDown<()>`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct QueueShutDown<T = ()>(pub T);

impl<T> QueueShutDown<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for QueueShutDown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueShutDown(..)")
    }
}

impl<T> fmt::Display for QueueShutDown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is shut down")
    }
}

impl<T> std::error::Error for QueueShutDown<T> {}

impl<T> From<QueueShutDown<T>> for crate::Error {
    fn from(_: QueueShutDown<T>) -> Self {
        crate::Error::other(QueueShutDown(()))
    }
}

/// Why [`put_nowait`](super::GenericQueue::put_nowait) did not put the item, which it
/// gives back: the queue is full (asyncio's `QueueFull`) or shut down (`QueueShutDown`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TryPutError<T> {
    /// The queue holds `maxsize` items (asyncio's `QueueFull`).
    Full(T),
    /// The queue was shut down (asyncio's `QueueShutDown`).
    ShutDown(T),
}

impl<T> TryPutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(t) | TryPutError::ShutDown(t) => t,
        }
    }

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TryPutError::Full(_))
    }

    /// Whether the queue was shut down.
    pub fn is_shut_down(&self) -> bool {
        matches!(self, TryPutError::ShutDown(_))
    }

    fn without_item(&self) -> TryPutError<()> {
        match self {
            TryPutError::Full(_) => TryPutError::Full(()),
            TryPutError::ShutDown(_) => TryPutError::ShutDown(()),
        }
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("Full(..)"),
            TryPutError::ShutDown(_) => f.write_str("ShutDown(..)"),
        }
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("the queue is full"),
            TryPutError::ShutDown(_) => f.write_str("the queue is shut down"),
        }
    }
}

impl<T> std::error::Error for TryPutError<T> {}

impl<T> From<TryPutError<T>> for crate::Error {
    fn from(e: TryPutError<T>) -> Self {
        crate::Error::other(e.without_item())
    }
}

/// Why [`get_nowait`](super::GenericQueue::get_nowait) returned no item: the queue is
/// empty (asyncio's `QueueEmpty`), or empty and shut down (`QueueShutDown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryGetError {
    /// No item is queued (asyncio's `QueueEmpty`).
    Empty,
    /// No item is queued and the queue was shut down: none will come.
    ShutDown,
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryGetError::Empty => f.write_str("the queue is empty"),
            TryGetError::ShutDown => f.write_str("the queue is empty and shut down"),
        }
    }
}

impl std::error::Error for TryGetError {}

impl From<TryGetError> for crate::Error {
    fn from(e: TryGetError) -> Self {
        crate::Error::other(e)
    }
}

/// asyncio's `ValueError('task_done() called too many times')`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDoneTooMany;

impl fmt::Display for TaskDoneTooMany {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TaskDoneTooMany {}

impl From<TaskDoneTooMany> for crate::Error {
    fn from(e: TaskDoneTooMany) -> Self {
        crate::Error::other(e)
    }
}
