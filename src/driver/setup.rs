//! Creating the ring: set-up flags chosen by what the kernel accepts, the opcode probe,
//! and a clear diagnosis when io_uring is refused.
//!
//! The preferred set-up is `SINGLE_ISSUER | DEFER_TASKRUN` (completions are posted only
//! when the loop asks for them, so no task-work interrupts the loop thread); kernels that
//! reject it get `COOP_TASKRUN`, then plain flags. `IORING_FEAT_NODROP` is required: a
//! kernel that may drop completions cannot keep our buffer-ownership promise.

use std::fmt;
use std::io;

use io_uring::{IoUring, Probe, opcode};

/// Which set-up flags the ring ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupMode {
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`.
    DeferTaskrun,
    /// `IORING_SETUP_COOP_TASKRUN`.
    CoopTaskrun,
    /// No task-run flags.
    Plain,
}

impl fmt::Display for SetupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetupMode::DeferTaskrun => "SINGLE_ISSUER|DEFER_TASKRUN",
            SetupMode::CoopTaskrun => "COOP_TASKRUN",
            SetupMode::Plain => "plain",
        })
    }
}

/// Sizes of the ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingSize {
    pub(crate) sq_entries: u32,
    pub(crate) cq_entries: u32,
}

/// Opcodes the core needs; a kernel without them is refused with a clear error.
const REQUIRED_OPCODES: &[(u8, &str)] = &[
    (opcode::Nop::CODE, "NOP"),
    (opcode::Read::CODE, "READ"),
    (opcode::Write::CODE, "WRITE"),
    (opcode::Readv::CODE, "READV"),
    (opcode::Writev::CODE, "WRITEV"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::Timeout::CODE, "TIMEOUT"),
    (opcode::TimeoutRemove::CODE, "TIMEOUT_REMOVE"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
];

/// Builds the ring with the best set-up flags the kernel accepts.
pub(crate) fn build_ring(size: RingSize) -> io::Result<(IoUring, SetupMode, Probe)> {
    let attempts = [
        SetupMode::DeferTaskrun,
        SetupMode::CoopTaskrun,
        SetupMode::Plain,
    ];
    let mut last_err = None;
    for mode in attempts {
        for submit_all in [true, false] {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(size.cq_entries.max(size.sq_entries));
            builder.dontfork();
            if submit_all {
                builder.setup_submit_all();
            }
            match mode {
                SetupMode::DeferTaskrun => {
                    builder.setup_single_issuer().setup_defer_taskrun();
                }
                SetupMode::CoopTaskrun => {
                    builder.setup_coop_taskrun();
                }
                SetupMode::Plain => {}
            }
            match builder.build(size.sq_entries) {
                Ok(ring) => return finish(ring, mode),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
                Err(e) => return Err(diagnose(e)),
            }
        }
    }
    Err(diagnose(last_err.unwrap_or_else(|| {
        io::Error::from_raw_os_error(libc::EINVAL)
    })))
}

fn finish(ring: IoUring, mode: SetupMode) -> io::Result<(IoUring, SetupMode, Probe)> {
    if !ring.params().is_feature_nodrop() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring unavailable: the kernel lacks IORING_FEAT_NODROP (Linux 5.5+), so \
             completions could be lost; upgrade the kernel or use the epoll engine",
        ));
    }
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("io_uring unavailable: IORING_REGISTER_PROBE failed ({e}); Linux 5.6+ needed"),
        )
    })?;
    let missing: Vec<&str> = REQUIRED_OPCODES
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "io_uring unavailable: the kernel lacks the opcodes {}; upgrade the kernel",
                missing.join(", ")
            ),
        ));
    }
    Ok((ring, mode, probe))
}

/// Turns an `io_uring_setup` failure into an error that says which cause and what to do.
pub(crate) fn diagnose(e: io::Error) -> io::Error {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS): it is older than 5.1 or \
             built without CONFIG_IO_URING; use the epoll engine"
            .to_string(),
        Some(libc::EPERM) | Some(libc::EACCES) => match sysctl {
            Some(2) => "io_uring is disabled by the sysctl kernel.io_uring_disabled=2; set it \
                 to 0 (`sysctl kernel.io_uring_disabled=0`) or use the epoll engine"
                .to_string(),
            Some(1) => "io_uring is restricted by kernel.io_uring_disabled=1 to members of \
                 kernel.io_uring_group; add this user to that group, set the sysctl to 0, \
                 or use the epoll engine"
                .to_string(),
            _ => "io_uring_setup was refused with EPERM while kernel.io_uring_disabled is 0: \
                 a seccomp filter (Docker's default profile blocks io_uring) or an LSM denies \
                 it; allow io_uring_setup/io_uring_enter/io_uring_register in the profile, \
                 or use the epoll engine"
                .to_string(),
        },
        Some(libc::ENOMEM) => {
            let limit = memlock_limit().map_or("unknown".to_string(), |l| format!("{l} bytes"));
            format!(
                "io_uring_setup failed with ENOMEM: RLIMIT_MEMLOCK ({limit}) is too low for \
                 the ring on this kernel (before 5.12 rings count against it); raise it \
                 (`ulimit -l`), ask for a smaller ring, or use the epoll engine"
            )
        }
        _ => format!("io_uring_setup failed ({e}); use the epoll engine"),
    };
    io::Error::new(e.kind(), format!("io_uring unavailable: {why}"))
}

fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; nothing else is touched.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enosys_and_eperm_say_what_to_do() {
        let e = diagnose(io::Error::from_raw_os_error(libc::ENOSYS));
        assert!(e.to_string().contains("ENOSYS"), "{e}");
        let e = diagnose(io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.to_string().contains("io_uring unavailable"), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let e = diagnose(io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}");
    }

    #[test]
    fn this_kernel_gets_a_ring_with_nodrop() {
        let (ring, mode, probe) = build_ring(RingSize {
            sq_entries: 8,
            cq_entries: 16,
        })
        .expect("io_uring should be available in the test environment");
        assert!(ring.params().is_feature_nodrop());
        assert!(probe.is_supported(opcode::Nop::CODE));
        eprintln!("ring set-up mode: {mode}");
    }
}
