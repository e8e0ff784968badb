//! Reading operator-supplied files safely: only regular files (a FIFO or
//! `/dev/zero` would hang or exhaust memory), and never more than a limit.

use std::io::Read;
use std::path::Path;

/// Reads `path` whole if it is a regular file of at most `limit` bytes.
/// Errors name the problem in words; callers add the path.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    check_regular(path)?;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    // One byte past the limit tells "too large" from "exactly the limit",
    // even if the file grows while it is read.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!("it is larger than the limit of {limit} bytes")));
    }
    Ok(bytes)
}

/// Refuses anything but a regular file (after following symlinks).
pub fn check_regular(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(std::io::Error::other("it is a directory, not a file"));
    }
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file (a device, FIFO or socket)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_oversized_files_are_refused() {
        let err = read_regular(Path::new("/dev/zero"), 10).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        assert!(read_regular(dir.path(), 10).unwrap_err().to_string().contains("directory"));
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"12345");
        assert!(read_regular(&file, 4).unwrap_err().to_string().contains("larger than the limit of 4 bytes"));
    }
}
