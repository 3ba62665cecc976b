//! asyncio's `TaskGroup`: tasks that succeed together or are cancelled together.
//!
//! [`TaskGroup::create_task`] spawns a member; [`TaskGroup::join`] (asyncio's leaving the
//! `async with` block) waits until every member has finished — the cancelled ones too,
//! with their futures dropped — and returns [`TaskGroupError`] (asyncio's
//! `ExceptionGroup`) carrying every failure, each with the failed task's name.
//!
//! # What counts as a failure
//!
//! - A member that **panics**, whatever its output type.
//! - A member created with [`TaskGroup::create_try_task`] whose `Result` is an **`Err`**;
//!   the error is converted into [`Error`] (which is `Clone`): the group keeps one copy
//!   for `join`, the member's [`JoinHandle`] gives the other. A member created with
//!   [`TaskGroup::create_task`] that returns a `Result` is never judged by it: its `Err`
//!   is an ordinary output.
//! - A member cancelled by hand ([`JoinHandle::cancel`]) is not a failure (as in asyncio).
//!
//! The first failure cancels every other member (at its next scheduling point, as
//! [`JoinHandle::cancel`]); members created after it are cancelled before they run
//! (asyncio raises "TaskGroup is shutting down" there). Later failures, of members that
//! fail before their cancellation reaches them, are collected too.
//!
//! # Ownership and cancellation
//!
//! The group is owned by the code that creates it (asyncio's `async with` body). When the
//! owner stops before `join` — returns early with `?`, or is cancelled, which drops the
//! `join` future — the group is dropped and drops every member's future at once (a
//! member running at that moment, when a member drops the group, at its next step): a
//! `Drop` cannot wait, so this is the closest to asyncio's `__aexit__`, which cancels and
//! then waits. Failures recorded by a group dropped unjoined go to the loop's exception
//! handler. Unlike asyncio, a member's failure does not cancel the owner's own code
//! between `create_task` and `join`: it runs on until it awaits `join` (or checks
//! [`TaskGroup::is_aborting`]).
//!
//! Members may add members through a [`TaskSpawner`] ([`TaskGroup::spawner`]); `join`
//! waits for those as well.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future as StdFuture, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::info::{Task, current_task, current_task_name};
use super::{JoinHandle, spawn};
use crate::error::{Error, panic_message};
use crate::event_loop::{ExceptionContext, get_event_loop_if_set, with_running};

/// One failed member of a [`TaskGroup`].
#[derive(Debug, Clone)]
pub struct TaskFailure {
    /// The task's name ([`JoinHandle::get_name`]) when it failed.
    pub task_name: String,
    /// What it failed with: [`Error::Panic`] for a panic, else the member's `Err`.
    pub error: Error,
}

/// Every failure of a [`TaskGroup`], in the order they happened (asyncio's
/// `ExceptionGroup`). Converts into [`Error`] with `?` (as [`Error::Other`]).
#[derive(Debug, Clone)]
pub struct TaskGroupError {
    failures: Vec<TaskFailure>,
}

impl TaskGroupError {
    /// The failures, first first.
    pub fn failures(&self) -> &[TaskFailure] {
        &self.failures
    }

    /// The failures, owned.
    pub fn into_failures(self) -> Vec<TaskFailure> {
        self.failures
    }
}

impl fmt::Display for TaskGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.failures.len();
        write!(
            f,
            "{n} task{} of a task group failed",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}{}: {}", failure.task_name, failure.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskGroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failures
            .first()
            .map(|f| &f.error as &(dyn std::error::Error + 'static))
    }
}

impl From<TaskGroupError> for Error {
    fn from(e: TaskGroupError) -> Self {
        Error::Other(Arc::new(e))
    }
}

