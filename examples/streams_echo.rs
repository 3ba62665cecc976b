//! An echo server on the streams API (`start_server` with a `StreamReader` and a
//! `StreamWriter` per connection), with the same contract as `tcp_echo server`.
//!
//! ```text
//! cargo run --release --example streams_echo [-- ADDR]   # default 127.0.0.1:7000 (port 0: any)
//! (add) --engine uring|epoll|auto                         # default: RINGLOOP_ENGINE, else uring
//! ```
//!
//! It prints `listening on <ip:port>` first, echoes every byte in order, handles half-close
//! (at the client's end of stream it echoes what remains, then closes its side), waits in
//! `drain()` while a client does not read its echoes (so it stops reading from that client
//! and its memory stays bounded), and exits 0 on SIGINT or SIGTERM.

mod common;

use std::process::ExitCode;

use ringloop::{LoopBuilder, StreamReader, StreamWriter, start_server};

/// One connection: read what arrives, write it back, wait out backpressure.
async fn echo(mut reader: StreamReader, writer: StreamWriter) {
    loop {
        match reader.read(64 * 1024).await {
            // End of stream: everything read was written; close (which flushes first).
            Ok(data) if data.is_empty() => break,
            Ok(data) => {
                if writer.write(&data).is_err() || writer.drain().await.is_err() {
                    return;
                }
            }
            // A reset or another error ended the connection: nothing left to echo.
            Err(_) => return,
        }
    }
    writer.close();
    let _ = writer.wait_closed().await;
}

fn serve(addr: String, builder: LoopBuilder) -> Result<(), String> {
    let event_loop = builder.build().map_err(|e| e.to_string())?;
    let l = event_loop.clone();
    let result = event_loop.run_until_complete(async move {
        let server = start_server(echo, &addr).await.map_err(|e| e.to_string())?;
        common::announce(server.sockets().first().copied());
        common::until_stop_signal(&l).await?;
        server.close();
        eprintln!("shutting down");
        Ok::<(), String>(())
    });
    // Closing the loop drops the connections still open.
    event_loop.close().map_err(|e| e.to_string())?;
    result.map_err(|e| e.to_string())?
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = match args.first() {
        Some(a) if !a.starts_with("--") => a.clone(),
        _ => "127.0.0.1:7000".to_string(),
    };
    match common::loop_builder(&args).and_then(|b| serve(addr, b)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streams_echo: {e}");
            eprintln!("usage: streams_echo [ADDR] [--engine uring|epoll|auto]");
            ExitCode::from(2)
        }
    }
}
