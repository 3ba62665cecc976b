//! Thread-per-core: a [`Runtime`] of N event loops on N threads, and
//! [`run_coroutine_threadsafe`] between them (asyncio's model — one loop per thread —
//! across every core, as monoio and glommio do it).
//!
//! Each loop is an ordinary [`EventLoop`](crate::EventLoop) with its own ring, built and
//! run by its own thread; nothing is shared between loops but their cross-thread queues
//! ([`RemoteHandle`](crate::RemoteHandle)). Work reaches another loop as a `Send` closure
//! ([`RemoteHandle::call_soon_threadsafe`](crate::RemoteHandle::call_soon_threadsafe), or
//! [`run_coroutine_threadsafe`] when a result should come back); task wakers are `Send`,
//! so any `Send` channel crate (`futures::channel`, `tokio::sync`, `async-channel`) also
//! works between loops.
//!
//! Servers across loops: every loop listens on the same port with `SO_REUSEPORT`
//! ([`ServerOptions::reuse_port`](crate::net::ServerOptions::reuse_port)) and the kernel
//! spreads connections; or one loop accepts and hands sockets to the others, which adopt
//! them with [`EventLoop::connect_accepted_socket`](crate::EventLoop::connect_accepted_socket).
//! `docs/runtime.md` says when to use which.
//!
//! Files: `builder.rs` (options, starting the threads), `threads.rs` (the loop thread,
//! `Runtime::run`, shutdown), `control.rs` (the failure and stop state the threads share),
//! `context.rs` ([`LoopContext`]), `threadsafe.rs` ([`run_coroutine_threadsafe`],
//! [`ConcurrentFuture`]), `catch.rs` (panics into outcomes), `error.rs` ([`RuntimeError`]).
//!
//! ```
//! use ringloop::net::ServerOptions;
//! use ringloop::{Protocol, Runtime, StreamTransport};
//!
//! struct Echo(Option<StreamTransport>);
//! impl Protocol for Echo {
//!     fn connection_made(&mut self, t: &StreamTransport) { self.0 = Some(t.clone()); }
//!     fn data_received(&mut self, d: &[u8]) { let _ = self.0.as_ref().unwrap().write(d); }
//! }
//!
//! let rt = Runtime::builder().threads(2).build().unwrap();
//! // Every loop listens on the same port; the kernel spreads the connections.
//! let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
//! let served = rt
//!     .run(move |ctx| async move {
//!         let options = ServerOptions { reuse_port: true, ..Default::default() };
//!         let server = ctx
//!             .event_loop()
//!             .create_server_with(|| Echo(None), ("127.0.0.1", port), options)
//!             .await
//!             .unwrap();
//!         let addr = server.sockets()[0];
//!         server.close();
//!         addr.port()
//!     })
//!     .unwrap();
//! assert_eq!(served, vec![port, port]);
//! rt.shutdown().unwrap();
//! ```

mod builder;
mod catch;
mod context;
mod control;
mod error;
mod threads;
mod threadsafe;

pub use builder::RuntimeBuilder;
pub use context::LoopContext;
pub use error::RuntimeError;
pub use threads::Runtime;
pub use threadsafe::{ConcurrentFuture, run_coroutine_threadsafe};
