//! CPython's `Lib/test/test_asyncio/test_taskgroups.py`, case by case where the concept
//! exists in ringloop (each test is named after the case it ports); the cases left out,
//! and why, are listed in `docs/tasks.md`. Cancellation in Rust drops a future, so
//! CPython's `except CancelledError: ...; raise` becomes a drop guard.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use ringloop::{Error, TaskGroup, TaskGroupError, sleep, spawn};
use util::run;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Adds one to a counter when dropped: CPython's `except CancelledError: NUM += 1`.
struct OnDrop(Rc<Cell<u32>>, u32);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + self.1);
    }
}

fn panicked(err: &TaskGroupError) -> bool {
    err.failures()
        .iter()
        .all(|f| matches!(&f.error, Error::Panic(m) if m.contains("division")))
}

#[test]
fn taskgroup_test_taskgroup_01() {
    run(async {
        let mut g = TaskGroup::new();
        let t1 = g.create_task(async {
            sleep(ms(10)).await;
            42
        });
        let t2 = g.create_task(async {
            sleep(ms(20)).await;
            11
        });
        g.join().await.unwrap();
        assert_eq!(t1.await.unwrap(), 42);
        assert_eq!(t2.await.unwrap(), 11);
    });
}

#[test]
fn taskgroup_test_taskgroup_02() {
    run(async {
        let mut g = TaskGroup::new();
        let t1 = g.create_task(async {
            sleep(ms(10)).await;
            42
        });
        sleep(ms(15)).await;
        let t2 = g.create_task(async {
            sleep(ms(20)).await;
            11
        });
        g.join().await.unwrap();
        assert_eq!(t1.await.unwrap(), 42);
        assert_eq!(t2.await.unwrap(), 11);
    });
}

#[test]
fn taskgroup_test_taskgroup_03() {
    run(async {
        let mut g = TaskGroup::new();
        let t1 = g.create_task(async {
            sleep(ms(1000)).await;
            42
        });
        sleep(ms(15)).await;
        // Cancelled by hand: not a failure, everything else goes on.
        t1.cancel();
        let t2 = g.create_task(async {
            sleep(ms(20)).await;
            11
        });
        g.join().await.unwrap();
        assert!(t1.cancelled());
        assert_eq!(t2.await.unwrap(), 11);
    });
}

#[test]
fn taskgroup_test_taskgroup_04() {
    run(async {
        let num = Rc::new(Cell::new(0));
        let t2_cancel = Rc::new(Cell::new(0));
        let (n, c) = (num.clone(), t2_cancel.clone());
        let runner = spawn(async move {
            let mut g = TaskGroup::new();
            g.create_task(async {
                sleep(ms(10)).await;
                panic!("division by zero");
            });
            let n2 = n.clone();
            let t2 = g.create_task(async move {
                let _guard = OnDrop(c, 1);
                sleep(ms(1000)).await;
                n2.set(n2.get() + 1);
            });
            let r = g.join().await;
            if r.is_ok() {
                n.set(n.get() + 10);
            }
            (r, t2.cancelled())
        });
        let (r, t2_cancelled) = runner.await.unwrap();
        let err = r.unwrap_err();
        assert!(panicked(&err), "{err}");
        assert_eq!(num.get(), 0);
        assert_eq!(t2_cancel.get(), 1);
        assert!(t2_cancelled);
    });
}

#[test]
fn taskgroup_test_cancel_children_on_child_error() {
    run(async {
        let num = Rc::new(Cell::new(0));
        let t2_cancel = Rc::new(Cell::new(0));
        let mut g = TaskGroup::new();
        for _ in 0..3 {
            g.create_task(async {
                sleep(ms(10)).await;
                panic!("division by zero");
            });
        }
        let (n, c) = (num.clone(), t2_cancel.clone());
        g.create_task(async move {
            let _guard = OnDrop(c, 1);
            sleep(ms(5000)).await;
            n.set(n.get() + 1);
        });
        let err = g.join().await.unwrap_err();
        // The three may fail in the same iteration, before the cancellation reaches them.
        assert!((1..=3).contains(&err.failures().len()), "{err}");
        assert!(panicked(&err), "{err}");
        assert_eq!(num.get(), 0);
        assert_eq!(t2_cancel.get(), 1);
    });
}

