//! An in-memory storage that fails on purpose, for tests of the partition log and actor.
//!
//! Every file keeps what it holds now and what it held at its last successful fsync.
//! Faults: fsync returning EIO (data stays volatile), writes failing with ENOSPC (nothing
//! written), a torn write (only the first N bytes land, then an error), and a power cut
//! (every file falls back to its fsynced bytes; a file never fsynced is empty).
//!
//! This is test infrastructure, not broker state: the shared `Mutex` stands for the disk
//! that all open files of one simulated machine share.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::io::{LogFile, Storage};

#[derive(Debug, Default)]
struct SimFile {
    current: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Disk {
    files: BTreeMap<PathBuf, SimFile>,
    dirs: std::collections::BTreeSet<PathBuf>,
    fail_fsync: Option<String>,
    enospc: bool,
    torn_after: Option<u64>,
    syncs: u64,
    /// Writes to paths containing the text block until released.
    stall: Option<(String, Arc<Stall>)>,
    /// The stall blocks reads too (a disk that stopped answering during recovery).
    stall_reads: bool,
}

/// A stalled disk: writers wait on it until it is released. A disk that does not answer
/// blocks the writing thread, so the simulation blocks it too, on a Condvar (test
/// infrastructure like the rest of this file, never broker state).
#[derive(Debug, Default)]
struct Stall {
    released: Mutex<bool>,
    wake: std::sync::Condvar,
    waiting: std::sync::atomic::AtomicUsize,
}

#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    disk: Arc<Mutex<Disk>>,
}

impl SimStorage {
    pub fn new() -> Self {
        SimStorage::default()
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        // A test that panicked while holding the lock poisons it; the data is still usable.
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every file loses what was not fsynced.
    pub fn power_cut(&self) {
        let mut disk = self.disk();
        for file in disk.files.values_mut() {
            file.current = file.durable.clone();
        }
    }

    /// fsync of files whose path contains the text (all files for None) fails with EIO.
    pub fn fail_fsync(&self, path_contains: Option<String>) {
        self.disk().fail_fsync = Some(path_contains.unwrap_or_default());
    }

    pub fn fail_writes_enospc(&self, on: bool) {
        self.disk().enospc = on;
    }

    /// The next write lands only its first `bytes` bytes, then fails.
    pub fn torn_write_after(&self, bytes: u64) {
        self.disk().torn_after = Some(bytes);
    }

    /// Writes to files whose path contains the text block (their thread with them) until
    /// `release_writes`, like a disk that stopped answering.
    pub fn stall_writes(&self, path_contains: &str) {
        self.disk().stall = Some((path_contains.to_string(), Arc::new(Stall::default())));
    }

    /// Like `stall_writes`, for reads as well as writes (recovery reads its segments);
    /// `release_writes` releases both.
    pub fn stall_reads(&self, path_contains: &str) {
        self.stall_writes(path_contains);
        self.disk().stall_reads = true;
    }

    /// Writes (and reads, after `stall_reads`) blocked right now.
    pub fn stalled_writes(&self) -> usize {
        self.disk()
            .stall
            .as_ref()
            .map(|(_, s)| s.waiting.load(std::sync::atomic::Ordering::SeqCst))
            .unwrap_or(0)
    }

    pub fn release_writes(&self) {
        let mut disk = self.disk();
        disk.stall_reads = false;
        if let Some((_, stall)) = disk.stall.take() {
            *stall.released.lock().unwrap_or_else(|e| e.into_inner()) = true;
            stall.wake.notify_all();
        }
    }

    pub fn clear_faults(&self) {
        let mut disk = self.disk();
        disk.fail_fsync = None;
        disk.enospc = false;
        disk.torn_after = None;
    }

    pub fn file_contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.disk().files.get(path).map(|f| f.current.clone())
    }

    /// Replaces a file's contents, durably (as if edited while the broker was down).
    pub fn set_file_contents(&self, path: &Path, contents: Vec<u8>) {
        let mut disk = self.disk();
        let file = disk.files.entry(path.to_path_buf()).or_default();
        file.current = contents.clone();
        file.durable = contents;
    }

    pub fn sync_count(&self) -> u64 {
        self.disk().syncs
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.disk().files.keys().cloned().collect()
    }
}

#[derive(Debug)]
struct SimHandle {
    storage: SimStorage,
    path: PathBuf,
}

