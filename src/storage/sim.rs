//! An in-memory storage that fails on purpose, for tests of the partition log and actor.
//!
//! Every file keeps what it holds now and what it held at its last successful fsync.
//! Faults: fsync returning EIO (data stays volatile), writes failing with ENOSPC (nothing
//! written), a torn write (only the first N bytes land, then an error), and a power cut
//! (every file falls back to its fsynced bytes; a file never fsynced is empty; with
//! `track_directory_entries`, every directory also falls back to the entries it held at its
//! last fsync, so an unsynced create, rename or delete is undone). Also EMFILE on open and
//! stalled writes or fsyncs.
//!
//! This is test infrastructure, not broker state: the shared `Mutex` stands for the disk
//! that all open files of one simulated machine share.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::io::{LogFile, Storage};

#[derive(Debug, Default)]
struct SimFile {
    current: Vec<u8>,
    durable: Vec<u8>,
}

/// A directory entry: a file's or a directory's inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir(u64),
}

/// One directory: its entries now, and as of its last fsync.
#[derive(Debug, Default, Clone)]
struct DirNode {
    current: BTreeMap<OsString, Entry>,
    durable: BTreeMap<OsString, Entry>,
}

const ROOT: u64 = 0;

#[derive(Debug)]
struct Disk {
    /// Blocking work runs as a task on the caller's runtime (`Storage::runs_inline`): set
    /// by a whole-cluster simulation, never with stalled syncs (a stall blocks its thread).
    inline: bool,
    /// Inodes: an unlinked file stays readable through its open handles, as on a real disk.
    files: BTreeMap<u64, SimFile>,
    dirs: BTreeMap<u64, DirNode>,
    next_inode: u64,
    /// A power cut also undoes directory entries (create, rename, delete) not fsynced.
    track_entries: bool,
    fail_fsync: Option<String>,
    fail_dir_sync: Option<String>,
    enospc: bool,
    emfile: bool,
    torn_after: Option<u64>,
    syncs: u64,
    dir_syncs: u64,
    /// Writes to paths containing the text block until released.
    stall: Option<(String, Arc<Stall>)>,
    /// fsyncs of paths containing the text block until released.
    sync_stall: Option<(String, Arc<Stall>)>,
    /// The write stall blocks reads too (a disk that stopped answering during recovery).
    stall_reads: bool,
}

impl Default for Disk {
    fn default() -> Self {
        Disk {
            inline: false,
            files: BTreeMap::new(),
            dirs: BTreeMap::from([(ROOT, DirNode::default())]),
            next_inode: ROOT + 1,
            track_entries: false,
            fail_fsync: None,
            fail_dir_sync: None,
            enospc: false,
            emfile: false,
            torn_after: None,
            syncs: 0,
            dir_syncs: 0,
            stall: None,
            sync_stall: None,
            stall_reads: false,
        }
    }
}

fn names(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect()
}

impl Disk {
    fn lookup(&self, path: &Path) -> Option<Entry> {
        let mut entry = Entry::Dir(ROOT);
        for name in names(path) {
            let Entry::Dir(dir) = entry else {
                return None;
            };
            entry = *self.dirs.get(&dir)?.current.get(&name)?;
        }
        Some(entry)
    }

    fn dir_of(&self, path: &Path) -> Option<u64> {
        match self.lookup(path)? {
            Entry::Dir(id) => Some(id),
            Entry::File(_) => None,
        }
    }

