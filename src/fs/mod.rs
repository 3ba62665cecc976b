//! Files through the ring: [`File`], [`OpenOptions`], [`Metadata`] and the `std::fs`-like
//! free functions. Every call is one io_uring op (`OPENAT`, `READ`/`WRITE` at an offset,
//! `READV`/`WRITEV`, `FSYNC`, `STATX`, `FALLOCATE`, `FTRUNCATE`, `UNLINKAT`, `RENAMEAT`,
//! `MKDIRAT`, `SYMLINKAT`, `LINKAT`, `CLOSE`); on the epoll engine the same ops run on
//! pool threads (epoll cannot wait on a regular file), never on the loop's thread. See
//! `docs/files.md`.
//!
//! Reads and writes take an owned buffer and an offset and hand the buffer back, as the
//! rest of the crate does (`crate::buf`); `&self` methods let many tasks share one file
//! through an `Rc`.
//!
//! # Examples
//!
//! ```
//! # fn main() -> Result<(), ringloop::Error> {
//! ringloop::run(async {
//!     let dir = std::env::temp_dir().join(format!("ringloop-doc-{}", std::process::id()));
//!     ringloop::fs::create_dir_all(&dir).await?;
//!     let path = dir.join("hello.txt");
//!     let file = ringloop::fs::File::create(&path).await?;
//!     let (n, _) = file.write_at(b"hello, ring".to_vec(), 0).await;
//!     assert_eq!(n?, 11);
//!     file.sync_all().await?;
//!     file.close().await?;
//!     assert_eq!(ringloop::fs::read(&path).await?, b"hello, ring");
//!     ringloop::fs::remove_file(&path).await?;
//!     ringloop::fs::remove_dir(&dir).await?;
//!     Ok::<_, std::io::Error>(())
//! })??;
//! # Ok(()) }
//! ```

mod file;
mod metadata;
mod path;

pub use file::{File, OpenOptions};
pub use metadata::Metadata;

use std::io;
use std::path::Path;

use crate::op::{LinkAt, MkDirAt, Op, RenameAt, Statx, SymlinkAt, UnlinkAt};
use path::{cstring, with_path};

/// The whole file at `path`.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let file = File::open(path.as_ref()).await?;
    let result = file.read_to_end().await;
    let closed = file.close().await;
    let data = result?;
    closed?;
    Ok(data)
}

/// Writes `contents` to `path`, creating or truncating it.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let file = File::create(path.as_ref()).await?;
    let (result, _) = file.write_all_at(contents.as_ref().to_vec(), 0).await;
    let closed = file.close().await;
    result?;
    closed
}

/// The metadata of `path`, following symlinks.
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref();
    let stx = Op::new(Statx::path(cstring(path)?, true)).await;
    with_path("stat", path, stx).map(Metadata::from_statx)
}

/// The metadata of `path` itself, not following a symlink.
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref();
    let stx = Op::new(Statx::path(cstring(path)?, false)).await;
    with_path("lstat", path, stx).map(Metadata::from_statx)
}

/// Removes a file (or a symlink).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    let r = Op::new(UnlinkAt::new(cstring(path)?, false)).await;
    with_path("remove_file", path, r)
}

/// Removes an empty directory.
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    let r = Op::new(UnlinkAt::new(cstring(path)?, true)).await;
    with_path("remove_dir", path, r)
}

/// Renames `from` to `to`, replacing `to` if it exists.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let r = Op::new(RenameAt::new(cstring(from)?, cstring(to)?)).await;
    with_path("rename", from, r)
}

/// Creates a directory (mode 0o777 before the umask).
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    let r = Op::new(MkDirAt::new(cstring(path)?, 0o777)).await;
    with_path("create_dir", path, r)
}

/// Creates a directory and every missing parent; an existing directory is fine.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    let mut missing = Vec::new();
    let mut at = Some(path);
    while let Some(p) = at {
        if p.as_os_str().is_empty() {
            break;
        }
        match metadata(p).await {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("create_dir_all {}: not a directory", p.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(p),
            Err(e) => return Err(e),
        }
        at = p.parent();
    }
    for p in missing.into_iter().rev() {
        match create_dir(p).await {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
    }
    Ok(())
}

/// Makes `link` a hard link to `original`'s file.
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    let r = Op::new(LinkAt::new(cstring(original)?, cstring(link)?)).await;
    with_path("hard_link", link, r)
}

/// Makes `link` a symbolic link pointing to `original`.
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref(), link.as_ref());
    let r = Op::new(SymlinkAt::new(cstring(original)?, cstring(link)?)).await;
    with_path("symlink", link, r)
}
