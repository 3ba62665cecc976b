//! Helpers shared by the integration tests, one idea a file:
//!
//! - [`fds`]: counting this process's fds (one definition), a settled baseline, a bounded
//!   "back to the baseline" check, pipes, the fd limit
//! - [`pattern`]: patterned payloads (one byte function) and their verification
//! - [`serial`]: the lock for tests that look at the whole process
//! - [`run`]: running a test's loop with a bound, iterating it, waiting for a condition,
//!   capturing exception reports, timing tolerances
//! - [`proc`]: RSS and CPU time
//! - [`child`]: re-running this test binary as a child, and the example binaries
//! - [`net`], [`protocols`], [`echo_server`]: loopback clients and servers
//! - [`seccomp`]: refusing `io_uring_setup` in a child
//! - [`tmp`]: a temporary directory removed on drop
//!
//! Each test file includes this with `mod util;`; not every file uses every helper.
//! Everything is re-exported here, so `use util::*;` or `util::name` reaches it.
#![allow(dead_code, unused_imports)]

pub mod child;
pub mod echo_server;
pub mod fds;
pub mod net;
pub mod pattern;
pub mod proc;
pub mod protocols;
pub mod run;
pub mod seccomp;
pub mod serial;
pub mod tmp;

pub use child::*;
pub use echo_server::*;
pub use fds::*;
pub use net::*;
pub use pattern::*;
pub use proc::*;
pub use protocols::*;
pub use run::*;
pub use serial::*;
pub use tmp::*;
