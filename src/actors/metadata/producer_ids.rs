//! Producer-id allocation (InitProducerId): ids are handed out from a block whose end is
//! durably recorded first, so a restart continues past every id that may have been used.

use super::{MetadataRecord, MetadataState, PRODUCER_ID_BLOCK};
use crate::error::MetadataError;

/// The next id to hand out; the block it comes from is `MetadataImage::producer_id_block_end`.
#[derive(Debug, Default)]
pub(super) struct ProducerIds {
    next: Option<i64>,
}

impl MetadataState {
    pub(super) fn allocate_producer_id(&mut self) -> Result<i64, MetadataError> {
        // After a start, ids continue from the recorded block end.
        let next = *self
            .producer_ids
            .next
            .get_or_insert(self.image.producer_id_block_end);
        if next >= self.image.producer_id_block_end {
            self.commit(MetadataRecord::ProducerIdBlock {
                end: next + PRODUCER_ID_BLOCK,
            })?;
        }
        self.producer_ids.next = Some(next + 1);
        Ok(next)
    }
}
