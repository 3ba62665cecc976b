//! Other threads reaching a loop: `call_soon_threadsafe`, `RemoteHandle`, and task wakers
//! sent to and woken on other threads — all must wake a loop asleep in the kernel.

mod util;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ringloop::{Error, EventLoop};

/// Stops the running loop; a callback another thread can send.
fn stop_running_loop() {
    ringloop::get_running_loop().unwrap().stop();
}

#[test]
fn call_soon_threadsafe_wakes_a_loop_blocked_with_no_timers() {
    let l = EventLoop::new().unwrap();
    let remote = l.remote();
    let sent_at = Arc::new(Mutex::new(None));
    let s = sent_at.clone();
    let started = Instant::now();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        *s.lock().unwrap() = Some(Instant::now());
        remote.call_soon_threadsafe(stop_running_loop).unwrap();
    });
    // No timers and nothing ready: the loop blocks in io_uring_enter until woken.
    l.run_forever().unwrap();
    let woke_at = Instant::now();
    t.join().unwrap();
    let sent = sent_at.lock().unwrap().expect("sent");
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(woke_at >= sent, "the loop returned before it was stopped");
    let latency = woke_at - sent;
    assert!(
        latency <= Duration::from_millis(100),
        "the loop took {latency:?} to wake"
    );
    // Blocked, not spinning.
    assert!(l.iterations() < 10, "{} iterations", l.iterations());
    l.close().unwrap();
}

#[test]
fn event_loop_call_soon_threadsafe_from_the_loop_thread_too() {
    let l = EventLoop::new().unwrap();
    let hit = Arc::new(AtomicUsize::new(0));
    let h = hit.clone();
    l.call_soon_threadsafe(move || {
        h.fetch_add(1, Ordering::SeqCst);
        stop_running_loop();
    })
    .unwrap();
    l.run_forever().unwrap();
    assert_eq!(hit.load(Ordering::SeqCst), 1);
    l.close().unwrap();
}

#[test]
fn many_threads_many_callbacks_all_arrive_in_per_thread_order() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 5_000;
    let l = EventLoop::new().unwrap();
    let got: Arc<Mutex<Vec<(usize, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for t in 0..THREADS {
        let (remote, got, done) = (l.remote(), got.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            for i in 0..PER_THREAD {
                let (got, done) = (got.clone(), done.clone());
                remote
                    .call_soon_threadsafe(move || {
                        got.lock().unwrap().push((t, i));
                        if done.fetch_add(1, Ordering::SeqCst) + 1 == THREADS * PER_THREAD {
                            stop_running_loop();
                        }
                    })
                    .unwrap();
                if i % 500 == 0 {
                    // Let the loop fall asleep now and then, so wake-ups are exercised.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }));
    }
    l.run_forever().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    let got = got.lock().unwrap();
    assert_eq!(got.len(), THREADS * PER_THREAD);
    for t in 0..THREADS {
        let mine: Vec<usize> = got
            .iter()
            .filter(|(x, _)| *x == t)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(mine, (0..PER_THREAD).collect::<Vec<_>>(), "thread {t}");
    }
    l.close().unwrap();
}

#[test]
fn a_remote_handle_on_a_closed_loop_errors() {
    let l = EventLoop::new().unwrap();
    let remote = l.remote();
    l.close().unwrap();
    let r = std::thread::spawn(move || remote.call_soon_threadsafe(|| {}))
        .join()
        .unwrap();
    assert!(matches!(r, Err(Error::Closed)));
}

/// A future that hands its waker to another thread, which wakes it after a delay.
struct WokenElsewhere {
    delay: Duration,
    woken: Option<mpsc::Receiver<()>>,
}

impl std::future::Future for WokenElsewhere {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(rx) = &self.woken {
            return match rx.try_recv() {
                Ok(()) => Poll::Ready(()),
                Err(_) => Poll::Pending, // spurious poll; the thread still holds the waker
            };
        }
        let (tx, rx) = mpsc::channel();
        let waker: Waker = cx.waker().clone();
        let delay = self.delay;
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            tx.send(()).unwrap();
            waker.wake();
        });
        self.woken = Some(rx);
        Poll::Pending
    }
}

#[test]
fn a_waker_sent_to_another_thread_wakes_the_task() {
    let l = EventLoop::new().unwrap();
    let started = Instant::now();
    let out = l
        .run_until_complete(async {
            WokenElsewhere {
                delay: Duration::from_millis(30),
                woken: None,
            }
            .await;
            "woken"
        })
        .unwrap();
    assert_eq!(out, "woken");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(30));
    assert!(took < Duration::from_millis(500), "{took:?}");
    l.close().unwrap();
}

#[test]
fn many_tasks_woken_from_many_threads() {
    let out = ringloop::run(async {
        let handles: Vec<_> = (0..64u64)
            .map(|i| {
                ringloop::spawn(async move {
                    WokenElsewhere {
                        delay: Duration::from_millis(i % 8),
                        woken: None,
                    }
                    .await;
                    i
                })
            })
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    })
    .unwrap();
    assert_eq!(out, (0..64).sum());
}

