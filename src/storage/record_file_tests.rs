//! Tests of `record_file`: replay, torn tails against mid-file corruption, write-time
//! limits, and faults at every step of a rewrite.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::io::{LogFile, Storage};
use super::record_file::{create_store_dir, RecordFile, MAX_RECORD};
use super::sim::SimStorage;
use super::StorageError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Rec {
    A { name: String, n: i32 },
    B(u64),
}

fn open(s: &SimStorage) -> (RecordFile<Rec>, Vec<Rec>, u64) {
    RecordFile::open(Arc::new(s.clone()), PathBuf::from("/m/records")).unwrap()
}

#[test]
fn records_replay_in_order_and_a_torn_tail_is_cut() {
    let s = SimStorage::new();
    let (mut f, replayed, _) = open(&s);
    assert!(replayed.is_empty());
    f.append(&Rec::A {
        name: "x".into(),
        n: 1,
    })
    .unwrap();
    f.append(&Rec::B(7)).unwrap();
    let (_, replayed, cut) = open(&s);
    assert_eq!(
        replayed,
        vec![
            Rec::A {
                name: "x".into(),
                n: 1
            },
            Rec::B(7)
        ]
    );
    assert_eq!(cut, 0);
    let mut bytes = s.file_contents(Path::new("/m/records")).unwrap();
    let whole = bytes.len();
    bytes.truncate(whole - 2);
    s.set_file_contents(Path::new("/m/records"), bytes);
    let (mut f, replayed, cut) = open(&s);
    assert_eq!(replayed.len(), 1);
    assert!(cut > 0);
    f.append(&Rec::B(9)).unwrap();
    let (_, replayed, _) = open(&s);
    assert_eq!(
        replayed,
        vec![
            Rec::A {
                name: "x".into(),
                n: 1
            },
            Rec::B(9)
        ]
    );
}