struct GroupInner {
    /// Members, finished ones pruned now and then.
    members: RefCell<Vec<Task>>,
    /// Members whose future has not been dropped yet.
    live: Cell<usize>,
    failures: RefCell<Vec<TaskFailure>>,
    aborting: Cell<bool>,
    /// Joined or dropped: new members are cancelled before they run.
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl GroupInner {
    fn add<F>(self: &Rc<Self>, fut: F) -> JoinHandle<F::Output>
    where
        F: StdFuture + 'static,
    {
        self.live.set(self.live.get() + 1);
        let handle = spawn(Member {
            future: fut,
            group: Rc::downgrade(self),
        });
        let task = handle.task();
        if self.closed.get() || self.aborting.get() {
            task.run_ref().drop_now();
            return handle;
        }
        let mut members = self.members.borrow_mut();
        if members.len() >= 2 * self.live.get() + 16 {
            members.retain(|t| !t.done());
        }
        members.push(task);
        handle
    }

    /// Records the running member's failure; the first one cancels the other members.
    fn fail(&self, error: Error) {
        let me = current_task();
        if let Some(t) = &me {
            t.run_ref().info().set_quiet();
        }
        self.failures.borrow_mut().push(TaskFailure {
            task_name: current_task_name().unwrap_or_else(|| "<no task>".into()),
            error,
        });
        if self.aborting.replace(true) {
            return;
        }
        let members: Vec<Task> = self.members.borrow().clone();
        for t in members {
            if me.as_ref() != Some(&t) {
                t.cancel();
            }
        }
    }

    fn member_gone(&self) {
        let live = self.live.get().saturating_sub(1);
        self.live.set(live);
        if live == 0
            && let Some(w) = self.waker.borrow_mut().take()
        {
            w.wake();
        }
    }
}

/// A member's future: records a panic in the group, and tells the group when it is
/// dropped (finished or cancelled).
struct Member<F> {
    future: F,
    group: Weak<GroupInner>,
}

impl<F: StdFuture> StdFuture for Member<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned: never moved out of `self`; `Drop` only
        // touches `group`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(p) => p,
            Err(payload) => {
                if let Some(g) = this.group.upgrade() {
                    g.fail(Error::Panic(panic_message(payload.as_ref())));
                }
                resume_unwind(payload)
            }
        }
    }
}

impl<F> Drop for Member<F> {
    fn drop(&mut self) {
        if let Some(g) = self.group.upgrade() {
            g.member_gone();
        }
    }
}

/// A member's body that reports its `Err` to the group (and still returns it).
async fn judged<F, T, E>(group: Weak<GroupInner>, fut: F) -> Result<T, Error>
where
    F: StdFuture<Output = Result<T, E>>,
    E: Into<Error>,
{
    match fut.await {
        Ok(v) => Ok(v),
        Err(e) => {
            let e: Error = e.into();
            if let Some(g) = group.upgrade() {
                g.fail(e.clone());
            }
            Err(e)
        }
    }
}

/// Tasks that succeed together or are cancelled together; see the [module docs](self).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ringloop::{TaskGroup, sleep};
///
/// ringloop::run(async {
///     let mut group = TaskGroup::new();
///     let a = group.create_task(async { sleep(Duration::from_millis(5)).await; 1 });
///     let b = group.create_task(async { 2 });
///     group.join().await.unwrap();
///     // The handles still give their results after the join.
///     assert_eq!(a.await.unwrap() + b.await.unwrap(), 3);
///
///     let mut group = TaskGroup::new();
///     let slow = group.create_task(sleep(Duration::from_secs(10)));
///     group.create_try_task(async { Err::<(), _>(std::io::Error::other("disk on fire")) });
///     let err = group.join().await.unwrap_err();
///     assert_eq!(err.failures().len(), 1);
///     assert!(slow.await.unwrap_err().is_cancelled());
/// })
/// .unwrap();
/// ```
pub struct TaskGroup {
    inner: Rc<GroupInner>,
    joined: bool,
}

impl TaskGroup {
    /// An empty group; its members run on the running loop (else the thread's current one).
    pub fn new() -> TaskGroup {
        TaskGroup {
            inner: Rc::new(GroupInner {
                members: RefCell::new(Vec::new()),
                live: Cell::new(0),
                failures: RefCell::new(Vec::new()),
                aborting: Cell::new(false),
                closed: Cell::new(false),
                waker: RefCell::new(None),
            }),
            joined: false,
        }
    }

