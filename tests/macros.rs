//! `#[ringloop::main]` and `#[ringloop::test]` (feature `macros`): the bodies run on a
//! loop of the engine asked for, return values pass through, and a `main` whose loop
//! cannot be built exits 1 with the error (a child process: `examples/hello_macro.rs`).

use std::time::Duration;

#[ringloop::test]
async fn a_test_runs_on_a_loop() {
    let l = ringloop::get_running_loop().expect("a running loop");
    let t0 = l.time();
    ringloop::sleep(Duration::from_millis(20)).await;
    assert!(l.time() - t0 >= Duration::from_millis(20));
}

#[ringloop::test(engine = "epoll")]
async fn the_engine_option_picks_epoll() {
    let l = ringloop::get_running_loop().unwrap();
    assert_eq!(l.engine(), ringloop::Engine::Epoll);
}

#[ringloop::test(engine = "uring")]
async fn the_engine_option_picks_uring() {
    let l = ringloop::get_running_loop().unwrap();
    assert_eq!(l.engine(), ringloop::Engine::Uring);
}

#[ringloop::test]
async fn a_test_may_return_a_result() -> Result<(), ringloop::Error> {
    let listener = ringloop::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let accept = ringloop::spawn(async move { listener.accept().await.map(|_| ()) });
    let _client = ringloop::net::TcpStream::connect(addr).await?;
    accept.await.expect("the accept task")?;
    Ok(())
}

#[test]
fn main_runs_and_its_exit_code_passes_through() {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/hello_macro");
    assert!(
        bin.exists(),
        "build it first: cargo build --release --features macros --example hello_macro"
    );
    let ok = std::process::Command::new(&bin).output().unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "slept 10 ms on the loop"
    );
    let failing = std::process::Command::new(&bin)
        .arg("fail")
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(1), "{failing:?}");
}