#[test]
fn taskgroup_test_cancellation() {
    run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let r = spawn(async move {
            let mut g = TaskGroup::new();
            for _ in 0..5 {
                let n = n.clone();
                g.create_task(async move {
                    let _guard = OnDrop(n, 1);
                    sleep(ms(5000)).await;
                });
            }
            g.join().await
        });
        sleep(ms(10)).await;
        assert!(!r.is_finished());
        r.cancel();
        assert!(r.await.unwrap_err().is_cancelled());
        // Dropping the group dropped every member's future at once.
        assert_eq!(num.get(), 5);
    });
}

#[test]
fn taskgroup_test_taskgroup_07() {
    run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let r = spawn(async move {
            let mut g = TaskGroup::new();
            for _ in 0..5 {
                let n = n.clone();
                g.create_task(async move {
                    let _guard = OnDrop(n, 1);
                    sleep(ms(5000)).await;
                });
            }
            let _body = OnDrop(n, 10);
            sleep(ms(10_000)).await;
            g.join().await
        });
        sleep(ms(10)).await;
        assert!(!r.is_finished());
        r.cancel();
        assert!(r.await.unwrap_err().is_cancelled());
        assert_eq!(num.get(), 15);
    });
}

#[test]
fn taskgroup_test_cancellation_in_body() {
    run(async {
        let r = spawn(async {
            let mut g = TaskGroup::new();
            for _ in 0..5 {
                g.create_task(async {
                    sleep(ms(10)).await;
                    panic!("division by zero");
                });
            }
            sleep(ms(10_000)).await;
            g.join().await
        });
        sleep(ms(10)).await;
        assert!(!r.is_finished());
        r.cancel();
        assert!(r.await.unwrap_err().is_cancelled());
    });
}

/// The body fails (returns early): the group is dropped and its members cancelled.
async fn body_fails(wait: bool) -> (ringloop::JoinHandle<u32>, ringloop::JoinHandle<u32>) {
    async fn runner(
        wait: bool,
        out: &mut Option<(ringloop::JoinHandle<u32>, ringloop::JoinHandle<u32>)>,
    ) -> Result<(), &'static str> {
        let mut g = TaskGroup::new();
        let t1 = g.create_task(async {
            sleep(ms(1000)).await;
            42
        });
        let t2 = g.create_task(async {
            sleep(ms(2000)).await;
            11
        });
        *out = Some((t1, t2));
        if wait {
            sleep(ms(10)).await;
        }
        Err("division by zero")?;
        g.join().await.map_err(|_| "group")
    }
    let mut out = None;
    assert_eq!(runner(wait, &mut out).await, Err("division by zero"));
    out.unwrap()
}

