//! Unit tests of the datagram transport on real socket pairs.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::DatagramTransport;
use crate::fd::SharedFd;
use crate::{DatagramProtocol, EventLoop};

struct Errors(Rc<RefCell<Vec<io::Error>>>);

impl DatagramProtocol for Errors {
    fn datagram_received(&mut self, _data: &[u8], _addr: Option<SocketAddr>) {}
    fn error_received(&mut self, exc: io::Error) {
        self.0.borrow_mut().push(exc);
    }
}

/// More datagrams than the socket's send buffer holds, to a peer that reads only
/// later (a Unix datagram pair: unread datagrams stay charged to the sender). The
/// quiet (`MSG_DONTWAIT`) sends that find no room come back `EAGAIN` and are pushed
/// again as sends that wait; the protocol never hears of it, and every datagram
/// arrives, in order.
#[test]
fn datagrams_that_find_no_room_are_sent_again_not_reported() {
    const COUNT: usize = 2_000;
    const SIZE: usize = 1_000;
    let l = EventLoop::new().unwrap();
    let (ours, theirs) = UnixDatagram::pair().unwrap();
    let errors = Rc::new(RefCell::new(Vec::new()));
    let protocol = Rc::new(RefCell::new(Errors(errors.clone())));
    // Connected: `sendto(_, None)` goes to the pair's other end.
    let peer = Some("127.0.0.1:9".parse().unwrap());
    let t = DatagramTransport::new(&l, SharedFd::new(OwnedFd::from(ours)), peer, protocol);
    t.start();
    // High enough that the burst stays quiet (a paused protocol's sends are not).
    t.set_write_buffer_limits(Some(64 << 20), None).unwrap();
    let before = l.driver_stats();
    for i in 0..COUNT {
        let mut datagram = vec![(i % 251) as u8; SIZE];
        datagram[..4].copy_from_slice(&(i as u32).to_le_bytes());
        t.sendto(&datagram, None).unwrap();
    }
    // Let the loop submit them all before anybody reads.
    l.run_until_complete(crate::sleep(Duration::from_millis(20)))
        .unwrap();
    assert!(
        t.get_write_buffer_size() > 0,
        "the send buffer never filled"
    );
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 2 * SIZE];
        for i in 0..COUNT {
            let n = theirs.recv(&mut buf).unwrap();
            assert_eq!(n, SIZE, "datagram {i}");
            let index = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
            assert_eq!(index, i, "datagrams out of order");
            assert!(
                buf[4..n].iter().all(|&b| b == (i % 251) as u8),
                "datagram {i}"
            );
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.get_write_buffer_size() > 0 {
        assert!(Instant::now() < deadline, "sends never finished");
        l.run_until_complete(crate::sleep(Duration::from_millis(1)))
            .unwrap();
    }
    reader
        .join()
        .expect("every datagram arrived intact and in order");
    let stats = l.driver_stats();
    let resent = stats.sqes - before.sqes - COUNT as u64;
    assert!(errors.borrow().is_empty(), "{:?}", errors.borrow());
    if l.engine() == crate::Engine::Uring {
        assert!(resent > 0, "no send found the buffer full: {stats:?}");
        assert!(stats.quiet - before.quiet > 0, "{stats:?}");
    }
    t.close();
    l.close().unwrap();
}
