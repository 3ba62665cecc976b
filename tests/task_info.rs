//! `current_task`, `all_tasks`, task names (also in the loop's panic reports) and `shield`.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ringloop::{all_tasks, current_task, shield, sleep, spawn, timeout};
use util::run;

#[test]
fn current_task_is_the_running_task_and_none_in_callbacks() {
    run(async {
        let me = current_task().expect("inside a task");
        let child = spawn(async { current_task().unwrap() });
        let child_task = child.task();
        let seen = child.await.unwrap();
        assert_eq!(seen, child_task);
        assert_ne!(seen, me);
        let in_callback = Rc::new(Cell::new(true));
        let c = in_callback.clone();
        ringloop::get_running_loop()
            .unwrap()
            .call_soon(move || c.set(current_task().is_some()));
        sleep(Duration::ZERO).await;
        sleep(Duration::ZERO).await;
        assert!(!in_callback.get());
    });
    assert!(current_task().is_none());
}

#[test]
fn all_tasks_lists_the_unfinished_ones() {
    run(async {
        let a = spawn(sleep(Duration::from_secs(10)));
        let b = spawn(async {});
        sleep(Duration::from_millis(1)).await;
        let tasks = all_tasks();
        assert!(tasks.contains(&a.task()));
        assert!(tasks.contains(&current_task().unwrap()));
        assert!(!tasks.contains(&b.task()));
        a.cancel();
        assert!(a.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn task_names_default_and_show_in_panic_reports() {
    let event_loop = ringloop::EventLoop::new().unwrap();
    let reports = util::capture_reports(&event_loop);
    event_loop
        .run_until_complete(async {
            let t = spawn(async {});
            assert_eq!(t.get_name(), format!("Task-{}", t.task().id()));
            let bad = spawn(async { panic!("oops") });
            bad.set_name("worker-7");
            assert_eq!(bad.task().get_name(), "worker-7");
            drop(bad);
            sleep(Duration::from_millis(5)).await;
        })
        .unwrap();
    event_loop.close().unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].message.contains("worker-7"), "{reports:?}");
}

#[test]
fn shield_keeps_the_work_going_when_its_awaiter_gives_up() {
    run(async {
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let work = shield(async move {
            sleep(Duration::from_millis(20)).await;
            d.set(true);
            5
        });
        let t = work.task();
        assert!(timeout(Duration::from_millis(1), work).await.is_err());
        util::wait_until(Duration::from_secs(5), "the shielded task", || t.done()).await;
        assert!(done.get());
        assert!(!t.cancelled());
    });
}
