//! Applying the quotas to one request, as Kafka's KafkaApis does (KIP-219): the response
//! is answered at once with `throttle_time_ms`, and the connection reads nothing more for
//! that long.
//!
//! - Produce: the request's size counts against `producer_byte_rate`, recorded as the
//!   request is read (Kafka handles one request of a connection at a time; here a
//!   producer pipelines, so its next request must already see the throttle).
//! - Fetch: the records answered count against `consumer_byte_rate`; a fetch is asked for
//!   at most the quota's window worth of bytes, and a throttled one is answered without
//!   records (whose bytes are then not counted), as Kafka does.
//! - Every request but ApiVersions, SASL and broker-to-broker ones: the time spent
//!   handling it (preparing it and polling its response future, as a share of one
//!   thread) counts against `request_percentage`.
//!
//! The longest of the throttles applies. Follower fetches are never throttled.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{FetchRequest, RequestKind, ResponseKind};

use super::entity::{ClientQuotas, QuotaKey, QuotaMetricKey};
use super::manager::{ClientQuotaManager, Usage};

/// The quotas one request is subject to, found in the latest published quota configs.
#[derive(Debug, Clone, Default)]
pub struct Applicable {
    produce: Option<(QuotaMetricKey, f64)>,
    fetch: Option<(QuotaMetricKey, f64)>,
    request: Option<(QuotaMetricKey, f64)>,
}

impl Applicable {
    /// None when no quota applies to this request (nothing is recorded then).
    pub fn find(
        quotas: &ClientQuotas,
        request: &RequestKind,
        user: &str,
        client_id: &str,
    ) -> Option<Applicable> {
        if quotas.is_empty() || exempt(request) {
            return None;
        }
        let resolve = |key| quotas.resolve(key, user, client_id);
        let found = Applicable {
            produce: matches!(request, RequestKind::Produce(_))
                .then(|| resolve(QuotaKey::ProducerByteRate))
                .flatten(),
            fetch: matches!(request, RequestKind::Fetch(_))
                .then(|| resolve(QuotaKey::ConsumerByteRate))
                .flatten(),
            request: resolve(QuotaKey::RequestPercentage),
        };
        let any = found.produce.is_some() || found.fetch.is_some() || found.request.is_some();
        any.then_some(found)
    }

    /// A consumer under a byte-rate quota fetches at most the quota's window worth.
    pub fn cap_fetch(&self, request: &mut RequestKind, manager: &ClientQuotaManager) {
        if let (RequestKind::Fetch(fetch), Some((_, quota))) = (request, &self.fetch) {
            cap_max_bytes(fetch, manager.windows().max_value_in_window(*quota));
        }
    }

    /// Records a Produce request's size as it is read, in arrival order, so a pipelining
    /// producer is throttled before its next request is taken; how long it is throttled.
    pub async fn record_request_bytes(
        &self,
        manager: &ClientQuotaManager,
        request_bytes: usize,
    ) -> Duration {
        let Some((metric, quota)) = &self.produce else {
            return Duration::ZERO;
        };
        let usage = Usage {
            key: QuotaKey::ProducerByteRate,
            metric: metric.clone(),
            quota: *quota,
            value: request_bytes as f64,
            unrecord_if_throttled: false,
        };
        manager.record(usage).await
    }

    /// Records what the handled request used (a Fetch's records, the handling time),
    /// and returns how long its client is throttled, at least `throttled` (from
    /// `record_request_bytes`), after writing that into `response` (and, for a throttled
    /// Fetch, taking its records out).
    pub async fn enforce(
        self,
        manager: &ClientQuotaManager,
        throttled: Duration,
        handling: Duration,
        response: &mut ResponseKind,
    ) -> Duration {
        let mut throttle = throttled;
        if let (Some((metric, quota)), ResponseKind::Fetch(r)) = (self.fetch, &*response) {
            let usage = Usage {
                key: QuotaKey::ConsumerByteRate,
                metric,
                quota,
                value: fetched_bytes(r),
                unrecord_if_throttled: true,
            };
            throttle = throttle.max(manager.record(usage).await);
        }
        if let Some((metric, quota)) = self.request {
            // Kafka's unit: one thread busy for the whole second is 100 (percent).
            let usage = Usage {
                key: QuotaKey::RequestPercentage,
                metric,
                quota,
                value: handling.as_secs_f64() * 100.0,
                unrecord_if_throttled: false,
            };
            throttle = throttle.max(manager.record(usage).await);
        }
        if throttle > Duration::ZERO {
            if let ResponseKind::Fetch(r) = response {
                drop_records(r);
            }
            set_throttle_time(response, throttle);
        }
        throttle
    }
}