    fn inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }

    /// Creates every missing directory on the way (create_dir_all).
    fn mkdirs(&mut self, path: &Path) -> io::Result<u64> {
        let mut dir = ROOT;
        for name in names(path) {
            let found = self
                .dirs
                .get(&dir)
                .and_then(|d| d.current.get(&name))
                .copied();
            dir = match found {
                Some(Entry::Dir(id)) => id,
                Some(Entry::File(_)) => {
                    return Err(io::Error::other(format!(
                        "{} is a file on the way",
                        path.display()
                    )))
                }
                None => {
                    let id = self.inode();
                    self.dirs.insert(id, DirNode::default());
                    if let Some(parent) = self.dirs.get_mut(&dir) {
                        parent.current.insert(name, Entry::Dir(id));
                    }
                    id
                }
            };
        }
        Ok(dir)
    }

    /// The parent directory's inode (created if missing) and the last name.
    fn parent_of(&mut self, path: &Path) -> io::Result<(u64, OsString)> {
        let name = path
            .file_name()
            .ok_or_else(|| missing(path))?
            .to_os_string();
        let parent = self.mkdirs(path.parent().unwrap_or(Path::new("/")))?;
        Ok((parent, name))
    }

    fn unlink(&mut self, path: &Path) -> Option<Entry> {
        let name = path.file_name()?;
        let parent = self.dir_of(path.parent()?)?;
        self.dirs.get_mut(&parent)?.current.remove(name)
    }

    fn file_mut(&mut self, inode: u64, path: &Path) -> io::Result<&mut SimFile> {
        self.files.get_mut(&inode).ok_or_else(|| missing(path))
    }

    fn walk_files(&self, dir: u64, at: PathBuf, out: &mut Vec<PathBuf>) {
        let Some(node) = self.dirs.get(&dir) else {
            return;
        };
        for (name, entry) in &node.current {
            match entry {
                Entry::File(_) => out.push(at.join(name)),
                Entry::Dir(id) => self.walk_files(*id, at.join(name), out),
            }
        }
    }
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

