//! Paths to owned C strings, and errors that name the path.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `path` as an owned C string; a NUL byte in it is `InvalidInput`.
pub(crate) fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {:?} contains a NUL byte", path.display()),
        )
    })
}

/// `result` with `op` and `path` in its error message (the kind is kept).
pub(crate) fn with_path<T>(op: &str, path: &Path, result: io::Result<T>) -> io::Result<T> {
    result.map_err(|e| io::Error::new(e.kind(), format!("{op} {}: {e}", path.display())))
}
