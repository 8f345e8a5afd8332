//! Producer-id allocation (InitProducerId): ids are handed out from a block whose end is
//! durably recorded first, so a restart continues past every id that may have been used.
//! In a cluster each broker claims blocks through the quorum (`ProducerIdsClaimed`), and a
//! claim is granted only if it starts where the last granted block ended, so ids stay
//! unique across brokers.

use super::record_replay::Commits;
use super::{MetadataRecord, MetadataState, PRODUCER_ID_BLOCK};
use crate::error::MetadataError;

/// The next id to hand out, and (cluster mode) the end of this broker's block.
#[derive(Debug, Default)]
pub(super) struct ProducerIds {
    next: Option<i64>,
    claimed_end: i64,
}

/// Claims lost to other brokers before giving up (each loss means another broker's claim
/// committed in between).
const CLAIM_ATTEMPTS: usize = 10;

impl MetadataState {
    pub(super) async fn allocate_producer_id(&mut self) -> Result<i64, MetadataError> {
        if let Commits::Quorum(cluster) = &self.commits {
            let broker = cluster.node_id;
            return self.allocate_from_claim(broker).await;
        }
        // After a start, ids continue from the recorded block end.
        let next = *self
            .producer_ids
            .next
            .get_or_insert(self.image.producer_id_block_end);
        if next >= self.image.producer_id_block_end {
            self.commit(MetadataRecord::ProducerIdBlock {
                end: next + PRODUCER_ID_BLOCK,
            })
            .await?;
        }
        self.producer_ids.next = Some(next + 1);
        Ok(next)
    }

    async fn allocate_from_claim(&mut self, broker: i32) -> Result<i64, MetadataError> {
        if let Some(next) = self.producer_ids.next {
            if next < self.producer_ids.claimed_end {
                self.producer_ids.next = Some(next + 1);
                return Ok(next);
            }
        }
        for _ in 0..CLAIM_ATTEMPTS {
            let start = self.image.producer_id_block_end;
            let end = start + PRODUCER_ID_BLOCK;
            self.commit(MetadataRecord::ProducerIdsClaimed { broker, start, end })
                .await?;
            if self.image.producer_id_blocks.get(&broker) == Some(&(start, end)) {
                self.producer_ids.next = Some(start + 1);
                self.producer_ids.claimed_end = end;
                return Ok(start);
            }
        }
        Err(MetadataError::Quorum(
            "other brokers kept claiming producer ids first".into(),
        ))
    }
}
