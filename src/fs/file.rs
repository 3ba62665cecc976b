//! [`File`] and [`OpenOptions`]: an open file whose every call is one op.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::buf::{IoBuf, IoBufMut};
use crate::fd::SharedFd;
use crate::op::{Fallocate, Fsync, Ftruncate, Op, OpenAt, Read, Readv, Statx, Write, Writev};

use super::Metadata;
use super::path::{cstring, with_path};

/// How to open a file, as `std::fs::OpenOptions`.
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// let file = ringloop::fs::OpenOptions::new()
///     .write(true)
///     .create_new(true)
///     .mode(0o600)
///     .open("/tmp/new-file")
///     .await?;
/// # file.close().await }
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Nothing set; mode 0o666 (before the umask).
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, on: bool) -> &mut Self {
        self.read = on;
        self
    }
    /// Open for writing.
    pub fn write(&mut self, on: bool) -> &mut Self {
        self.write = on;
        self
    }
    /// Writes go to the end (`O_APPEND`; implies write).
    pub fn append(&mut self, on: bool) -> &mut Self {
        self.append = on;
        self
    }
    /// Truncate to zero length on open (needs write).
    pub fn truncate(&mut self, on: bool) -> &mut Self {
        self.truncate = on;
        self
    }
    /// Create if missing (needs write or append).
    pub fn create(&mut self, on: bool) -> &mut Self {
        self.create = on;
        self
    }
    /// Create, failing with `AlreadyExists` if it exists (needs write or append).
    pub fn create_new(&mut self, on: bool) -> &mut Self {
        self.create_new = on;
        self
    }
    /// The permission bits of a created file.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }
    /// Extra `open(2)` flags, e.g. `libc::O_DIRECT` (access-mode bits are ignored).
    pub fn custom_flags(&mut self, flags: i32) -> &mut Self {
        self.custom_flags = flags;
        self
    }

    fn flags(&self) -> io::Result<i32> {
        let invalid = |what: &str| {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                what.to_string(),
            ))
        };
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => return invalid("OpenOptions: neither read, write nor append"),
        };
        let writes = self.write || self.append;
        if (self.truncate || self.create || self.create_new) && !writes {
            return invalid("OpenOptions: truncate/create need write or append");
        }
        if self.truncate && self.append {
            return invalid("OpenOptions: truncate and append together");
        }
        let creation = if self.create_new {
            libc::O_CREAT | libc::O_EXCL
        } else {
            (if self.create { libc::O_CREAT } else { 0 })
                | (if self.truncate { libc::O_TRUNC } else { 0 })
        };
        Ok(access | creation | (self.custom_flags & !libc::O_ACCMODE))
    }

    /// Opens `path` (one `OPENAT`).
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref();
        let flags = self.flags()?;
        let fd = Op::new(OpenAt::new(cstring(path)?, flags, self.mode)).await;
        let fd = with_path("open", path, fd)?;
        Ok(File::from_owned(fd, flags & libc::O_DIRECT != 0))
    }
}

/// An open file. Reads and writes name their offset; share it between tasks with an
/// `Rc`. Close it with [`File::close`] (dropping it closes it too, without waiting).
#[derive(Debug)]
pub struct File {
    fd: SharedFd,
    /// `O_DIRECT`: (memory alignment, offset/length alignment) a transfer must keep.
    direct: Option<(usize, usize)>,
}

impl File {
    fn from_owned(fd: OwnedFd, direct: bool) -> File {
        let direct = direct.then(|| crate::sys::fs::dio_alignment(fd.as_raw_fd()));
        File {
            fd: SharedFd::new(fd),
            direct,
        }
    }