#[test]
fn taskgroup_test_taskgroup_09() {
    run(async {
        let (t1, t2) = body_fails(true).await;
        assert!(t1.cancelled() && t2.cancelled());
        assert!(t1.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn taskgroup_test_taskgroup_10() {
    run(async {
        let (t1, t2) = body_fails(false).await;
        assert!(t1.cancelled() && t2.cancelled());
        assert!(t2.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn taskgroup_test_taskgroup_11() {
    run(async {
        let r = spawn(async {
            let outer = TaskGroup::new();
            let mut g2 = TaskGroup::new();
            for _ in 0..5 {
                g2.create_task(async {
                    sleep(ms(10)).await;
                    panic!("division by zero");
                });
            }
            sleep(ms(10_000)).await;
            let _ = g2.join().await;
            outer.join().await
        });
        sleep(ms(10)).await;
        assert!(!r.is_finished());
        r.cancel();
        assert!(r.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn taskgroup_test_taskgroup_12() {
    run(async {
        let r = spawn(async {
            let mut g1 = TaskGroup::new();
            g1.create_task(sleep(ms(10_000)));
            let mut g2 = TaskGroup::new();
            for _ in 0..5 {
                g2.create_task(async {
                    sleep(ms(10)).await;
                    panic!("division by zero");
                });
            }
            sleep(ms(10_000)).await;
            let _ = g2.join().await;
            g1.join().await
        });
        sleep(ms(10)).await;
        assert!(!r.is_finished());
        r.cancel();
        assert!(r.await.unwrap_err().is_cancelled());
    });
}

async fn crash_after(t: u64) -> Result<(), Error> {
    sleep(ms(t)).await;
    Err(Error::other(std::io::Error::other(format!(
        "ValueError({t})"
    ))))
}

#[test]
fn taskgroup_test_taskgroup_13() {
    run(async {
        let mut g1 = TaskGroup::new();
        g1.create_try_task(crash_after(10));
        // The inner group runs as a member, so the outer group's failure cancels it.
        g1.create_try_task(async {
            let mut g2 = TaskGroup::new();
            g2.create_try_task(crash_after(10_000));
            g2.join().await
        });
        let err = g1.join().await.unwrap_err();
        assert_eq!(err.failures().len(), 1);
        assert!(
            err.failures()[0]
                .error
                .to_string()
                .contains("ValueError(10)")
        );
    });
}

#[test]
fn taskgroup_test_taskgroup_14() {
    run(async {
        let mut g1 = TaskGroup::new();
        g1.create_try_task(crash_after(10_000));
        g1.create_try_task(async {
            let mut g2 = TaskGroup::new();
            g2.create_try_task(crash_after(10));
            g2.join().await
        });
        let err = g1.join().await.unwrap_err();
        assert_eq!(err.failures().len(), 1);
        // The outer group's one failure is the inner group's error, itself a group.
        let Error::Other(inner) = &err.failures()[0].error else {
            panic!("not a nested group: {err}");
        };
        let inner = inner
            .downcast_ref::<TaskGroupError>()
            .expect("a TaskGroupError");
        assert_eq!(inner.failures().len(), 1);
        assert!(
            inner.failures()[0]
                .error
                .to_string()
                .contains("ValueError(10)")
        );
    });
}

#[test]
fn taskgroup_test_taskgroup_15() {
    run(async {
        let r = spawn(async {
            let mut g1 = TaskGroup::new();
            g1.create_task(async {
                sleep(ms(30)).await;
                panic!("division by zero");
            });
            sleep(ms(10_000)).await;
            g1.join().await
        });
        sleep(ms(10)).await;
        assert!(!r.is_finished());
        r.cancel();
        assert!(r.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn taskgroup_test_taskgroup_16() {
    run(async {
        let r = spawn(async {
            let nested = spawn(async {
                let mut g1 = TaskGroup::new();
                g1.create_task(async {
                    sleep(ms(30)).await;
                    panic!("division by zero");
                });
                sleep(ms(10_000)).await;
                g1.join().await
            });
            nested.await
        });
        sleep(ms(10)).await;
        assert!(!r.is_finished());
        r.cancel();
        assert!(r.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn taskgroup_test_taskgroup_17() {
    run(async {
        let num = Rc::new(Cell::new(0));
        let n = num.clone();
        let r = spawn(async move {
            let g = TaskGroup::new();
            let _body = OnDrop(n, 10);
            sleep(ms(10_000)).await;
            g.join().await
        });
        sleep(ms(10)).await;
        assert!(!r.is_finished());
        r.cancel();
        assert!(r.await.unwrap_err().is_cancelled());
        assert_eq!(num.get(), 10);
    });
}

#[test]
fn taskgroup_test_taskgroup_19() {
    run(async {
        // The body's own failure (MyExc) and the member's (ZeroDivisionError) both reach
        // the owner: the member's through join, the body's as the body's result.
        let mut g = TaskGroup::new();
        g.create_task(async {
            sleep(ms(10)).await;
            panic!("division by zero");
        });
        let body: Result<(), &str> = async {
            sleep(ms(30)).await;
            Err("MyExc")
        }
        .await;
        let err = g.join().await.unwrap_err();
        assert!(panicked(&err));
        assert_eq!(body, Err("MyExc"));
    });
}

#[test]
fn taskgroup_test_taskgroup_22() {
    run(async {
        let r = spawn(async {
            let mut g = TaskGroup::new();
            g.create_task(sleep(ms(1000)));
            g.create_task(sleep(ms(2000)));
            g.join().await
        });
        sleep(ms(5)).await;
        r.cancel();
        assert!(r.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn taskgroup_test_taskgroup_23() {
    run(async {
        let mut g = TaskGroup::new();
        for count in 0..10 {
            sleep(ms(10)).await;
            g.create_task(sleep(ms(30)));
            if count == 5 {
                assert!(g.pending() < 5, "{}", g.pending());
            }
        }
        sleep(ms(135)).await;
        assert_eq!(g.pending(), 0);
        g.join().await.unwrap();
    });
}

#[test]
fn taskgroup_test_taskgroup_24() {
    run(async {
        let mut g = TaskGroup::new();
        let spawner = g.spawner();
        let done = Rc::new(Cell::new(0));
        let d = done.clone();
        g.create_task(async move {
            sleep(ms(10)).await;
            for delay in [10, 20] {
                let d = d.clone();
                spawner.create_task(async move {
                    sleep(ms(delay)).await;
                    d.set(d.get() + 1);
                });
            }
        });
        g.join().await.unwrap();
        // join waited for the members added by a member.
        assert_eq!(done.get(), 2);
    });
}

#[test]
fn taskgroup_test_taskgroup_25() {
    fn hydra(spawner: ringloop::TaskSpawner, heads: Rc<Cell<u32>>) {
        let s = spawner.clone();
        spawner.create_task(async move {
            heads.set(heads.get() + 1);
            sleep(ms(1)).await;
            hydra(s.clone(), heads.clone());
            hydra(s, heads);
        });
    }
    run(async {
        let heads = Rc::new(Cell::new(0));
        let mut g = TaskGroup::new();
        hydra(g.spawner(), heads.clone());
        let h = heads.clone();
        g.create_task(async move {
            while h.get() < 10 {
                sleep(ms(2)).await;
            }
            panic!("division by zero");
        });
        let err = g.join().await.unwrap_err();
        assert!(panicked(&err), "{err}");
        assert!(heads.get() >= 10);
    });
}

#[test]
fn taskgroup_test_taskgroup_task_name() {
    run(async {
        let mut g = TaskGroup::new();
        let t = g.create_task(sleep(Duration::ZERO));
        t.set_name("yolo");
        assert_eq!(t.get_name(), "yolo");
        g.join().await.unwrap();
    });
}

// ringloop's own cases, beyond CPython's file.

#[test]
fn taskgroup_failures_carry_task_names_and_try_errors() {
    run(async {
        let mut g = TaskGroup::new();
        let bad = g.create_try_task(async {
            sleep(ms(5)).await;
            Err::<u32, _>(std::io::Error::other("disk on fire"))
        });
        bad.set_name("writer");
        let ok_result = g.create_task(async { Err::<u32, &str>("an ordinary output") });
        let err = g.join().await.unwrap_err();
        assert_eq!(err.failures().len(), 1);
        assert_eq!(err.failures()[0].task_name, "writer");
        assert!(err.to_string().contains("writer: disk on fire"), "{err}");
        // The handle gets its copy of the error too.
        assert!(
            bad.await
                .unwrap()
                .unwrap_err()
                .to_string()
                .contains("disk on fire")
        );
        assert_eq!(ok_result.await.unwrap(), Err("an ordinary output"));
        // And the group error converts with `?`.
        let e: Error = err.into();
        assert!(e.to_string().contains("1 task of a task group failed"));
    });
}

#[test]
fn taskgroup_members_after_a_failure_never_run() {
    run(async {
        let ran = Rc::new(Cell::new(false));
        let mut g = TaskGroup::new();
        g.create_task(async { panic!("first") });
        sleep(ms(5)).await;
        assert!(g.is_aborting());
        let r = ran.clone();
        let late = g.create_task(async move { r.set(true) });
        assert!(g.join().await.is_err());
        assert!(late.await.unwrap_err().is_cancelled());
        assert!(!ran.get());
    });
}

#[test]
fn taskgroup_dropped_with_failures_reports_them() {
    let event_loop = ringloop::EventLoop::new().unwrap();
    let reports = util::capture_reports(&event_loop);
    event_loop
        .run_until_complete(async {
            let mut g = TaskGroup::new();
            g.create_task(async { panic!("unseen") });
            sleep(ms(5)).await;
            drop(g);
        })
        .unwrap();
    event_loop.close().unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].message.contains("task group was dropped"));
    let text = reports[0].error.as_ref().unwrap().to_string();
    assert!(text.contains("unseen"), "{text}");
}
