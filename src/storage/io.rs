//! The storage seam: every file operation of the partition log and the record files goes
//! through `Storage` and `LogFile`, so tests can put a failing implementation (`sim`) under
//! a real partition actor. `FileStorage` is the production one: plain `std::fs` with
//! positioned reads and writes (pread/pwrite), no buffering of its own.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One open file. Shared (`Arc`) so an fsync can run on another thread while the owner
/// keeps appending.
#[allow(clippy::len_without_is_empty)] // a file length that can fail; emptiness is not asked
pub trait LogFile: Send + Sync + Debug {
    fn len(&self) -> io::Result<u64>;
    /// Writes all of `buf` at `pos`, or fails.
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// May return fewer bytes than asked at the end of the file.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    fn sync(&self) -> io::Result<()>;
    fn truncate(&self, len: u64) -> io::Result<()>;

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(&mut buf[done..], pos + done as u64)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ends before the bytes asked for",
                ));
            }
            done += n;
        }
        Ok(())
    }
}

pub trait Storage: Send + Sync + Debug + 'static {
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Full paths of the directory's entries, sorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn exists(&self, path: &Path) -> bool;
    /// fsync of a directory, so a created or renamed entry survives a power loss.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// True where blocking work on this storage (fsync, deletion, cleaning) runs on the
    /// caller's runtime as a task rather than on a blocking thread: a simulated disk,
    /// whose operations are in memory, in a simulation that must not depend on threads.
    fn runs_inline(&self) -> bool {
        false
    }
}

/// Runs blocking storage work as `tokio::task::spawn_blocking` does, or as a task on the
/// current runtime where `storage.runs_inline()`.
pub fn spawn_blocking<T: Send + 'static>(
    storage: &dyn Storage,
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    if storage.runs_inline() {
        tokio::spawn(async move { work() })
    } else {
        tokio::task::spawn_blocking(work)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FileStorage;

#[derive(Debug)]
struct PlainFile(File);

impl LogFile for PlainFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.0.write_all_at(buf, pos)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, pos)
    }
    fn sync(&self) -> io::Result<()> {
        crate::metrics::fsync(|| self.0.sync_data())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

impl Storage for FileStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut entries = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort();
        Ok(entries)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(PlainFile(file)))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let dir = File::open(path)?;
        crate::metrics::fsync(|| dir.sync_all())
    }
}

/// The directory to fsync for a path's entry ("." for a bare relative name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `path` and any missing parents, and fsyncs each created one's parent, so the
/// directory survives a power cut (as Kafka does for a new log dir).
pub fn create_dir_durable(storage: &dyn Storage, path: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = path
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| !storage.exists(a))
        .collect();
    storage.create_dir_all(path)?;
    for dir in missing.iter().rev() {
        storage.sync_dir(parent_dir(dir))?;
    }
    Ok(())
}

/// Removes a file no acknowledged record depends on: a segment already moved aside or
/// dropped from the log, a temporary file, an index (derived data, rebuilt when missing).
/// A failure leaves only a stray file behind, so it is logged, not returned; a file that
/// is already gone is no failure.
pub fn remove_leftover(storage: &dyn Storage, path: &Path) {
    match storage.remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "Could not remove a leftover file; it stays on disk.")
        }
    }
}

/// EMFILE or ENFILE: too many open files, a pressure that passes; not a disk fault.
pub fn is_out_of_files(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// (total, usable) bytes of the file system holding `path`, as statvfs reports them
/// (usable: what an unprivileged writer may still use); None where it cannot be read.
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs reads a NUL-terminated path and writes one struct we own.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) };
    if rc != 0 {
        return None;
    }
    let unit = stats.f_frsize as u64;
    Some((
        (stats.f_blocks as u64).saturating_mul(unit),
        (stats.f_bavail as u64).saturating_mul(unit),
    ))
}

#[cfg(test)]
mod disk_space_tests {
    #[test]
    fn the_temp_dir_has_a_size_and_room() {
        let dir = tempfile::tempdir().unwrap();
        let (total, usable) = super::disk_space(dir.path()).expect("statvfs");
        assert!(total > 0 && usable <= total, "{total} {usable}");
        assert!(super::disk_space(&dir.path().join("missing")).is_none());
    }
}