#[test]
fn a_waker_woken_after_its_loop_closed_is_harmless() {
    let l = EventLoop::new().unwrap();
    let (tx, rx) = mpsc::channel::<Waker>();
    let h = l.create_task(std::future::poll_fn(move |cx| {
        let _ = tx.send(cx.waker().clone());
        Poll::<()>::Pending
    }));
    l.stop();
    l.run_forever().unwrap();
    let waker = rx.recv().unwrap();
    l.close().unwrap();
    drop(h);
    std::thread::spawn(move || {
        waker.wake_by_ref();
        waker.wake();
    })
    .join()
    .unwrap();
}

#[test]
fn ping_pong_with_another_thread_never_loses_a_wake_up() {
    // Each round the loop falls asleep in the kernel and another thread wakes it: 5,000
    // sleep/wake hand-overs. A lost wake-up shows as a timeout, not a hang.
    const ROUNDS: usize = 5_000;
    let l = EventLoop::new().unwrap();
    let remote = l.remote();
    let (to_thread, from_loop) = mpsc::channel::<usize>();
    let t = std::thread::spawn(move || {
        for i in 0..ROUNDS {
            let tx = to_thread.clone();
            remote
                .call_soon_threadsafe(move || {
                    tx.send(i).unwrap();
                    if i + 1 == ROUNDS {
                        stop_running_loop();
                    }
                })
                .unwrap();
            match from_loop.recv_timeout(Duration::from_secs(10)) {
                Ok(got) => assert_eq!(got, i),
                Err(e) => panic!("round {i}: the loop did not answer: {e}"),
            }
        }
    });
    // A watchdog, so a failing thread cannot leave the loop blocked forever.
    let watchdog = l.call_later(Duration::from_secs(30), stop_running_loop);
    l.run_forever().unwrap();
    watchdog.cancel();
    t.join().unwrap();
    l.close().unwrap();
}

/// A one-shot flag a thread sets and wakes a task for.
struct Signal {
    set: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

#[test]
fn a_task_and_a_thread_ping_pong_through_wakers() {
    const ROUNDS: usize = 5_000;
    let signal = Arc::new(Signal {
        set: AtomicUsize::new(0),
        waker: Mutex::new(None),
    });
    let (tx, rx) = mpsc::channel::<usize>();
    let s = signal.clone();
    let t = std::thread::spawn(move || {
        for i in 1..=ROUNDS {
            // Wait for the task to ask for round i, then wake it.
            let asked = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("task asked");
            assert_eq!(asked, i);
            s.set.store(i, Ordering::SeqCst);
            if let Some(w) = s.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    });
    let rounds = ringloop::run(ringloop::timeout(Duration::from_secs(30), async move {
        for i in 1..=ROUNDS {
            tx.send(i).unwrap();
            std::future::poll_fn(|cx| {
                *signal.waker.lock().unwrap() = Some(cx.waker().clone());
                if signal.set.load(Ordering::SeqCst) == i {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        }
        ROUNDS
    }))
    .unwrap()
    .expect("the ping-pong stalled: a wake-up was lost");
    t.join().unwrap();
    assert_eq!(rounds, ROUNDS);
}

/// A loop stopped through its cross-thread queue and closed at once, with echo sends
/// just submitted (quiet ops, which post no CQE when they succeed), settles them at
/// close: nothing counts as left in the kernel, the ring and every socket are freed
/// (found by the runtime's shutdown test).
#[test]
fn a_loop_stopped_from_another_thread_and_closed_at_once_leaves_nothing_in_the_kernel() {
    use std::io::{Read, Write};
    let _serial = util::serial();
    let before = util::settled_open_fds();
    for _ in 0..10 {
        let l = EventLoop::new().unwrap();
        let l2 = l.clone();
        // Echo sends are quiet ops on io_uring (no CQE when they succeed).
        let stats = std::sync::Arc::new(util::EchoStats::default());
        let server = l
            .run_until_complete(async move {
                l2.create_server(move || util::Echo::new(&stats), "127.0.0.1:0")
                    .await
            })
            .unwrap()
            .unwrap();
        let addr = server.sockets()[0];
        // Eight clients echo 4 KiB round trips until the server goes away, so sends are
        // always being submitted when the stop comes.
        let clients: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut s = std::net::TcpStream::connect(addr).unwrap();
                    // A leaked server socket must fail the test, not hang it.
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
                    let mut buf = [0u8; 4096];
                    loop {
                        if s.write_all(&[7u8; 4096]).is_err() {
                            return;
                        }
                        let mut got = 0;
                        while got < buf.len() {
                            match s.read(&mut buf[got..]) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got += n,
                            }
                        }
                    }
                })
            })
            .collect();
        let remote = l.remote();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            remote
                .call_soon_threadsafe(|| ringloop::get_running_loop().unwrap().stop())
                .unwrap();
        });
        l.run_forever().unwrap();
        let started = Instant::now();
        l.close().unwrap();
        let took = started.elapsed();
        drop(server);
        // The accepted sockets close when the last handle on the loop goes (see
        // docs/runtime.md, "Known defects": not at close).
        drop(l);
        stopper.join().unwrap();
        for c in clients {
            c.join().unwrap();
        }
        assert!(
            took < Duration::from_secs(1),
            "close waited {took:?} for ops it could not account for"
        );
    }
    util::assert_fds_back_to(before, Duration::from_secs(2), "after ten remote stops");
}
