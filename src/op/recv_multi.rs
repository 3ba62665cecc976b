//! Multishot receives from a provided-buffer ring: `IORING_OP_RECV` (streams) and
//! `IORING_OP_RECVMSG` (datagrams) with `IORING_RECV_MULTISHOT`. Each completion names
//! the ring buffer it filled (`IORING_CQE_F_BUFFER`); the handler reads it and recycles
//! it. io_uring only: the epoll engine has no buffer rings (these have no attempt, and
//! transports there use single-shot receives).

use std::io;
use std::rc::Rc;

use io_uring::{cqueue, opcode, squeue::Entry, types};

use super::OpKind;
use crate::buf::ring::BufRing;
use crate::driver::{Attempt, Completion, Orphan};
use crate::fd::SharedFd;
use crate::sys::socket::RawAddr;

/// Gives back the ring buffer an abandoned receive's completion carries.
fn recycle(ring: &BufRing, c: &Completion) {
    if let Some(bid) = cqueue::buffer_select(c.flags) {
        ring.take(bid, 0);
        ring.recycle(bid);
    }
}

/// A multishot stream receive into `ring`'s buffers.
pub(crate) struct RecvMulti {
    fd: SharedFd,
    ring: Rc<BufRing>,
    limit: u32,
}

impl RecvMulti {
    pub(crate) fn new(fd: SharedFd, ring: Rc<BufRing>) -> Self {
        RecvMulti { fd, ring, limit: 0 }
    }

    /// Ends the receive (a completion without `F_MORE`) once it has taken `limit` bytes
    /// (Linux 6.17+; an older kernel refuses the SQE with `EINVAL`). Zero: no limit.
    pub(crate) fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }
}

/// Byte offset in `io_uring_sqe` of `optlen` (a union with `file_index` and
/// `splice_fd_in`), the total byte limit of a multishot `IORING_OP_RECV`.
const SQE_OPTLEN: usize = 44;

/// Sets the SQE's `optlen`, which the io-uring crate's `RecvMulti` builder does not
/// expose.
fn set_optlen(entry: &mut Entry, value: u32) {
    const _: () = assert!(std::mem::size_of::<Entry>() == 64);
    // SAFETY: `Entry` is `#[repr(C)]` over the kernel's 64-byte `io_uring_sqe`, in which
    // bytes 44..48 are the `u32` `optlen`; the write is in bounds and unaligned-safe.
    unsafe {
        let base = (entry as *mut Entry).cast::<u8>();
        base.add(SQE_OPTLEN).cast::<u32>().write_unaligned(value);
    }
}

impl Orphan for RecvMulti {
    fn completed(&mut self, c: &Completion) {
        recycle(&self.ring, c);
    }
}

// SAFETY: the SQE names no memory of ours: buffers come from the registered ring, which
// the driver keeps as long as the io_uring (and this op holds a clone).
unsafe impl OpKind for RecvMulti {
    /// Completions go to the handler, which reads and recycles each buffer.
    type Output = ();

    fn sqe(&mut self) -> Entry {
        let mut entry = opcode::RecvMulti::new(types::Fd(self.fd.raw()), self.ring.bgid()).build();
        if self.limit > 0 {
            set_optlen(&mut entry, self.limit);
        }
        entry
    }

    fn attempt(&mut self) -> Option<Attempt> {
        None
    }

    fn multishot(&self) -> bool {
        true
    }

    fn complete(self, _result: io::Result<u32>) {}
}

/// A multishot datagram receive into `ring`'s buffers; `hdr` tells the kernel how much
/// room to leave for the source address (it reads it when the SQE is submitted).
pub(crate) struct RecvMsgMulti {
    fd: SharedFd,
    ring: Rc<BufRing>,
    hdr: Box<libc::msghdr>,
}

/// Room for a source address in a multishot `recvmsg` buffer.
const NAME_ROOM: usize = size_of::<libc::sockaddr_storage>();

/// The size of a datagram ring buffer that holds `payload` bytes: the
/// `io_uring_recvmsg_out` header (16 bytes), the address room and the payload, rounded
/// up to 256 bytes.
pub(crate) const fn recvmsg_multi_buffer(payload: usize) -> usize {
    (16 + NAME_ROOM + payload).div_ceil(256) * 256
}

/// The msghdr of a multishot `recvmsg`: only the address room is set (the payload goes to
/// the ring buffer; no control data).
fn multishot_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is plain old data; all-zero (null pointers, zero lengths) is valid.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_namelen = NAME_ROOM as libc::socklen_t;
    hdr
}

/// A datagram in a ring buffer a multishot `recvmsg` filled: its payload and source
/// address. `None` for a buffer shorter than the header the kernel writes first.
pub(crate) fn parse_datagram(data: &[u8]) -> Option<(&[u8], Option<std::net::SocketAddr>)> {
    let out = types::RecvMsgOut::parse(data, &multishot_msghdr()).ok()?;
    let name = out.name_data();
    let mut addr = RawAddr::empty();
    let n = name.len().min(NAME_ROOM);
    // SAFETY: `addr`'s storage is NAME_ROOM bytes of plain old data; we copy at most that
    // many bytes into it.
    unsafe {
        std::ptr::copy_nonoverlapping(name.as_ptr(), addr.as_mut_ptr().cast::<u8>(), n);
    }
    addr.len = n as libc::socklen_t;
    // The payload is a part of `data` (the parser borrows it for its own lifetime only).
    let payload = out.payload_data();
    let start = payload.as_ptr() as usize - data.as_ptr() as usize;
    Some((&data[start..start + payload.len()], addr.to_socket_addr()))
}

impl RecvMsgMulti {
    pub(crate) fn new(fd: SharedFd, ring: Rc<BufRing>) -> Self {
        RecvMsgMulti {
            fd,
            ring,
            hdr: Box::new(multishot_msghdr()),
        }
    }
}

impl Orphan for RecvMsgMulti {
    fn completed(&mut self, c: &Completion) {
        recycle(&self.ring, c);
    }
}

// SAFETY: the SQE points only to the boxed header, owned here; the payload buffers come
// from the registered ring, which the driver keeps as long as the io_uring.
unsafe impl OpKind for RecvMsgMulti {
    /// Completions go to the handler, which reads and recycles each buffer.
    type Output = ();

    fn sqe(&mut self) -> Entry {
        opcode::RecvMsgMulti::new(types::Fd(self.fd.raw()), &*self.hdr, self.ring.bgid()).build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        None
    }

    fn multishot(&self) -> bool {
        true
    }

    fn complete(self, _result: io::Result<u32>) {}
}
