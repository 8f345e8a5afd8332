//! Quarantine: segments that recovery cannot keep (they follow a cut: a corrupt batch in
//! the middle of the log, a missing segment, an overlap) are moved into the partition's
//! `quarantine/` folder instead of deleted, so nothing is lost silently. An operator can
//! inspect them; `broker check` lists them. The log itself is cut as Kafka cuts it.

use std::path::{Path, PathBuf};

use tracing::error;

use super::io::{create_dir_durable, Storage};
use super::segment::file_name;
use super::StorageError;

/// The folder, inside a partition's directory, that quarantined segment files go to.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A segment recovery moved aside: its base offset, and the next segment's base offset
/// when there was one (the offsets it held are below that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quarantined {
    pub base_offset: i64,
    pub next_base_offset: Option<i64>,
}

/// Moves the segments' files (log and indexes) into `dir/quarantine/`, fsyncs both
/// directories, logs one error naming the files and offsets, and counts them. A name
/// already taken in quarantine gets a numeric suffix: earlier quarantines are kept.
pub fn quarantine_segments(
    storage: &dyn Storage,
    dir: &Path,
    segments: &[Quarantined],
    reason: &str,
) -> Result<Vec<PathBuf>, StorageError> {
    if segments.is_empty() {
        return Ok(Vec::new());
    }
    let target = dir.join(QUARANTINE_DIR);
    create_dir_durable(storage, &target).map_err(|e| StorageError::io(&target, e))?;
    let mut moved = Vec::new();
    for segment in segments {
        for ext in ["log", "index", "timeindex"] {
            let from = dir.join(file_name(segment.base_offset, ext));
            if !storage.exists(&from) {
                continue;
            }
            let name = file_name(segment.base_offset, ext);
            let mut to = target.join(&name);
            let mut n = 1;
            while storage.exists(&to) {
                to = target.join(format!("{name}.{n}"));
                n += 1;
            }
            storage
                .rename(&from, &to)
                .map_err(|e| StorageError::io(&from, e))?;
            moved.push(to);
        }
    }
    // Both entries (gone from the log, present in quarantine) must survive a power cut.
    storage
        .sync_dir(&target)
        .map_err(|e| StorageError::io(&target, e))?;
    storage
        .sync_dir(dir)
        .map_err(|e| StorageError::io(dir, e))?;
    let offsets: Vec<String> = segments
        .iter()
        .map(|s| match s.next_base_offset {
            Some(next) => format!("{}..{}", s.base_offset, next - 1),
            None => format!("{}..", s.base_offset),
        })
        .collect();
    let files: Vec<String> = moved.iter().map(|p| p.display().to_string()).collect();
    error!(
        dir = %dir.display(),
        reason,
        offsets = %offsets.join(", "),
        files = %files.join(", "),
        "Recovery cut the log; the segments after the cut were moved into quarantine, not deleted."
    );
    crate::metrics::quarantined_segments(segments.len());
    Ok(moved)
}

/// Files in a partition's quarantine folder (empty when there is none).
pub fn quarantined_files(storage: &dyn Storage, dir: &Path) -> Vec<PathBuf> {
    let target = dir.join(QUARANTINE_DIR);
    if !storage.exists(&target) {
        return Vec::new();
    }
    storage.list_dir(&target).unwrap_or_default()
}
