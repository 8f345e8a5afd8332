//! Building log checkpoints (a child module of `log`; the file format and the reading side
//! are in `log_checkpoint`).

use super::PartitionLog;
use crate::storage::log_checkpoint::{CheckpointWrite, LogCheckpoint};
use crate::storage::producer_state::ProducerStateTable;
use crate::storage::segment::file_name;

impl PartitionLog {
    /// A checkpoint at the start of the active segment: every closed segment (with its
    /// index files when `with_indexes`: they were not written since it was read) and the
    /// producer state as of now.
    pub(super) fn checkpoint_of_closed(
        &mut self,
        with_indexes: bool,
        producers: ProducerStateTable,
    ) -> CheckpointWrite {
        // After a cleaning swap the closed segments' index files are gone: write them all.
        let with_indexes = with_indexes || std::mem::take(&mut self.closed_indexes_stale);
        let first = self.segments[0].base_offset;
        let closed = &self.segments[..self.segments.len() - 1];
        let mut indexes = Vec::new();
        for segment in closed.iter().filter(|_| with_indexes) {
            let (_, index, time_index) = segment.summary();
            indexes.push((
                self.dir.join(file_name(segment.base_offset, "index")),
                index,
            ));
            indexes.push((
                self.dir.join(file_name(segment.base_offset, "timeindex")),
                time_index,
            ));
        }
        CheckpointWrite {
            dir: self.dir.clone(),
            indexes,
            checkpoint: LogCheckpoint {
                recovery_point: self.active().base_offset,
                segments: self
                    .closed
                    .iter()
                    .filter(|s| s.base_offset >= first)
                    .cloned()
                    .collect(),
                producers,
            },
        }
    }

    /// A checkpoint at the log end: the closed segments, the active one as far as it is
    /// written, and the producer state now. Valid once everything written is durable.
    pub(super) fn checkpoint_at_end(&mut self) -> CheckpointWrite {
        let mut write = self.checkpoint_of_closed(false, self.producers.clone());
        let (summary, index, time_index) = self.active().summary();
        let base = summary.base_offset;
        write
            .indexes
            .push((self.dir.join(file_name(base, "index")), index));
        write
            .indexes
            .push((self.dir.join(file_name(base, "timeindex")), time_index));
        write.checkpoint.segments.push(summary);
        write.checkpoint.recovery_point = self.log_end_offset();
        if let Some(older) = self.pending_checkpoint.take() {
            write.absorb(older);
        }
        write
    }
}
