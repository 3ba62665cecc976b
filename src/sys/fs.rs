//! File and path syscalls, in the CQE convention (a count or fd, or `-errno`): what the
//! epoll engine's pool threads run for `crate::fs` ops (see `driver::Interest::Blocking`),
//! and the `O_DIRECT` alignment query `crate::fs` makes at open.

use std::os::fd::RawFd;

use super::cqe_result as res;

/// # Safety
///
/// `path` is a NUL-terminated string that lives across the call.
pub(crate) unsafe fn openat(dirfd: RawFd, path: *const libc::c_char, flags: i32, mode: u32) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::openat(dirfd, path, flags, mode) } as isize)
}

pub(crate) fn fsync(fd: RawFd, datasync: bool) -> i32 {
    // SAFETY: no pointers.
    let rc = unsafe {
        if datasync {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    };
    res(rc as isize)
}

/// # Safety
///
/// `path` is NUL-terminated and `out` valid for writing one `statx`, across the call.
pub(crate) unsafe fn statx(
    dirfd: RawFd,
    path: *const libc::c_char,
    flags: i32,
    mask: u32,
    out: *mut libc::statx,
) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::statx(dirfd, path, flags, mask, out) } as isize)
}

pub(crate) fn fallocate(fd: RawFd, mode: i32, offset: u64, len: u64) -> i32 {
    // SAFETY: no pointers.
    res(unsafe { libc::fallocate(fd, mode, offset as libc::off_t, len as libc::off_t) } as isize)
}

pub(crate) fn ftruncate(fd: RawFd, len: u64) -> i32 {
    // SAFETY: no pointers.
    res(unsafe { libc::ftruncate(fd, len as libc::off_t) } as isize)
}

/// # Safety
///
/// `path` is NUL-terminated and lives across the call.
pub(crate) unsafe fn unlinkat(dirfd: RawFd, path: *const libc::c_char, flags: i32) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::unlinkat(dirfd, path, flags) } as isize)
}

/// # Safety
///
/// Both paths are NUL-terminated and live across the call.
pub(crate) unsafe fn renameat(
    olddir: RawFd,
    old: *const libc::c_char,
    newdir: RawFd,
    new: *const libc::c_char,
) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::renameat(olddir, old, newdir, new) } as isize)
}

/// # Safety
///
/// `path` is NUL-terminated and lives across the call.
pub(crate) unsafe fn mkdirat(dirfd: RawFd, path: *const libc::c_char, mode: u32) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::mkdirat(dirfd, path, mode) } as isize)
}

/// # Safety
///
/// Both strings are NUL-terminated and live across the call.
pub(crate) unsafe fn symlinkat(
    target: *const libc::c_char,
    dirfd: RawFd,
    link: *const libc::c_char,
) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::symlinkat(target, dirfd, link) } as isize)
}

/// # Safety
///
/// Both paths are NUL-terminated and live across the call.
pub(crate) unsafe fn linkat(
    olddir: RawFd,
    old: *const libc::c_char,
    newdir: RawFd,
    new: *const libc::c_char,
    flags: i32,
) -> i32 {
    // SAFETY: forwarded from the caller.
    res(unsafe { libc::linkat(olddir, old, newdir, new, flags) } as isize)
}

/// The logical block size an `O_DIRECT` transfer on `fd` must be aligned to: the
/// file system's `statx` `stx_dio_mem_align`/`stx_dio_offset_align` where the kernel
/// reports them (6.1+), else 512.
pub(crate) fn dio_alignment(fd: RawFd) -> (usize, usize) {
    // SAFETY: a zeroed statx is a valid out-parameter.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    const STATX_DIOALIGN: u32 = 0x2000;
    // SAFETY: empty path with AT_EMPTY_PATH names `fd`; `stx` is writable.
    let rc = unsafe {
        libc::statx(
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            STATX_DIOALIGN,
            &mut stx,
        )
    };
    if rc == 0 && stx.stx_mask & STATX_DIOALIGN != 0 && stx.stx_dio_mem_align != 0 {
        (
            stx.stx_dio_mem_align as usize,
            stx.stx_dio_offset_align as usize,
        )
    } else {
        (512, 512)
    }
}