impl Stall {
    fn wait_if_matches(stall: Option<(String, Arc<Stall>)>, path: &Path) {
        let Some((text, stall)) = stall else {
            return;
        };
        if !path.to_string_lossy().contains(&text) {
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

    fn waiting(stall: &Option<(String, Arc<Stall>)>) -> usize {
        stall
            .as_ref()
            .map(|(_, s)| s.waiting.load(std::sync::atomic::Ordering::SeqCst))
            .unwrap_or(0)
    }

    fn release(stall: Option<(String, Arc<Stall>)>) {
        if let Some((_, stall)) = stall {
            *stall.released.lock().unwrap_or_else(|e| e.into_inner()) = true;
            stall.wake.notify_all();
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    disk: Arc<Mutex<Disk>>,
}

impl SimStorage {
    pub fn new() -> Self {
        SimStorage::default()
    }

    /// For a deterministic simulation: blocking work on this disk runs as a task on the
    /// current runtime instead of on a blocking thread. Not with `stall_syncs`, whose
    /// stall would then block the runtime's thread.
    pub fn run_inline(&self) {
        self.disk().inline = true;
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        // A test that panicked while holding the lock poisons it; the data is still usable.
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on a power cut also undoes every directory entry (a create, rename or
    /// delete) whose directory was not fsynced after it. What exists now counts as durable.
    pub fn track_directory_entries(&self) {
        let mut disk = self.disk();
        disk.track_entries = true;
        for node in disk.dirs.values_mut() {
            node.durable = node.current.clone();
        }
    }

    /// Every file loses what was not fsynced (and, when tracked, every directory the
    /// entries it did not fsync).
    pub fn power_cut(&self) {
        let mut disk = self.disk();
        for file in disk.files.values_mut() {
            file.current = file.durable.clone();
        }
        if disk.track_entries {
            for node in disk.dirs.values_mut() {
                node.current = node.durable.clone();
            }
        }
    }

    /// fsync of files whose path contains the text (all files for None) fails with EIO.
    pub fn fail_fsync(&self, path_contains: Option<String>) {
        self.disk().fail_fsync = Some(path_contains.unwrap_or_default());
    }

    /// fsync of directories whose path contains the text fails with EIO.
    pub fn fail_dir_sync(&self, path_contains: &str) {
        self.disk().fail_dir_sync = Some(path_contains.to_string());
    }

    pub fn fail_writes_enospc(&self, on: bool) {
        self.disk().enospc = on;
    }

    /// Opening any file fails with EMFILE (too many open files) while on.
    pub fn fail_opens_emfile(&self, on: bool) {
        self.disk().emfile = on;
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

    /// fsyncs of files and directories whose path contains the text block until
    /// `release_writes`.
    pub fn stall_syncs(&self, path_contains: &str) {
        self.disk().sync_stall = Some((path_contains.to_string(), Arc::new(Stall::default())));
    }

    /// Like `stall_writes`, for reads as well as writes (recovery reads its segments);
    /// `release_writes` releases both.
    pub fn stall_reads(&self, path_contains: &str) {
        self.stall_writes(path_contains);
        self.disk().stall_reads = true;
    }

    /// Writes (and reads, after `stall_reads`) blocked by `stall_writes` right now.
    pub fn stalled_writes(&self) -> usize {
        Stall::waiting(&self.disk().stall)
    }

    /// fsyncs blocked by `stall_syncs` right now.
    pub fn stalled_syncs(&self) -> usize {
        Stall::waiting(&self.disk().sync_stall)
    }

    /// Releases stalled writes and fsyncs.
    pub fn release_writes(&self) {
        let (writes, syncs) = {
            let mut disk = self.disk();
            disk.stall_reads = false;
            (disk.stall.take(), disk.sync_stall.take())
        };
        Stall::release(writes);
        Stall::release(syncs);
    }

    pub fn clear_faults(&self) {
        let mut disk = self.disk();
        disk.fail_fsync = None;
        disk.fail_dir_sync = None;
        disk.enospc = false;
        disk.emfile = false;
        disk.torn_after = None;
    }

    pub fn file_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.disk();
        match disk.lookup(path)? {
            Entry::File(inode) => disk.files.get(&inode).map(|f| f.current.clone()),
            Entry::Dir(_) => None,
        }
    }

    /// Replaces a file's contents, durably (as if edited while the broker was down).
    pub fn set_file_contents(&self, path: &Path, contents: Vec<u8>) {
        let mut disk = self.disk();
        let inode = match disk.lookup(path) {
            Some(Entry::File(inode)) => inode,
            _ => {
                let Ok((parent, name)) = disk.parent_of(path) else {
                    return;
                };
                let inode = disk.inode();
                if let Some(node) = disk.dirs.get_mut(&parent) {
                    node.current.insert(name, Entry::File(inode));
                }
                inode
            }
        };
        let file = disk.files.entry(inode).or_default();
        file.current = contents.clone();
        file.durable = contents;
        // The path, every directory on it included, is durable too.
        let mut dir = ROOT;
        for name in names(path) {
            let Some(node) = disk.dirs.get_mut(&dir) else {
                break;
            };
            let Some(entry) = node.current.get(&name).copied() else {
                break;
            };
            node.durable.insert(name, entry);
            match entry {
                Entry::Dir(id) => dir = id,
                Entry::File(_) => break,
            }
        }
    }

    pub fn sync_count(&self) -> u64 {
        self.disk().syncs
    }

    pub fn dir_sync_count(&self) -> u64 {
        self.disk().dir_syncs
    }

    /// Every file reachable now, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let disk = self.disk();
        let mut out = Vec::new();
        disk.walk_files(ROOT, PathBuf::from("/"), &mut out);
        out.sort();
        out
    }
}

#[derive(Debug)]
struct SimHandle {
    storage: SimStorage,
    /// The path it was opened by (fault filters match it).
    path: PathBuf,
    inode: u64,
}

fn missing(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", path.display()),
    )
}

impl LogFile for SimHandle {
    fn len(&self) -> io::Result<u64> {
        let mut disk = self.storage.disk();
        Ok(disk.file_mut(self.inode, &self.path)?.current.len() as u64)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let stall = self.storage.disk().stall.clone();
        Stall::wait_if_matches(stall, &self.path);
        let mut disk = self.storage.disk();
        if disk.enospc {
            return Err(io::Error::from_raw_os_error(28));
        }
        let torn = disk.torn_after.take();
        let file = disk.file_mut(self.inode, &self.path)?;
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
        let stall = {
            let disk = self.storage.disk();
            disk.stall.clone().filter(|_| disk.stall_reads)
        };
        Stall::wait_if_matches(stall, &self.path);
        let mut disk = self.storage.disk();
        let file = disk.file_mut(self.inode, &self.path)?;
        let pos = pos as usize;
        if pos >= file.current.len() {
            return Ok(0);
        }
        let n = buf.len().min(file.current.len() - pos);
        buf[..n].copy_from_slice(&file.current[pos..pos + n]);
        Ok(n)
    }

    fn sync(&self) -> io::Result<()> {
        let stall = self.storage.disk().sync_stall.clone();
        Stall::wait_if_matches(stall, &self.path);
        let mut disk = self.storage.disk();
        if let Some(filter) = &disk.fail_fsync {
            if self.path.to_string_lossy().contains(filter.as_str()) {
                return Err(io::Error::from_raw_os_error(5));
            }
        }
        disk.syncs += 1;
        let file = disk.file_mut(self.inode, &self.path)?;
        file.durable = file.current.clone();
        Ok(())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut disk = self.storage.disk();
        let file = disk.file_mut(self.inode, &self.path)?;
        file.current.resize(len as usize, 0);
        Ok(())
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk().mkdirs(path).map(|_| ())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let disk = self.disk();
        let dir = disk.dir_of(path).ok_or_else(|| missing(path))?;
        let node = disk.dirs.get(&dir).ok_or_else(|| missing(path))?;
        // BTreeMap order: sorted by name, so sorted as paths.
        Ok(node.current.keys().map(|n| path.join(n)).collect())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>> {
        let mut disk = self.disk();
        if disk.emfile {
            return Err(io::Error::from_raw_os_error(24));
        }
        let inode = match disk.lookup(path) {
            Some(Entry::File(inode)) => inode,
            Some(Entry::Dir(_)) => return Err(io::Error::other("is a directory")),
            None if !create => return Err(missing(path)),
            None => {
                let (parent, name) = disk.parent_of(path)?;
                let inode = disk.inode();
                disk.files.insert(inode, SimFile::default());
                if let Some(node) = disk.dirs.get_mut(&parent) {
                    node.current.insert(name, Entry::File(inode));
                }
                inode
            }
        };
        Ok(Arc::new(SimHandle {
            storage: self.clone(),
            path: path.to_path_buf(),
            inode,
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        match disk.lookup(path) {
            Some(Entry::File(_)) => disk.unlink(path).map(|_| ()).ok_or_else(|| missing(path)),
            _ => Err(missing(path)),
        }
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk().unlink(path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        let entry = disk.unlink(from).ok_or_else(|| missing(from))?;
        let (parent, name) = disk.parent_of(to)?;
        if let Some(node) = disk.dirs.get_mut(&parent) {
            node.current.insert(name, entry);
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        self.disk().lookup(path).is_some()
    }

    fn runs_inline(&self) -> bool {
        self.disk().inline
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let stall = self.disk().sync_stall.clone();
        Stall::wait_if_matches(stall, path);
        let mut disk = self.disk();
        if let Some(filter) = &disk.fail_dir_sync {
            if path.to_string_lossy().contains(filter.as_str()) {
                return Err(io::Error::from_raw_os_error(5));
            }
        }
        let dir = disk.dir_of(path).ok_or_else(|| missing(path))?;
        disk.dir_syncs += 1;
        if let Some(node) = disk.dirs.get_mut(&dir) {
            node.durable = node.current.clone();
        }
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
    fn power_cut_undoes_unsynced_directory_entries() {
        let s = SimStorage::new();
        s.create_dir_all(Path::new("/d/a")).unwrap();
        s.track_directory_entries();
        s.open(Path::new("/d/a/new"), true).unwrap();
        s.rename(Path::new("/d/a"), Path::new("/d/b")).unwrap();
        s.power_cut();
        assert!(s.exists(Path::new("/d/a")), "the unsynced rename is undone");
        assert!(
            !s.exists(Path::new("/d/a/new")),
            "the unsynced create is undone"
        );
        s.open(Path::new("/d/a/kept"), true).unwrap();
        s.sync_dir(Path::new("/d/a")).unwrap();
        s.rename(Path::new("/d/a"), Path::new("/d/b")).unwrap();
        s.sync_dir(Path::new("/d")).unwrap();
        s.power_cut();
        assert!(
            s.exists(Path::new("/d/b/kept")),
            "a synced rename keeps its contents"
        );
        assert!(!s.exists(Path::new("/d/a")));
        s.remove_file(Path::new("/d/b/kept")).unwrap();
        s.power_cut();
        assert!(
            s.exists(Path::new("/d/b/kept")),
            "an unsynced delete is undone"
        );
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
