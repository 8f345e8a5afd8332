//! The fetch session cache's eviction rule, Kafka's FetchSessionCache.tryEvict, on explicit
//! instants: an idle session goes first; else a session older than the eviction time (when
//! last used) goes for a newcomer with more partitions, never for one with as many or fewer.

use std::time::Duration;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use uuid::Uuid;

use broker::protocol::fetch_sessions::{Answered, Cache, Context, Requested};

const EVICTION: Duration = Duration::from_secs(120);

fn wanted(n: i32) -> Vec<(Requested, Answered)> {
    (0..n)
        .map(|p| {
            (
                Requested {
                    key: (Uuid::nil(), TopicName(StrBytes::from_static_str("t")), p),
                    offset: 0,
                    max_bytes: 1024,
                    current_leader_epoch: -1,
                },
                Answered {
                    has_records: false,
                    redirected: false,
                    high_watermark: 0,
                    last_stable_offset: 0,
                    log_start_offset: 0,
                    error: 0,
                },
            )
        })
        .collect()
}

fn touch(cache: &mut Cache, now: Instant, id: i32, epoch: i32) {
    let ctx = cache.begin(now, id, epoch, false, Vec::new(), Vec::new(), 100);
    assert!(matches!(ctx, Context::Incremental { .. }), "{ctx:?}");
}

#[test]
fn a_larger_session_evicts_an_old_smaller_one_only() {
    let t0 = Instant::now();
    let mut cache = Cache::new(2, EVICTION);
    let small = cache.create(t0, false, wanted(2), 100);
    let big = cache.create(t0, false, wanted(5), 100);
    assert!(small != 0 && big != 0);
    // Full, and nothing old enough: refused.
    assert_eq!(cache.create(t0, false, wanted(10), 100), 0);
    // Both used again after the eviction time (so evictable), neither idle past it.
    let later = t0 + EVICTION + Duration::from_secs(1);
    touch(&mut cache, later, small, 1);
    touch(&mut cache, later, big, 1);
    let now = later + Duration::from_secs(1);
    // As many partitions as the smallest: refused.
    assert_eq!(cache.create(now, false, wanted(2), 100), 0);
    // More: the smallest evictable one goes.
    let newer = cache.create(now, false, wanted(3), 100);
    assert_ne!(newer, 0);
    assert_eq!(cache.len(), 2);
    assert!(matches!(
        cache.begin(now, small, 2, false, Vec::new(), Vec::new(), 100),
        Context::Error(70)
    ));
    touch(&mut cache, now, big, 2);
}

#[test]
fn an_idle_session_is_evicted_first_whatever_its_size() {
    let t0 = Instant::now();
    let mut cache = Cache::new(1, EVICTION);
    let big = cache.create(t0, false, wanted(50), 100);
    assert_ne!(big, 0);
    assert_eq!(cache.create(t0 + EVICTION, false, wanted(1), 100), 0);
    let idle = t0 + EVICTION + Duration::from_millis(1);
    let small = cache.create(idle, false, wanted(1), 100);
    assert_ne!(small, 0);
    assert_eq!((cache.len(), cache.partitions()), (1, 1));
}

#[test]
fn a_session_never_holds_more_partitions_than_exist() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10, EVICTION);
    assert_eq!(cache.create(t0, false, wanted(4), 3), 0, "more than exist");
    let id = cache.create(t0, false, wanted(3), 3);
    assert_ne!(id, 0);
    let more = wanted(4).into_iter().map(|(r, _)| r).collect();
    // Growing past what exists closes the session: the client starts over.
    assert!(matches!(
        cache.begin(t0, id, 1, false, more, Vec::new(), 3),
        Context::Error(70)
    ));
    assert!(cache.is_empty());
}

#[test]
fn a_partition_listed_twice_counts_once_against_the_bound() {
    let t0 = Instant::now();
    let mut cache = Cache::new(10, EVICTION);
    let id = cache.create(t0, false, wanted(2), 3);
    assert_ne!(id, 0);
    let third = wanted(3).pop().map(|(r, _)| r).expect("partition 2");
    let twice = vec![third.clone(), third];
    match cache.begin(t0, id, 1, false, twice, Vec::new(), 3) {
        Context::Incremental { partitions, .. } => assert_eq!(partitions.len(), 3),
        other => panic!("{other:?}"),
    }
}
