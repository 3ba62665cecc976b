//! Unit tests for paths the integration tests cannot choose: the poll fallback of the
//! exit watch.

use super::*;

#[test]
fn poll_fallback_reaps_and_reports_exit_codes_and_signals() {
    crate::run(async {
        let cmd = child::Command::shell("exit 7");
        let p = cmd
            .spawn_with(&SubprocessOptions::with_stdio(Stdio::Null), true)
            .unwrap();
        assert_eq!(p.wait().await.unwrap().code(), Some(7));

        let cmd = child::Command::new("sleep").arg("10");
        let p = cmd
            .spawn_with(&SubprocessOptions::with_stdio(Stdio::Null), true)
            .unwrap();
        p.terminate().unwrap();
        let status = p.wait().await.unwrap();
        assert_eq!(status.returncode(), -libc::SIGTERM);
        assert!(p.kill().is_err(), "a reaped child cannot be signalled");
    })
    .unwrap();
}

#[test]
fn poll_fallback_with_pipes() {
    crate::run(async {
        let cmd = child::Command::new("cat");
        let p = cmd.spawn_with(&SubprocessOptions::new(), true).unwrap();
        let (out, err) = p.communicate(Some(b"through the poll path")).await.unwrap();
        assert_eq!(out, b"through the poll path");
        assert!(err.is_empty());
        assert_eq!(p.returncode(), Some(0));
    })
    .unwrap();
}