    /// Spawns `fut` as a member; only a panic counts as its failure. After a failure the
    /// new member is cancelled before it runs.
    ///
    /// # Panics
    ///
    /// As [`spawn`]: when the thread has no event loop and none can be created.
    pub fn create_task<F>(&mut self, fut: F) -> JoinHandle<F::Output>
    where
        F: StdFuture + 'static,
    {
        self.inner.add(fut)
    }

    /// Spawns `fut` as a member whose `Err` is a failure (as is a panic): the error,
    /// converted into [`Error`], goes both to the handle and to `join`'s [`TaskGroupError`].
    pub fn create_try_task<F, T, E>(&mut self, fut: F) -> JoinHandle<Result<T, Error>>
    where
        F: StdFuture<Output = Result<T, E>> + 'static,
        T: 'static,
        E: Into<Error> + 'static,
    {
        let judged = judged(Rc::downgrade(&self.inner), fut);
        self.inner.add(judged)
    }

    /// A handle members can use to add members (asyncio's children calling
    /// `tg.create_task`); it does not keep the group alive.
    pub fn spawner(&self) -> TaskSpawner {
        TaskSpawner {
            group: Rc::downgrade(&self.inner),
        }
    }

    /// Members whose futures have not been dropped yet.
    pub fn pending(&self) -> usize {
        self.inner.live.get()
    }

    /// Whether a member failed (and the others are being cancelled).
    pub fn is_aborting(&self) -> bool {
        self.inner.aborting.get()
    }

    /// Waits until every member has finished and its future been dropped (members added
    /// meanwhile included); then `Ok(())`, or every failure.
    pub async fn join(mut self) -> Result<(), TaskGroupError> {
        let inner = self.inner.clone();
        poll_fn(|cx| {
            if inner.live.get() == 0 {
                return Poll::Ready(());
            }
            *inner.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        self.joined = true;
        inner.closed.set(true);
        let failures = std::mem::take(&mut *inner.failures.borrow_mut());
        if failures.is_empty() {
            Ok(())
        } else {
            Err(TaskGroupError { failures })
        }
    }
}

impl Default for TaskGroup {
    fn default() -> Self {
        TaskGroup::new()
    }
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("pending", &self.pending())
            .field("aborting", &self.is_aborting())
            .finish()
    }
}

impl Drop for TaskGroup {
    fn drop(&mut self) {
        self.inner.closed.set(true);
        let members = std::mem::take(&mut *self.inner.members.borrow_mut());
        for t in &members {
            t.run_ref().drop_now();
        }
        drop(members);
        let failures = std::mem::take(&mut *self.inner.failures.borrow_mut());
        if self.joined || failures.is_empty() {
            return;
        }
        let context = ExceptionContext {
            message: "a task group was dropped before join with failed tasks".into(),
            error: Some(TaskGroupError { failures }.into()),
        };
        let reported = with_running(|l| match l {
            Some(l) => {
                l.report(context.clone());
                true
            }
            None => false,
        });
        if !reported && let Some(l) = get_event_loop_if_set() {
            l.call_exception_handler(context);
        }
    }
}

/// Adds members to a [`TaskGroup`] from inside its members; see [`TaskGroup::spawner`].
#[derive(Clone)]
pub struct TaskSpawner {
    group: Weak<GroupInner>,
}

impl TaskSpawner {
    /// [`TaskGroup::create_task`]; once the group is joined or dropped, the task is
    /// cancelled before it runs.
    pub fn create_task<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: StdFuture + 'static,
    {
        match self.group.upgrade() {
            Some(g) => g.add(fut),
            None => {
                let handle = spawn(fut);
                handle.task().run_ref().drop_now();
                handle
            }
        }
    }

    /// [`TaskGroup::create_try_task`], with the same rule as [`TaskSpawner::create_task`].
    pub fn create_try_task<F, T, E>(&self, fut: F) -> JoinHandle<Result<T, Error>>
    where
        F: StdFuture<Output = Result<T, E>> + 'static,
        T: 'static,
        E: Into<Error> + 'static,
    {
        self.create_task(judged(self.group.clone(), fut))
    }
}

impl fmt::Debug for TaskSpawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSpawner")
            .field("group_alive", &(self.group.strong_count() > 0))
            .finish()
    }
}
