//! The records of the internal topic `__transaction_state` (cluster mode): which partition
//! holds a transactional id (Kafka's `abs(transactionalId.hashCode) %
//! transaction.state.log.num.partitions`), how a transaction's state becomes a keyed
//! record, and how a partition's records replay into every id's state when a broker
//! becomes that partition's leader.
//!
//! As in Kafka, one key per transactional id, its latest value wins (the topic is
//! compacted) and a tombstone removes an expired id. Keys and values are MessagePack
//! (rmp-serde) of the types below, like `__consumer_offsets`' records here, not Kafka's
//! binary schemas: tools that decode Kafka's own `__transaction_state` cannot read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::internal_topic::for_each_keyed_record;
use super::offsets_topic::KeyedRecord;
use crate::actors::txn_messages::TxnMetadata;
use crate::storage::StorageError;

/// The internal topic's name, as in Kafka.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The largest decompressed batch body replay accepts (a batch this broker wrote holds one
/// transaction's state: its partitions and groups, far below this).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A record's key: the transactional id (versioned like Kafka's key schema, so another
/// key kind can follow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnKey {
    TransactionalId(String),
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StorageError> {
    rmp_serde::to_vec(value).map_err(|e| StorageError::Encode(e.to_string()))
}

fn key(transactional_id: &str) -> Result<Vec<u8>, StorageError> {
    encode(&TxnKey::TransactionalId(transactional_id.to_string()))
}

/// The record that makes `meta` the id's state.
pub fn state_record(meta: &TxnMetadata) -> Result<KeyedRecord, StorageError> {
    Ok((key(&meta.transactional_id)?, Some(encode(meta)?)))
}

/// The tombstone that removes an expired id.
pub fn tombstone(transactional_id: &str) -> Result<KeyedRecord, StorageError> {
    Ok((key(transactional_id)?, None))
}

/// Every transactional id's state, replayed from a partition's batches in offset order.
#[derive(Debug, Default)]
pub struct TxnReplay {
    pub ids: BTreeMap<String, TxnMetadata>,
}

impl TxnReplay {
    /// Applies the records of `batches` (whole batches, as a Read returns them); an error
    /// when one is malformed. Control batches are skipped.
    pub fn apply_batches(&mut self, batches: &[u8]) -> Result<(), StorageError> {
        for_each_keyed_record(batches, MAX_BODY_BYTES, |key, value| {
            self.apply_record(key, value)
        })
    }

    fn apply_record(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StorageError> {
        let decode_error = |e: rmp_serde::decode::Error| {
            StorageError::InvalidBatch(format!("a __transaction_state record: {e}"))
        };
        let TxnKey::TransactionalId(id) = rmp_serde::from_slice(key).map_err(decode_error)?;
        match value {
            Some(v) => {
                let meta: TxnMetadata = rmp_serde::from_slice(v).map_err(decode_error)?;
                if meta.transactional_id != id {
                    return Err(StorageError::InvalidBatch(format!(
                        "a __transaction_state record keyed {id} holds {}",
                        meta.transactional_id
                    )));
                }
                self.ids.insert(id, meta);
            }
            None => {
                self.ids.remove(&id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::txn_messages::TxnStatus;
    use crate::coordinator::offsets_topic::batch_of;

    fn meta(id: &str, state: TxnStatus, epoch: i16) -> TxnMetadata {
        TxnMetadata {
            transactional_id: id.to_string(),
            producer_id: 7,
            producer_epoch: epoch,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state,
            partitions: [("t".to_string(), 0), ("t".to_string(), 2)].into(),
            groups: ["g".to_string()].into(),
            start_ms: 1,
            last_update_ms: 2,
        }
    }

    /// The latest state of each id wins, a tombstone removes one, and a record whose value
    /// names another id than its key is refused.
    #[test]
    fn the_latest_state_of_each_id_replays() {
        let mut log = Vec::new();
        let changes = [
            state_record(&meta("a", TxnStatus::Empty, 0)).unwrap(),
            state_record(&meta("b", TxnStatus::Ongoing, 0)).unwrap(),
            state_record(&meta("a", TxnStatus::Ongoing, 0)).unwrap(),
            state_record(&meta("a", TxnStatus::PrepareCommit, 0)).unwrap(),
            state_record(&meta("c", TxnStatus::Empty, 3)).unwrap(),
            tombstone("c").unwrap(),
        ];
        for change in changes {
            log.extend(batch_of(&[change], 0));
        }
        let mut replay = TxnReplay::default();
        replay.apply_batches(&log).unwrap();
        assert_eq!(replay.ids.len(), 2);
        assert_eq!(replay.ids["a"], meta("a", TxnStatus::PrepareCommit, 0));
        assert_eq!(replay.ids["b"].state, TxnStatus::Ongoing);

        let (key, _) = state_record(&meta("x", TxnStatus::Empty, 0)).unwrap();
        let (_, value) = state_record(&meta("y", TxnStatus::Empty, 0)).unwrap();
        let forged = batch_of(&[(key, value)], 0);
        assert!(TxnReplay::default().apply_batches(&forged).is_err());
        assert!(TxnReplay::default()
            .apply_batches(&batch_of(&[(b"junk".to_vec(), None)], 0))
            .is_err());
    }
}
