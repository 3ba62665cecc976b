//! Refuses non-Linux targets early, with a clear message: ringloop is built on io_uring.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        panic!("ringloop supports Linux only (it is built on io_uring); target OS is `{os}`");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
