//! The replica fetcher against a real listener: the leader's partition actor is served by
//! a Listener on 127.0.0.1 (its routing table holds the replicated leader), the follower's
//! partition actor is fed by the real `ReplicaFetcher` over TCP with the Kafka protocol.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::actors::broker::Broker;
use broker::actors::call;
use broker::actors::listener::{ConnectionLimits, Listener, ListenerArgs};
use broker::actors::partition::PartitionMsg;
use broker::actors::replica_fetcher::{ReplicaFetcher, ReplicaFetcherArgs, ReplicaFetcherMsg};
use broker::actors::routing::{PartitionQueue, ProduceSettings, RoutingTable, TopicRoute};
use broker::config::{Config, FlushPolicy};
use broker::security::ListenerIdentity;
use broker::storage::sim::SimStorage;
use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::actor_partition::append;
use crate::actor_replication::{
    batch, follow, lead, log_batches, produce_all, replica, role, Replica,
};

const WAIT: Duration = Duration::from_secs(10);

/// A broker process's actors in this process, with a listener whose routing table holds
/// `leader` as partition 0 of topic "t". Returns the broker (kept alive) and the port.
async fn serve_leader(leader: &Replica) -> (Broker, watch::Sender<Arc<RoutingTable>>, u16) {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: "/data".into(),
        ..Config::default()
    };
    let broker = Broker::start(config, Arc::new(SimStorage::new()))
        .await
        .unwrap();
    let route = TopicRoute {
        name: "t".into(),
        id: uuid::Uuid::new_v4(),
        partitions: vec![leader.actor.clone()],
        queues: vec![PartitionQueue::new(64 << 20)],
        configs: BTreeMap::new(),
        produce: ProduceSettings {
            compression: None,
            min_insync_replicas: 1,
        },
        placements: Vec::new(),
    };
    let table = RoutingTable::new([Arc::new(route)], Default::default());
    let (routes, routing) = watch::channel(Arc::new(table));
    let mut context = broker.context();
    context.routing = routing;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    Actor::spawn(
        None,
        Listener,
        ListenerArgs {
            listener: broker::sockets::Listener::Tcp(listener),
            identity: ListenerIdentity::plaintext(),
            tls: None,
            context,
            limits: ConnectionLimits {
                total: 64,
                per_ip: 64,
            },
        },
    )
    .await
    .unwrap();
    (broker, routes, port)
}

async fn fetcher(port: u16, max_wait: Duration) -> ActorRef<ReplicaFetcherMsg> {
    let args = ReplicaFetcherArgs {
        broker_id: 2,
        source_broker: 1,
        address: format!("127.0.0.1:{port}"),
        max_bytes: 1 << 20,
        response_max_bytes: 10 << 20,
        max_wait,
        min_bytes: 1,
        connector: Default::default(),
        socket_timeout: Duration::from_secs(30),
    };
    Actor::spawn(None, ReplicaFetcher, args).await.unwrap().0
}

fn add(fetcher: &ActorRef<ReplicaFetcherMsg>, follower: &Replica, epoch: i32) {
    fetcher
        .send_message(ReplicaFetcherMsg::AddPartition {
            topic: "t".into(),
            partition: 0,
            leader_epoch: epoch,
            local: follower.actor.clone(),
        })
        .unwrap();
}

