//! An echo server on a thread and loop of its own.

use std::time::Duration;

use ringloop::LoopBuilder;

use super::{Echo, EchoStats};

/// What an [`EchoServerThread`] reports when stopped.
#[derive(Debug)]
pub struct ServerReport {
    /// Connections still open when the stop was requested.
    pub active_at_stop: usize,
    /// Provided receive buffers still handed out after the server closed.
    pub recv_buffers_in_use: usize,
    pub stats: ringloop::DriverStats,
    pub engine: ringloop::Engine,
}

/// An [`Echo`] server (`create_server`) running on its own thread and loop.
pub struct EchoServerThread {
    pub addr: std::net::SocketAddr,
    pub stats: std::sync::Arc<EchoStats>,
    remote: ringloop::RemoteHandle,
    join: Option<std::thread::JoinHandle<ServerReport>>,
}

impl EchoServerThread {
    pub fn start(builder: LoopBuilder, addr: &str) -> EchoServerThread {
        let stats = std::sync::Arc::new(EchoStats::default());
        let theirs = stats.clone();
        let addr = addr.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let join = std::thread::Builder::new()
            .name("echo-server".into())
            .spawn(move || {
                let l = builder.build().expect("server loop");
                let l2 = l.clone();
                let server = l
                    .run_until_complete(async move {
                        l2.create_server(move || Echo::new(&theirs), &addr).await
                    })
                    .expect("run")
                    .expect("create_server");
                tx.send((server.sockets()[0], l.remote()))
                    .expect("send addr");
                l.run_forever().expect("run_forever");
                let active_at_stop = server.active_connections();
                server.close();
                let s = server.clone();
                l.run_until_complete(async move {
                    ringloop::timeout(Duration::from_secs(10), s.wait_closed()).await
                })
                .expect("run")
                .expect("wait_closed in time");
                let report = ServerReport {
                    active_at_stop,
                    recv_buffers_in_use: l.recv_buffers_in_use(),
                    stats: l.driver_stats(),
                    engine: l.engine(),
                };
                l.close().expect("close server loop");
                report
            })
            .expect("spawn the server thread");
        let (addr, remote) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server thread started");
        EchoServerThread {
            addr,
            stats,
            remote,
            join: Some(join),
        }
    }

    /// Stops the server loop, closes the server, waits for its connections to end.
    pub fn stop(mut self) -> ServerReport {
        self.remote
            .call_soon_threadsafe(|| {
                ringloop::get_running_loop()
                    .expect("running on the server loop")
                    .stop()
            })
            .expect("reach the server loop");
        let report = self
            .join
            .take()
            .expect("joined once")
            .join()
            .expect("the server thread panicked");
        assert_eq!(report.stats.stale_cqes, 0, "{report:?}");
        assert_eq!(report.stats.cq_overflow, 0, "{report:?}");
        report
    }
}
