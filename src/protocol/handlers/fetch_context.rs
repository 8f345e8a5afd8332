//! Fetch sessions (KIP-227) as one Fetch sees them, Kafka's FetchContext: a full fetch
//! may create a session from its answer; an incremental one is answered only with the
//! partitions that have records, changed metadata, an error, or a closer replica.

use kafka_protocol::messages::{FetchResponse, TopicName};
use uuid::Uuid;

use super::fetch::Fetch;
use crate::protocol::fetch_sessions::{owned, Answered, Context, FetchSessions, Requested};

/// A full fetch may create a session (its id answered); an incremental one lists only the
/// partitions with records or changed metadata.
pub(super) async fn in_session(
    fetch: &Fetch,
    sessions: &FetchSessions,
    context: Context,
    mut response: FetchResponse,
    limit: usize,
) -> FetchResponse {
    let uses_ids = fetch.version >= 13;
    match context {
        Context::Sessionless | Context::Error(_) => response,
        Context::Full => {
            let partitions = answers(fetch, &response).collect();
            response.session_id = sessions.create(uses_ids, partitions, limit).await;
            response
        }
        Context::Incremental {
            session_id, epoch, ..
        } => {
            let keyed = answers(fetch, &response)
                .map(|(requested, answered)| (requested.key, answered))
                .collect();
            match sessions.respond(session_id, epoch, keyed).await {
                Err(code) => FetchResponse::default()
                    .with_error_code(code)
                    .with_session_id(0),
                Ok(listed) => {
                    let mut listed = listed.into_iter();
                    for topic in &mut response.responses {
                        topic.partitions.retain(|_| listed.next().unwrap_or(true));
                    }
                    response.responses.retain(|t| !t.partitions.is_empty());
                    response.session_id = session_id;
                    response
                }
            }
        }
    }
}

/// Every answered partition as a session keeps it (key, the fetch offset, limit and leader
/// epoch it was read with), and what its answer said.
fn answers<'a>(
    fetch: &'a Fetch,
    response: &'a FetchResponse,
) -> impl Iterator<Item = (Requested, Answered)> + 'a {
    let uses_ids = fetch.version >= 13;
    fetch
        .topics
        .iter()
        .zip(&response.responses)
        .flat_map(move |(topic, answered)| {
            let (id, name) = if uses_ids {
                (topic.id, TopicName::default())
            } else {
                (Uuid::nil(), owned(&topic.name))
            };
            topic
                .partitions
                .iter()
                .zip(&answered.partitions)
                .map(move |(w, p)| {
                    let answered = Answered {
                        has_records: p.records.as_ref().is_some_and(|r| !r.is_empty()),
                        redirected: p.preferred_read_replica.0 >= 0,
                        high_watermark: p.high_watermark,
                        last_stable_offset: p.last_stable_offset,
                        log_start_offset: p.log_start_offset,
                        error: p.error_code,
                    };
                    let requested = Requested {
                        key: (id, name.clone(), w.index),
                        offset: w.offset,
                        max_bytes: w.max_bytes.min(i32::MAX as usize) as i32,
                        current_leader_epoch: w.current_leader_epoch,
                    };
                    (requested, answered)
                })
        })
}