#[test]
fn a_flipped_byte_and_a_huge_length_are_corruption() {
    let s = SimStorage::new();
    let (mut f, _, _) = open(&s);
    f.append(&Rec::B(1)).unwrap();
    f.append(&Rec::B(2)).unwrap();
    let mut bytes = s.file_contents(Path::new("/m/records")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    s.set_file_contents(Path::new("/m/records"), bytes);
    let (_, replayed, _) = open(&s);
    assert_eq!(replayed, vec![Rec::B(1)]);
    let mut huge = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    huge.extend([0u8; 16]);
    s.set_file_contents(Path::new("/m/records"), huge);
    let (_, replayed, cut) = open(&s);
    assert!(replayed.is_empty());
    assert_eq!(cut, 24);
}

#[test]
fn rewrite_replaces_the_file() {
    let s = SimStorage::new();
    let (mut f, _, _) = open(&s);
    for i in 0..5 {
        f.append(&Rec::B(i)).unwrap();
    }
    f.rewrite(&[Rec::B(42)]).unwrap();
    f.append(&Rec::B(43)).unwrap();
    let (_, replayed, _) = open(&s);
    assert_eq!(replayed, vec![Rec::B(42), Rec::B(43)]);
}

fn frame_len(r: &Rec) -> usize {
    8 + rmp_serde::to_vec_named(r).unwrap().len()
}

#[test]
fn corruption_before_the_end_is_refused_and_only_repair_cuts_it() {
    let s = SimStorage::new();
    let (mut f, _, _) = open(&s);
    for i in 0..3 {
        f.append(&Rec::B(i)).unwrap();
    }
    let path = Path::new("/m/records");
    let whole = s.file_contents(path).unwrap();
    let first = frame_len(&Rec::B(0));
    // A flipped byte inside the second record, valid records after it.
    let mut bytes = whole.clone();
    bytes[first + 9] ^= 0xff;
    s.set_file_contents(path, bytes.clone());
    let err = RecordFile::<Rec>::open(Arc::new(s.clone()), path.to_path_buf()).unwrap_err();
    match &err {
        StorageError::CorruptRecordFile {
            path: p, position, ..
        } => {
            assert_eq!((p.as_path(), *position), (path, first as u64), "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.file_contents(path).unwrap(), bytes, "nothing was cut");
    // A length running past the end, with a valid record after it, is corruption too.
    let mut bytes = whole.clone();
    bytes[first..first + 4].copy_from_slice(&1000u32.to_be_bytes());
    s.set_file_contents(path, bytes);
    assert!(matches!(
        RecordFile::<Rec>::open(Arc::new(s.clone()), path.to_path_buf()),
        Err(StorageError::CorruptRecordFile { .. })
    ));
    // So is a length above the limit in the middle.
    let mut bytes = whole.clone();
    bytes[first..first + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    s.set_file_contents(path, bytes);
    assert!(RecordFile::<Rec>::open(Arc::new(s.clone()), path.to_path_buf()).is_err());
    // Only repair cuts, at the first damage.
    let (mut f, replayed, cut) =
        RecordFile::<Rec>::repair(Arc::new(s.clone()), path.to_path_buf()).unwrap();
    assert_eq!(replayed, vec![Rec::B(0)]);
    assert_eq!(cut as usize, whole.len() - first);
    f.append(&Rec::B(9)).unwrap();
    let (_, replayed, _) = open(&s);
    assert_eq!(replayed, vec![Rec::B(0), Rec::B(9)]);
}

#[test]
fn a_zero_filled_or_garbled_last_frame_is_a_torn_tail() {
    let s = SimStorage::new();
    let path = Path::new("/m/records");
    let (mut f, _, _) = open(&s);
    f.append(&Rec::B(1)).unwrap();
    let good = s.file_contents(path).unwrap();
    // A crash after the file grew but before the data landed: zeros.
    let mut bytes = good.clone();
    bytes.extend([0u8; 100]);
    s.set_file_contents(path, bytes);
    let (_, replayed, cut) = open(&s);
    assert_eq!((replayed, cut), (vec![Rec::B(1)], 100));
    // The last frame whole but for a bad CRC, nothing after it.
    let mut bytes = good.clone();
    let mut last = Vec::new();
    let payload = rmp_serde::to_vec_named(&Rec::B(2)).unwrap();
    last.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    last.extend_from_slice(&0u32.to_be_bytes());
    last.extend_from_slice(&payload);
    bytes.extend_from_slice(&last);
    s.set_file_contents(path, bytes);
    let (_, replayed, _) = open(&s);
    assert_eq!(replayed, vec![Rec::B(1)]);
    assert_eq!(s.file_contents(path).unwrap(), good);
}

#[test]
fn a_record_the_reader_would_refuse_is_refused_at_write_time() {
    let s = SimStorage::new();
    let path = Path::new("/m/records");
    let (mut f, _, _) = open(&s);
    f.append(&Rec::B(1)).unwrap();
    let before = s.file_contents(path).unwrap();
    let huge = Rec::A {
        name: "x".repeat(MAX_RECORD),
        n: 0,
    };
    let err = f.append(&huge).unwrap_err();
    assert!(matches!(err, StorageError::RecordTooLarge { .. }), "{err}");
    assert!(f.rewrite(&[Rec::B(1), huge]).is_err());
    assert_eq!(s.file_contents(path).unwrap(), before, "nothing written");
    f.append(&Rec::B(2)).unwrap();
    let (_, replayed, cut) = open(&s);
    assert_eq!((replayed, cut), (vec![Rec::B(1), Rec::B(2)], 0));
}

/// The steps of a rewrite a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    OpenTmp,
    TruncateTmp,
    WriteTmp,
    SyncTmp,
    Rename,
    SyncDir,
    Reopen,
}

/// SimStorage with what it lacks for rewrites: faults on open, truncate, rename and
/// directory fsync, and inodes. A handle keeps the file it opened: once a rename replaces
/// that file, what the handle writes goes to the unlinked file, never to the path.
/// A test double, not broker state: its clones are the one disk that the record file and
/// the test both see, so the fault plan and the counters are shared through a Mutex.
#[derive(Debug, Clone, Default)]
struct Faulty {
    sim: SimStorage,
    fail: Arc<Mutex<Option<Step>>>,
    generations: Arc<Mutex<HashMap<PathBuf, u64>>>,
    dir_syncs: Arc<Mutex<Vec<PathBuf>>>,
}

impl Faulty {
    fn failing(&self, step: Step) -> io::Result<()> {
        if *self.fail.lock().unwrap() == Some(step) {
            return Err(io::Error::from_raw_os_error(5));
        }
        Ok(())
    }
    fn generation(&self, path: &Path) -> u64 {
        *self.generations.lock().unwrap().get(path).unwrap_or(&0)
    }
}

#[derive(Debug)]
struct FaultyFile {
    storage: Faulty,
    inner: Arc<dyn LogFile>,
    path: PathBuf,
    generation: u64,
}

impl FaultyFile {
    fn unlinked(&self) -> bool {
        self.storage.generation(&self.path) != self.generation
    }
    fn is_tmp(&self) -> bool {
        self.path.extension().is_some_and(|e| e == "tmp")
    }
}

impl LogFile for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        if self.is_tmp() {
            self.storage.failing(Step::WriteTmp)?;
        }
        if self.unlinked() {
            return Ok(()); // lands in a file no path names
        }
        self.inner.write_at(buf, pos)
    }
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn sync(&self) -> io::Result<()> {
        if self.is_tmp() {
            self.storage.failing(Step::SyncTmp)?;
        }
        if self.unlinked() {
            return Ok(());
        }
        self.inner.sync()
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        if self.is_tmp() {
            self.storage.failing(Step::TruncateTmp)?;
        }
        if self.unlinked() {
            return Ok(());
        }
        self.inner.truncate(len)
    }
}

impl Storage for Faulty {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.sim.create_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        self.sim.list_dir(path)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn LogFile>> {
        if path.extension().is_some_and(|e| e == "tmp") {
            self.failing(Step::OpenTmp)?;
        } else if !create {
            self.failing(Step::Reopen)?;
        }
        Ok(Arc::new(FaultyFile {
            storage: self.clone(),
            inner: self.sim.open(path, create)?,
            path: path.to_path_buf(),
            generation: self.generation(path),
        }))
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.sim.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.sim.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.failing(Step::Rename)?;
        self.sim.rename(from, to)?;
        *self
            .generations
            .lock()
            .unwrap()
            .entry(to.to_path_buf())
            .or_default() += 1;
        Ok(())
    }
    fn exists(&self, path: &Path) -> bool {
        self.sim.exists(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.failing(Step::SyncDir)?;
        self.dir_syncs.lock().unwrap().push(path.to_path_buf());
        self.sim.sync_dir(path)
    }
}

#[test]
fn a_failed_rewrite_never_leaves_appends_going_to_the_replaced_file() {
    use Step::*;
    for step in [
        OpenTmp,
        TruncateTmp,
        WriteTmp,
        SyncTmp,
        Rename,
        SyncDir,
        Reopen,
    ] {
        let storage = Faulty::default();
        let path = PathBuf::from("/m/records");
        let (mut f, _, _) =
            RecordFile::<Rec>::open(Arc::new(storage.clone()), path.clone()).unwrap();
        for i in 0..5 {
            f.append(&Rec::B(i)).unwrap();
        }
        *storage.fail.lock().unwrap() = Some(step);
        assert!(f.rewrite(&[Rec::B(42)]).is_err(), "{step:?}");
        *storage.fail.lock().unwrap() = None;
        let acknowledged = f.append(&Rec::B(43)).is_ok();
        let (_, replayed, _) =
            RecordFile::<Rec>::open(Arc::new(storage.clone()), path.clone()).unwrap();
        if acknowledged {
            assert_eq!(replayed.last(), Some(&Rec::B(43)), "{step:?}: {replayed:?}");
        }
        let old: Vec<Rec> = (0..5).map(Rec::B).collect();
        let kept = replayed
            .iter()
            .filter(|r| **r != Rec::B(43))
            .cloned()
            .collect::<Vec<_>>();
        assert!(
            kept == old || kept == vec![Rec::B(42)],
            "{step:?}: {replayed:?}"
        );
        // Before the rename the store stays writable; after it, it refuses writes.
        let after_rename = matches!(step, SyncDir | Reopen);
        assert_eq!(f.is_failed(), after_rename, "{step:?}");
        assert_eq!(acknowledged, !after_rename, "{step:?}");
    }
}

#[test]
fn creating_a_record_file_and_its_directory_fsyncs_their_parents() {
    let storage = Faulty::default();
    let dyn_storage: Arc<dyn Storage> = Arc::new(storage.clone());
    create_store_dir(dyn_storage.as_ref(), Path::new("/data/__meta")).unwrap();
    let path = PathBuf::from("/data/__meta/topics.log");
    RecordFile::<Rec>::open(dyn_storage.clone(), path.clone()).unwrap();
    assert_eq!(
        *storage.dir_syncs.lock().unwrap(),
        vec![
            PathBuf::from("/"),
            PathBuf::from("/data"),
            PathBuf::from("/data/__meta")
        ]
    );
    // An fsync that fails is an error, not ignored.
    *storage.fail.lock().unwrap() = Some(Step::SyncDir);
    assert!(create_store_dir(dyn_storage.as_ref(), Path::new("/data/__groups")).is_err());
    assert!(
        RecordFile::<Rec>::open(dyn_storage.clone(), PathBuf::from("/data/__meta/other.log"))
            .is_err()
    );
    // Reopening an existing file needs no directory fsync.
    assert!(RecordFile::<Rec>::open(dyn_storage, path).is_ok());
}
