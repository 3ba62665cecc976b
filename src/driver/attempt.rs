//! How the epoll engine runs an op: a small `Copy` value each op builds beside its SQE.
//!
//! An [`Attempt`] names the fd, the readiness it waits for, a few words of arguments
//! (pointers into the op's own buffers, lengths, flags) and a plain function that makes
//! one non-blocking try with them. The op's file defines that function next to its SQE
//! builder, so an op is one definition for both engines; the epoll engine only stores the
//! value, calls `run` when the fd is ready and reads the [`Outcome`]. It never sees what
//! the arguments mean, and it allocates nothing per op.

use std::os::fd::RawFd;

/// Words of arguments an attempt carries.
pub(crate) const ARGS: usize = 4;

/// Which readiness an attempt waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Runs when the fd is readable (receives, reads, accepts, polls).
    Read,
    /// Runs when the fd is writable (sends, writes, connects).
    Write,
    /// Runs at once, whatever the fd's readiness (a nop).
    Now,
    /// Closes the fd: the engine forgets its registration first, then runs it at once.
    Close,
    /// A call that may block (file I/O, path operations: epoll cannot wait on a regular
    /// file): the epoll engine runs it on a pool thread and completes it from there, never
    /// on the loop's thread. The fd is not registered with epoll.
    Blocking,
}

/// What one try produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Finished with this result (a count, an fd, or `-errno`).
    Done(i32),
    /// Finished, and the fd is drained in this direction (a short stream read): wait for
    /// its next edge before trying the next op, unless the peer's end of stream was seen.
    Drained(i32),
    /// Produced a completion and wants to run again (multishot accept).
    More(i32),
    /// Not ready: wait for the fd's next edge in this direction.
    NotReady,
}

impl Outcome {
    /// A syscall's result in the CQE convention: `-EAGAIN` is "not ready", the rest done.
    pub(crate) fn of(result: i32) -> Outcome {
        if result == -libc::EAGAIN {
            Outcome::NotReady
        } else {
            Outcome::Done(result)
        }
    }
}

/// One non-blocking try at an op, with the words it needs.
///
/// The function may update `args` (a connect records that it is in progress).
pub(crate) type RunFn = unsafe fn(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome;

/// How the epoll engine runs one op.
#[derive(Clone, Copy)]
pub(crate) struct Attempt {
    pub(crate) fd: RawFd,
    pub(crate) interest: Interest,
    pub(crate) args: [u64; ARGS],
    /// # Safety
    ///
    /// Callable while the op that built the attempt is in flight: every pointer in `args`
    /// points into memory the op owns until its completion (the `OpKind` contract).
    pub(crate) run: RunFn,
}

impl Attempt {
    pub(crate) fn new(fd: RawFd, interest: Interest, args: [u64; ARGS], run: RunFn) -> Self {
        Attempt {
            fd,
            interest,
            args,
            run,
        }
    }

    /// Makes one try.
    ///
    /// # Safety
    ///
    /// The op that built this attempt is still in flight (its memory is alive).
    pub(crate) unsafe fn run(&mut self) -> Outcome {
        // SAFETY: forwarded from the caller.
        unsafe { (self.run)(self.fd, &mut self.args) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts its runs in `args[0]` and is ready on the third.
    unsafe fn third_time(_fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
        args[0] += 1;
        if args[0] < 3 {
            Outcome::NotReady
        } else {
            Outcome::Done(args[0] as i32)
        }
    }

    #[test]
    fn an_attempt_keeps_its_state_between_tries() {
        let mut a = Attempt::new(-1, Interest::Read, [0; ARGS], third_time);
        // SAFETY: the attempt names no memory.
        let outcomes: Vec<_> = (0..3).map(|_| unsafe { a.run() }).collect();
        assert_eq!(
            outcomes,
            [Outcome::NotReady, Outcome::NotReady, Outcome::Done(3)]
        );
        assert_eq!(Outcome::of(-libc::EAGAIN), Outcome::NotReady);
        assert_eq!(Outcome::of(-libc::EPIPE), Outcome::Done(-libc::EPIPE));
    }
}