/// Polls the follower until its log end reaches `offset` (bounded by WAIT).
async fn until_log_end(follower: &Replica, offset: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let view = role(follower).await;
        if view.log_end_offset >= offset {
            return;
        }
        assert!(Instant::now() < deadline, "the follower stayed at {view:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn acks_all_completes_once_the_real_fetcher_copied_the_batch() {
    let (l, _alter) = replica(1, 2, FlushPolicy::Interval).await;
    let (f, _) = replica(2, 2, FlushPolicy::Interval).await;
    lead(&l, 1, &[1, 2], &[1, 2]).await;
    follow(&f, 1, 1).await;
    let (broker, _routes, port) = serve_leader(&l).await;
    let fetcher = fetcher(port, Duration::from_millis(500)).await;
    add(&fetcher, &f, 1);
    let pending = produce_all(&l, batch(3, "a"));
    let out = tokio::time::timeout(WAIT, pending).await.expect("answered");
    assert_eq!(out.unwrap().unwrap().last_offset, 2);
    until_log_end(&f, 3).await;
    assert_eq!(log_batches(&f), log_batches(&l));
    fetcher.stop(None);
    broker.shutdown().await;
}

#[tokio::test]
async fn the_fetcher_truncates_a_divergent_follower_before_fetching() {
    let (l, _alter) = replica(1, 1, FlushPolicy::Interval).await;
    let (f, _) = replica(2, 1, FlushPolicy::Interval).await;
    // The follower once led epoch 1 and took records nobody else has.
    lead(&f, 1, &[2], &[1, 2]).await;
    append(&f.actor, batch(3, "divergent"), 1).await.unwrap();
    lead(&l, 2, &[1], &[1, 2]).await;
    append(&l.actor, batch(4, "new"), 1).await.unwrap();
    follow(&f, 1, 2).await;
    let (broker, _routes, port) = serve_leader(&l).await;
    let fetcher = fetcher(port, Duration::from_millis(500)).await;
    add(&fetcher, &f, 2);
    until_log_end(&f, 4).await;
    let (f_log, l_log) = (log_batches(&f), log_batches(&l));
    assert_eq!(f_log, l_log, "no divergent record survives");
    assert_eq!(
        f_log.iter().map(|b| (b.0, b.1)).collect::<Vec<_>>(),
        vec![(0, 2)]
    );
    fetcher.stop(None);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_follower_below_the_leaders_log_start_restarts_there_over_tcp() {
    let (l, _alter) = replica(1, 1, FlushPolicy::Interval).await;
    let (f, _) = replica(2, 1, FlushPolicy::Interval).await;
    lead(&l, 1, &[1], &[1, 2]).await;
    for tag in ["a", "b", "c"] {
        append(&l.actor, batch(3, tag), 1).await.unwrap();
    }
    call(
        &l.actor,
        |reply| PartitionMsg::DeleteRecords { offset: 6, reply },
        WAIT,
    )
    .await
    .unwrap()
    .unwrap();
    follow(&f, 1, 1).await;
    let (broker, _routes, port) = serve_leader(&l).await;
    let fetcher = fetcher(port, Duration::from_millis(500)).await;
    add(&fetcher, &f, 1);
    until_log_end(&f, 9).await;
    let view = role(&f).await;
    assert_eq!((view.log_start_offset, view.log_end_offset), (6, 9));
    fetcher.stop(None);
    broker.shutdown().await;
}

#[tokio::test]
async fn an_idle_fetcher_long_polls_and_an_append_wakes_it() {
    let (l, _alter) = replica(1, 1, FlushPolicy::Interval).await;
    let (f, _) = replica(2, 1, FlushPolicy::Interval).await;
    lead(&l, 1, &[1, 2], &[1, 2]).await;
    follow(&f, 1, 1).await;
    append(&l.actor, batch(1, "a"), 1).await.unwrap();
    let (broker, _routes, port) = serve_leader(&l).await;
    // A long wait: a round that were not woken by the append would take all of it.
    let fetcher = fetcher(port, Duration::from_secs(30)).await;
    add(&fetcher, &f, 1);
    until_log_end(&f, 1).await;
    let rounds = || call(&fetcher, |reply| ReplicaFetcherMsg::Rounds { reply }, WAIT);
    let before = rounds().await.unwrap();
    let started = Instant::now();
    append(&l.actor, batch(1, "b"), 1).await.unwrap();
    until_log_end(&f, 2).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "woken, not timed out"
    );
    let after = rounds().await.unwrap();
    assert!(
        after <= before + 2,
        "no busy polling: {before} -> {after} rounds"
    );
    fetcher.stop(None);
    broker.shutdown().await;
}

/// KIP-227 between follower and leader: the first fetch creates a session on the leader,
/// and later, incremental fetches (which list only changed partitions) still copy every
/// append, including after a new leader epoch.
#[tokio::test]
async fn the_fetcher_copies_through_an_incremental_fetch_session() {
    let (l, _alter) = replica(1, 1, FlushPolicy::Interval).await;
    let (f, _) = replica(2, 1, FlushPolicy::Interval).await;
    lead(&l, 1, &[1, 2], &[1, 2]).await;
    follow(&f, 1, 1).await;
    append(&l.actor, batch(1, "a"), 1).await.unwrap();
    let (broker, _routes, port) = serve_leader(&l).await;
    let fetcher = fetcher(port, Duration::from_millis(200)).await;
    add(&fetcher, &f, 1);
    until_log_end(&f, 1).await;
    let session = || {
        call(
            &fetcher,
            |reply| ReplicaFetcherMsg::SessionId { reply },
            WAIT,
        )
    };
    let first = session().await.unwrap();
    assert_ne!(first, 0, "the leader gave the fetcher a fetch session");
    for (n, value) in ["b", "c"].iter().enumerate() {
        append(&l.actor, batch(1, value), 1).await.unwrap();
        until_log_end(&f, 2 + n as i64).await;
    }
    assert_eq!(
        session().await.unwrap(),
        first,
        "the same session throughout"
    );
    // A new leader epoch: the partition is listed again with it, in the same session.
    lead(&l, 2, &[1, 2], &[1, 2]).await;
    follow(&f, 1, 2).await;
    add(&fetcher, &f, 2);
    append(&l.actor, batch(2, "d"), 1).await.unwrap();
    until_log_end(&f, 4).await;
    fetcher.stop(None);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_partition_the_leader_refuses_is_paused_not_fetched_in_a_busy_loop() {
    let (l, _alter) = replica(1, 1, FlushPolicy::Interval).await;
    let (f, _) = replica(2, 1, FlushPolicy::Interval).await;
    lead(&l, 1, &[1, 2], &[1, 2]).await;
    follow(&f, 1, 1).await;
    append(&l.actor, batch(1, "a"), 1).await.unwrap();
    let (broker, _routes, port) = serve_leader(&l).await;
    let fetcher = fetcher(port, Duration::from_millis(500)).await;
    add(&fetcher, &f, 1);
    until_log_end(&f, 1).await;
    // A new leader epoch the follower has not heard of: its fetches are FENCED_LEADER_EPOCH,
    // answered at once by the leader.
    lead(&l, 2, &[1, 2], &[1, 2]).await;
    let rounds = || call(&fetcher, |reply| ReplicaFetcherMsg::Rounds { reply }, WAIT);
    let before = rounds().await.unwrap();
    // The quantity measured is a rate, so this test waits on the clock on purpose.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let after = rounds().await.unwrap();
    assert!(
        after - before <= 5,
        "paused, not spinning: {before} -> {after} rounds"
    );
    fetcher.stop(None);
    broker.shutdown().await;
}
