//! What a task is, seen from outside its type: its id and name, the task running now
//! ([`current_task`]) and every task on the loop ([`all_tasks`]).
//!
//! A [`JoinHandle`](super::JoinHandle) is typed by its task's output; a [`Task`] is the
//! untyped view asyncio's `current_task()` and `all_tasks()` hand out: it can name, cancel
//! and inspect a task, not take its result. Names cost nothing until asked for: a task
//! without one shows as `Task-<id>`, as asyncio's default names.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

use super::TaskRun;
use crate::event_loop::with_running;

/// A task's identity: a number unique on this thread, and an optional name.
pub(crate) struct TaskInfo {
    id: u64,
    name: RefCell<Option<Rc<str>>>,
    /// A task group reports this task's failure through `join`: the loop must not
    /// report it again as a panic nobody awaits.
    quiet: Cell<bool>,
}

thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    static CURRENT: RefCell<Option<Rc<dyn TaskRun>>> = const { RefCell::new(None) };
}

impl TaskInfo {
    pub(crate) fn new() -> Self {
        let id = NEXT_ID.with(|n| {
            let id = n.get() + 1;
            n.set(id);
            id
        });
        TaskInfo {
            id,
            name: RefCell::new(None),
            quiet: Cell::new(false),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn name(&self) -> String {
        match &*self.name.borrow() {
            Some(n) => n.to_string(),
            None => format!("Task-{}", self.id),
        }
    }

    pub(crate) fn set_name(&self, name: &str) {
        *self.name.borrow_mut() = Some(Rc::from(name));
    }

    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet.get()
    }

    pub(crate) fn set_quiet(&self) {
        self.quiet.set(true);
    }
}

/// Marks `task` as the running task until dropped (restoring the one before: a task's
/// step may run a nested step only through `run_until_complete`, which errors, but the
/// restore keeps it exact anyway).
pub(crate) struct CurrentGuard {
    previous: Option<Rc<dyn TaskRun>>,
}

pub(crate) fn enter(task: &Rc<dyn TaskRun>) -> CurrentGuard {
    let previous = CURRENT.with(|c| c.replace(Some(task.clone())));
    CurrentGuard { previous }
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // The task's Rc leaves the slot here, after the step (never inside a borrow).
        let step = CURRENT.with(|c| c.replace(previous));
        drop(step);
    }
}

/// An untyped handle on a task: its name, id, state and cancellation. Cheap to clone; it
/// keeps the task's record (not its future) alive.
#[derive(Clone)]
pub struct Task {
    inner: Rc<dyn TaskRun>,
}

impl Task {
    pub(crate) fn from_run(inner: Rc<dyn TaskRun>) -> Self {
        Task { inner }
    }

    /// A number unique among this thread's tasks (asyncio has `id(task)`).
    pub fn id(&self) -> u64 {
        self.inner.info().id()
    }

    /// The task's name: the one given with [`Task::set_name`], else `Task-<id>`.
    pub fn get_name(&self) -> String {
        self.inner.info().name()
    }

    /// Names the task; the name shows in reports about it (a panic nobody awaited, a task
    /// group's failures).
    pub fn set_name(&self, name: impl AsRef<str>) {
        self.inner.info().set_name(name.as_ref());
    }

    /// Requests cancellation, as [`JoinHandle::cancel`](super::JoinHandle::cancel).
    pub fn cancel(&self) -> bool {
        self.inner.request_cancel()
    }

    /// Whether the task finished (completed, was cancelled or panicked).
    pub fn done(&self) -> bool {
        self.inner.is_done()
    }

    /// Whether the task finished by cancellation.
    pub fn cancelled(&self) -> bool {
        self.inner.was_cancelled()
    }

    /// Whether both handles are the same task.
    pub fn same_task(&self, other: &Task) -> bool {
        self.id() == other.id()
    }

    pub(crate) fn run_ref(&self) -> &Rc<dyn TaskRun> {
        &self.inner
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("name", &self.get_name())
            .field("done", &self.done())
            .finish()
    }
}

impl PartialEq for Task {
    fn eq(&self, other: &Task) -> bool {
        self.same_task(other)
    }
}

impl Eq for Task {}

/// The task whose step is running on this thread, or `None` outside any task (in a plain
/// callback, or outside the loop) — asyncio's `current_task()`.
///
/// # Examples
///
/// ```
/// ringloop::run(async {
///     let me = ringloop::current_task().unwrap();
///     me.set_name("main");
///     assert_eq!(ringloop::current_task().unwrap().get_name(), "main");
/// })
/// .unwrap();
/// assert!(ringloop::current_task().is_none());
/// ```
pub fn current_task() -> Option<Task> {
    CURRENT.with(|c| c.borrow().clone().map(Task::from_run))
}

/// The name of the running task, for reports ("" outside a task).
pub(crate) fn current_task_name() -> Option<String> {
    CURRENT.with(|c| c.borrow().as_ref().map(|t| t.info().name()))
}

/// Every task not yet finished on the running loop, asyncio's `all_tasks()` (empty
/// outside a running loop, where asyncio raises). Order: by slot in the loop's task table.
pub fn all_tasks() -> Vec<Task> {
    with_running(|running| running.map(|l| super::live_tasks(l)).unwrap_or_default())
}
