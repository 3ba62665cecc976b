//! No allocation per message on the echo hot path: a counting global allocator (per
//! thread) measures what the loop thread allocates while a TCP echo server (a `Protocol`)
//! and a UDP echo endpoint (a `DatagramProtocol`) answer 2,000 steady-state round trips
//! each from a client thread. Runs on whichever engine `RINGLOOP_ENGINE` selects (CI runs
//! both).

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ringloop::{
    DatagramProtocol, DatagramTransport, Future, Protocol, StreamTransport, get_running_loop,
};
use util::*;

/// Counts allocations made by the current thread.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the counter is a
// thread-local Cell with no destructor, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|a| a.set(a.get() + 1));
        // SAFETY: forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|a| a.get())
}

const SIZE: usize = 64;
const WARMUP: u64 = 500;
const MEASURED: u64 = 2_000;
const T: Duration = Duration::from_secs(20);

/// Extra round trips after the measured ones, so the end mark is not the last message.
const TAIL: u64 = 10;
const TOTAL: u64 = WARMUP + MEASURED + TAIL;

/// The loop thread's allocation count when message `WARMUP` and `WARMUP + MEASURED`
/// arrived; `done` resolves at the last message (no polling timer allocating meanwhile).
#[derive(Default)]
struct Marks {
    messages: Cell<u64>,
    at_start: Cell<Option<u64>>,
    at_end: Cell<Option<u64>>,
    done: Future<()>,
}

impl Marks {
    fn message(&self) {
        let n = self.messages.get() + 1;
        self.messages.set(n);
        if n == WARMUP {
            self.at_start.set(Some(allocs()));
        } else if n == WARMUP + MEASURED {
            self.at_end.set(Some(allocs()));
        } else if n == TOTAL {
            let _ = self.done.set_result(());
        }
    }

    async fn wait(&self) {
        ringloop::timeout(T, self.done.clone())
            .await
            .unwrap_or_else(|_| panic!("only {} messages arrived", self.messages.get()))
            .unwrap();
    }

    fn per_message(&self) -> f64 {
        match (self.at_start.get(), self.at_end.get()) {
            (Some(a), Some(b)) => (b - a) as f64 / MEASURED as f64,
            _ => panic!("only {} messages arrived", self.messages.get()),
        }
    }
}

struct StreamEcho {
    transport: Option<StreamTransport>,
    marks: Rc<Marks>,
    pending: usize,
}

impl Protocol for StreamEcho {
    fn connection_made(&mut self, transport: &StreamTransport) {
        self.transport = Some(transport.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        if let Some(t) = &self.transport {
            t.write(data).unwrap();
        }
        self.pending += data.len();
        while self.pending >= SIZE {
            self.pending -= SIZE;
            self.marks.message();
        }
    }
}

/// Client thread: `count` round trips of `SIZE` bytes, each echo checked.
fn tcp_client(addr: SocketAddr, count: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        let mut back = vec![0u8; SIZE];
        for i in 0..count {
            let msg = pattern(i, SIZE);
            s.write_all(&msg).unwrap();
            s.read_exact(&mut back).unwrap();
            assert!(back == msg, "echo {i} differs");
        }
    })
}

#[test]
fn tcp_echo_allocates_nothing_per_message() {
    let marks = Rc::new(Marks::default());
    let m = marks.clone();
    let marks2 = marks.clone();
    run(async move {
        let marks = marks2;
        let l = get_running_loop().unwrap();
        let server = l
            .create_server(
                move || StreamEcho {
                    transport: None,
                    marks: m.clone(),
                    pending: 0,
                },
                "127.0.0.1:0",
            )
            .await
            .unwrap();
        let client = tcp_client(server.sockets()[0], TOTAL);
        marks.wait().await;
        client.join().unwrap();
        server.close();
    });
    let per = marks.per_message();
    eprintln!("TCP echo: {per:.3} allocations per message on the loop thread");
    assert!(per < 0.1, "{per:.3} allocations per echoed TCP message");
}

struct DgEcho {
    transport: Option<DatagramTransport>,
    marks: Rc<Marks>,
}

impl DatagramProtocol for DgEcho {
    fn connection_made(&mut self, transport: &DatagramTransport) {
        self.transport = Some(transport.clone());
    }
    fn datagram_received(&mut self, data: &[u8], addr: Option<SocketAddr>) {
        if let Some(t) = &self.transport {
            t.sendto(data, addr).unwrap();
        }
        self.marks.message();
    }
}

#[test]
fn udp_echo_allocates_nothing_per_datagram() {
    let marks = Rc::new(Marks::default());
    let m = marks.clone();
    let marks2 = marks.clone();
    let count = TOTAL;
    run(async move {
        let marks = marks2;
        let l = get_running_loop().unwrap();
        let (server, _) = l
            .create_datagram_endpoint(
                move || DgEcho {
                    transport: None,
                    marks: m.clone(),
                },
                Some("127.0.0.1:0"),
                None,
                Default::default(),
            )
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.connect(addr).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            let mut back = vec![0u8; SIZE + 1];
            for i in 0..count {
                let msg = pattern(i, SIZE);
                s.send(&msg).unwrap();
                let n = s.recv(&mut back).unwrap();
                assert!(back[..n] == msg[..], "echo {i} differs");
            }
        });
        marks.wait().await;
        client.join().unwrap();
        server.close();
    });
    let per = marks.per_message();
    eprintln!("UDP echo: {per:.3} allocations per datagram on the loop thread");
    assert!(per < 0.1, "{per:.3} allocations per echoed datagram");
}