/// Requests no client quota applies to: those a client must send to get anywhere
/// (ApiVersions, SASL), another broker's, and a follower's fetch.
fn exempt(request: &RequestKind) -> bool {
    match request {
        RequestKind::ApiVersions(_)
        | RequestKind::SaslHandshake(_)
        | RequestKind::SaslAuthenticate(_)
        | RequestKind::WriteTxnMarkers(_) => true,
        RequestKind::Fetch(f) => f.replica_id.0 >= 0 || f.replica_state.replica_id.0 >= 0,
        _ => false,
    }
}

fn cap_max_bytes(fetch: &mut FetchRequest, cap: f64) {
    let cap = cap.clamp(1.0, i32::MAX as f64) as i32;
    if fetch.max_bytes > cap {
        fetch.max_bytes = cap;
    }
}

fn fetched_bytes(response: &kafka_protocol::messages::FetchResponse) -> f64 {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()) as f64)
        .sum()
}

fn drop_records(response: &mut kafka_protocol::messages::FetchResponse) {
    for topic in &mut response.responses {
        for partition in &mut topic.partitions {
            if partition.records.is_some() {
                partition.records = Some(bytes::Bytes::new());
            }
        }
    }
}

/// Writes `throttle` into the response's `throttle_time_ms`, for every API that has one.
pub fn set_throttle_time(response: &mut ResponseKind, throttle: Duration) {
    let ms = throttle.as_millis().min(i32::MAX as u128) as i32;
    macro_rules! set {
        ($($kind:ident),* $(,)?) => {
            match response {
                $(ResponseKind::$kind(r) => r.throttle_time_ms = ms,)*
                _ => {}
            }
        };
    }
    set!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        CreateTopics,
        DeleteTopics,
        DescribeConfigs,
        CreatePartitions,
        InitProducerId,
        FindCoordinator,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        ListGroups,
        DescribeGroups,
        DeleteGroups,
        OffsetDelete,
        DeleteRecords,
        AlterConfigs,
        IncrementalAlterConfigs,
        DescribeCluster,
        ElectLeaders,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        DescribeLogDirs,
        OffsetForLeaderEpoch,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        TxnOffsetCommit,
        EndTxn,
        DescribeProducers,
        ListTransactions,
        DescribeTransactions,
        DescribeTopicPartitions,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        CreateAcls,
        DescribeAcls,
        DeleteAcls,
        DescribeClientQuotas,
        AlterClientQuotas,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
    );
}

/// A future that adds up the time spent polling it: the time its request took to handle,
/// apart from what it waited for.
pub struct Timed<F> {
    inner: F,
    spent: Duration,
}

impl<F> Timed<F> {
    pub fn new(inner: F, already: Duration) -> Self {
        Self {
            inner,
            spent: already,
        }
    }
}

impl<F: Future + Unpin> Future for Timed<F> {
    type Output = (F::Output, Duration);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = Instant::now();
        let polled = Pin::new(&mut self.inner).poll(cx);
        self.spent += started.elapsed();
        polled.map(|out| (out, self.spent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::entity::ClientQuotaEntity;
    use kafka_protocol::messages::{ApiVersionsRequest, BrokerId, ProduceRequest};

    fn quotas(key: QuotaKey) -> ClientQuotas {
        let mut q = ClientQuotas::default();
        q.set(&ClientQuotaEntity::user(None), key.name(), Some(100.0));
        q
    }

    #[test]
    fn only_quota_holders_and_non_exempt_requests_are_measured() {
        let produce = RequestKind::Produce(ProduceRequest::default());
        assert!(Applicable::find(&ClientQuotas::default(), &produce, "u", "c").is_none());
        let q = quotas(QuotaKey::ProducerByteRate);
        assert!(Applicable::find(&q, &produce, "u", "c").is_some());
        let fetch = RequestKind::Fetch(FetchRequest::default().with_replica_id(BrokerId(-1)));
        assert!(Applicable::find(&q, &fetch, "u", "c").is_none());
        let q = quotas(QuotaKey::RequestPercentage);
        let versions = RequestKind::ApiVersions(ApiVersionsRequest::default());
        assert!(Applicable::find(&q, &versions, "u", "c").is_none());
        let follower = FetchRequest::default().with_replica_id(BrokerId(2));
        assert!(Applicable::find(&q, &RequestKind::Fetch(follower), "u", "c").is_none());
    }

    #[test]
    fn the_throttle_time_goes_into_the_response() {
        let mut response = ResponseKind::Produce(Default::default());
        set_throttle_time(&mut response, Duration::from_millis(250));
        let ResponseKind::Produce(r) = response else {
            unreachable!()
        };
        assert_eq!(r.throttle_time_ms, 250);
    }

    #[test]
    fn a_fetch_is_capped_to_the_quota_window() {
        let mut fetch = FetchRequest::default().with_max_bytes(50 << 20);
        cap_max_bytes(&mut fetch, 1000.0);
        assert_eq!(fetch.max_bytes, 1000);
    }
}