    /// Opens `path` read-only.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` write-only, creating it or truncating it.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// The `O_DIRECT` rule: buffer address, length and offset aligned.
    fn check_direct(&self, ptr: usize, len: usize, pos: u64) -> io::Result<()> {
        let Some((mem, off)) = self.direct else {
            return Ok(());
        };
        let (mem, off) = (mem.max(1), off.max(1));
        if !ptr.is_multiple_of(mem) || !len.is_multiple_of(off) || !pos.is_multiple_of(off as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "O_DIRECT needs the buffer address aligned to {mem} and its length and \
                     the offset to {off} bytes (address {ptr:#x}, length {len}, offset {pos}); \
                     use buf::AlignedBuf"
                ),
            ));
        }
        Ok(())
    }

    /// Reads up to the buffer's capacity at `pos`; `Ok(0)` at end of file. A `Vec<u8>`'s
    /// length becomes the count read.
    pub async fn read_at<B: IoBufMut>(&self, mut buf: B, pos: u64) -> (io::Result<usize>, B) {
        if let Err(e) = self.check_direct(buf.stable_mut_ptr() as usize, buf.bytes_total(), pos) {
            return (Err(e), buf);
        }
        Op::new(Read::new(self.fd.clone(), buf, pos).on_file()).await
    }

    /// Writes the buffer's initialized bytes at `pos` (one write: it may be short).
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> (io::Result<usize>, B) {
        if let Err(e) = self.check_direct(buf.stable_ptr() as usize, buf.bytes_init(), pos) {
            return (Err(e), buf);
        }
        Op::new(Write::new(self.fd.clone(), buf, pos).on_file()).await
    }

    /// Fills the whole buffer (its capacity) from `pos`; `UnexpectedEof` if the file ends
    /// first.
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> (io::Result<()>, B) {
        let total = buf.bytes_total();
        let mut slice = buf.slice(0..total);
        let mut done = 0;
        while done < total {
            let rest = slice.into_inner().slice(done..total);
            let (r, s) = self.read_at(rest, pos + done as u64).await;
            slice = s.into_inner().slice(0..total);
            match r {
                Ok(0) => {
                    let mut buf = slice.into_inner();
                    // The reads set the length up to what they wrote; keep what was read.
                    crate::buf::truncate_init(&mut buf, done);
                    let e =
                        io::Error::new(io::ErrorKind::UnexpectedEof, "read_exact_at: end of file");
                    return (Err(e), buf);
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let mut buf = slice.into_inner();
                    crate::buf::truncate_init(&mut buf, done);
                    return (Err(e), buf);
                }
            }
        }
        // The last read ended at `total`, so the buffer's length is `total`.
        (Ok(()), slice.into_inner())
    }

    /// Writes all the buffer's initialized bytes from `pos`, resubmitting short writes.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> (io::Result<()>, B) {
        let total = buf.bytes_init();
        let mut buf = buf;
        let mut done = 0;
        while done < total {
            let (r, s) = self
                .write_at(buf.slice(done..total), pos + done as u64)
                .await;
            buf = s.into_inner();
            match r {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "write_all_at: wrote 0 bytes");
                    return (Err(e), buf);
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Reads into `bufs` in order from `pos` (one `READV`).
    pub async fn readv_at<B: IoBufMut>(
        &self,
        bufs: Vec<B>,
        pos: u64,
    ) -> (io::Result<usize>, Vec<B>) {
        match Readv::new(self.fd.clone(), bufs, pos) {
            Ok(op) => Op::new(op.on_file()).await,
            Err((e, bufs)) => (Err(e), bufs),
        }
    }

    /// Writes `bufs` in order at `pos` (one `WRITEV`; it may be short).
    pub async fn writev_at<B: IoBuf>(&self, bufs: Vec<B>, pos: u64) -> (io::Result<usize>, Vec<B>) {
        match Writev::new(self.fd.clone(), bufs, pos) {
            Ok(op) => Op::new(op.on_file()).await,
            Err((e, bufs)) => (Err(e), bufs),
        }
    }

    /// The whole file from offset 0 (reads until one returns 0).
    pub(crate) async fn read_to_end(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut chunk = Vec::with_capacity(64 * 1024);
        loop {
            let (r, c) = self.read_at(chunk, out.len() as u64).await;
            chunk = c;
            match r? {
                0 => return Ok(out),
                _ => out.extend_from_slice(&chunk),
            }
        }
    }

    /// Flushes data and metadata to the device (`fsync`).
    pub async fn sync_all(&self) -> io::Result<()> {
        Op::new(Fsync::new(self.fd.clone(), false)).await
    }

    /// Flushes data (and what is needed to read it back) to the device (`fdatasync`).
    pub async fn sync_data(&self) -> io::Result<()> {
        Op::new(Fsync::new(self.fd.clone(), true)).await
    }

    /// The file's metadata (`statx` on the fd).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        Op::new(Statx::fd(self.fd.clone()))
            .await
            .map(Metadata::from_statx)
    }

    /// Sets the length: truncates or extends with zeroes (`FTRUNCATE`; on kernels before
    /// 6.9, `ftruncate(2)` on the loop's executor).
    pub async fn set_len(&self, len: u64) -> io::Result<()> {
        let ring_has_it = crate::event_loop::current_driver()?.supports(Ftruncate::CODE);
        if ring_has_it {
            return Op::new(Ftruncate::new(self.fd.clone(), len)).await;
        }
        // A duplicate fd travels to the thread, so a dropped future cannot leave the
        // thread truncating a reused fd number.
        let dup = self.dup()?;
        let event_loop = crate::get_running_loop().map_err(io::Error::other)?;
        let rc = event_loop
            .run_in_executor(move || crate::sys::fs::ftruncate(dup.as_raw_fd(), len))
            .await
            .map_err(io::Error::other)?;
        if rc < 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        Ok(())
    }

    fn dup(&self) -> io::Result<OwnedFd> {
        // The fd is open while `self.fd` lives, which spans this call.
        crate::sys::dup_cloexec(self.fd.raw())
    }

    /// Reserves `len` bytes from `offset` (`fallocate` mode 0: the file grows if needed).
    pub async fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        Op::new(Fallocate::new(self.fd.clone(), 0, offset, len)).await
    }

    /// Closes the file through the ring (`CLOSE`). If reads or writes whose futures were
    /// dropped are still in flight, the last of them closes it and this returns `Ok(())`.
    pub async fn close(self) -> io::Result<()> {
        crate::fd::close_shared(self.fd).await
    }
}

impl AsRawFd for File {
    /// The file's descriptor, for calls ringloop does not wrap (`posix_fadvise`, `flock`).
    /// It stays open while the `File` (or an op on it) lives; do not close it.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.raw()
    }
}