fn missing(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl SimHandle {
    /// Blocks the calling thread while a stall covers this file (and reads, for a read).
    fn wait_if_stalled(&self, read: bool) {
        let (stall, stall_reads) = {
            let disk = self.storage.disk();
            (disk.stall.clone(), disk.stall_reads)
        };
        let Some((text, stall)) = stall else { return };
        if (read && !stall_reads) || !self.path.to_string_lossy().contains(&text) {
            return;
        }
        use std::sync::atomic::Ordering;
        stall.waiting.fetch_add(1, Ordering::SeqCst);
        let mut released = stall.released.lock().unwrap_or_else(|e| e.into_inner());
        while !*released {
            released = stall.wake.wait(released).unwrap_or_else(|e| e.into_inner());
        }
        stall.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LogFile for SimHandle {
    fn len(&self) -> io::Result<u64> {
        let disk = self.storage.disk();
        let file = disk
            .files
            .get(&self.path)
            .ok_or_else(|| missing(&self.path))?;
        Ok(file.current.len() as u64)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.wait_if_stalled(false);
        let mut disk = self.storage.disk();
        if disk.enospc {
            return Err(io::Error::from_raw_os_error(28));
        }
        let torn = disk.torn_after.take();
        let file = disk
            .files
            .get_mut(&self.path)
            .ok_or_else(|| missing(&self.path))?;
        let land = match torn {
            Some(n) => (n as usize).min(buf.len()),
            None => buf.len(),
        };
        let pos = pos as usize;
        if file.current.len() < pos + land {
            file.current.resize(pos + land, 0);
        }
        file.current[pos..pos + land].copy_from_slice(&buf[..land]);
        if torn.is_some() {
            return Err(io::Error::other("torn write (simulated)"));
        }
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.wait_if_stalled(true);
        let disk = self.storage.disk();
        let file = disk
            .files
            .get(&self.path)
            .ok_or_else(|| missing(&self.path))?;
        let pos = pos as usize;
        if pos >= file.current.len() {
            return Ok(0);
        }
        let n = buf.len().min(file.current.len() - pos);
        buf[..n].copy_from_slice(&file.current[pos..pos + n]);
        Ok(n)
    }

    fn sync(&self) -> io::Result<()> {
        let mut disk = self.storage.disk();
        if let Some(filter) = &disk.fail_fsync {
            if self.path.to_string_lossy().contains(filter.as_str()) {
                return Err(io::Error::from_raw_os_error(5));
            }
        }
        disk.syncs += 1;
        let file = disk
            .files
            .get_mut(&self.path)
            .ok_or_else(|| missing(&self.path))?;
        file.durable = file.current.clone();
        Ok(())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut disk = self.storage.disk();
        let file = disk
            .files
            .get_mut(&self.path)
            .ok_or_else(|| missing(&self.path))?;
        file.current.resize(len as usize, 0);
        Ok(())
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        for ancestor in path.ancestors() {
            disk.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let disk = self.disk();
        if !disk.dirs.contains(path) {
            return Err(missing(path));
        }
        let mut out: Vec<PathBuf> = disk
            .files
            .keys()
            .chain(disk.dirs.iter())
            .filter(|p| p.parent() == Some(path))
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>> {
        {
            let mut disk = self.disk();
            if !disk.files.contains_key(path) {
                if !create {
                    return Err(missing(path));
                }
                disk.files.insert(path.to_path_buf(), SimFile::default());
            }
        }
        Ok(Arc::new(SimHandle {
            storage: self.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.disk()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| missing(path))
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        disk.files.retain(|p, _| !p.starts_with(path));
        disk.dirs.retain(|p| !p.starts_with(path));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        if let Some(file) = disk.files.remove(from) {
            disk.files.insert(to.to_path_buf(), file);
            return Ok(());
        }
        if !disk.dirs.contains(from) {
            return Err(missing(from));
        }
        let moved_files: Vec<PathBuf> = disk
            .files
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for old in moved_files {
            if let (Some(file), Ok(rest)) = (disk.files.remove(&old), old.strip_prefix(from)) {
                disk.files.insert(to.join(rest), file);
            }
        }
        let moved_dirs: Vec<PathBuf> = disk
            .dirs
            .iter()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for old in moved_dirs {
            disk.dirs.remove(&old);
            if let Ok(rest) = old.strip_prefix(from) {
                disk.dirs.insert(to.join(rest));
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let disk = self.disk();
        disk.files.contains_key(path) || disk.dirs.contains(path)
    }

    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_cut_drops_what_was_not_fsynced() {
        let s = SimStorage::new();
        let f = s.open(Path::new("/a/f"), true).unwrap();
        f.write_at(b"hello", 0).unwrap();
        f.sync().unwrap();
        f.write_at(b" world", 5).unwrap();
        assert_eq!(f.len().unwrap(), 11);
        s.power_cut();
        assert_eq!(s.file_contents(Path::new("/a/f")).unwrap(), b"hello");
    }

    #[test]
    fn faults() {
        let s = SimStorage::new();
        let f = s.open(Path::new("/a/f"), true).unwrap();
        s.fail_fsync(None);
        f.write_at(b"abc", 0).unwrap();
        assert_eq!(f.sync().unwrap_err().raw_os_error(), Some(5));
        s.power_cut();
        assert_eq!(f.len().unwrap(), 0, "a failed fsync made nothing durable");
        s.clear_faults();
        s.fail_writes_enospc(true);
        assert_eq!(f.write_at(b"abc", 0).unwrap_err().raw_os_error(), Some(28));
        s.clear_faults();
        s.torn_write_after(2);
        assert!(f.write_at(b"abcdef", 0).is_err());
        assert_eq!(s.file_contents(Path::new("/a/f")).unwrap(), b"ab");
    }
}
