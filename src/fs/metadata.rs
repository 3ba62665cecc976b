//! [`Metadata`]: what `STATX` reports about a file.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

/// A file's metadata (from `statx`).
#[derive(Debug, Clone)]
pub struct Metadata {
    len: u64,
    mode: u32,
    mtime: (i64, u32),
}

impl Metadata {
    pub(crate) fn from_statx(stx: Box<libc::statx>) -> Metadata {
        Metadata {
            len: stx.stx_size,
            mode: u32::from(stx.stx_mode),
            mtime: (stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec),
        }
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the size is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn kind(&self) -> u32 {
        self.mode & libc::S_IFMT
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    /// A symbolic link (only from [`symlink_metadata`](super::symlink_metadata)).
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }

    /// The permission bits.
    pub fn permissions(&self) -> Permissions {
        Permissions::from_mode(self.mode & 0o7777)
    }

    /// The last modification time.
    pub fn modified(&self) -> std::io::Result<SystemTime> {
        let (sec, nsec) = self.mtime;
        let t = if sec >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(Duration::new(sec as u64, nsec))
        } else {
            SystemTime::UNIX_EPOCH
                .checked_sub(Duration::new(sec.unsigned_abs(), 0))
                .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nsec))))
        };
        t.ok_or_else(|| std::io::Error::other("modification time out of range"))
    }
}
