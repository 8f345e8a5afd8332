//! A metadata commit of a broker's own that waits while the quorum moves on: when it lands,
//! the image the broker takes holds what the other brokers committed meanwhile too, and
//! the broker must act on those records as on any it follows. CI once caught a broker
//! that skipped them: cut off, it claimed producer ids (an InitProducerId), and after
//! healing it took an image in which its partition's leadership had moved, never acted
//! on it, and went on calling itself the leader at epoch 0.

use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::*;

use super::client_hostile_records::request;
use super::cluster_admin::{ask, create_assigned};
use super::cluster_metadata::{broker_ids, eventually, every, topic, wait_everywhere, SLACK};
use super::cluster_network_faults::ProxiedCluster;
use super::fault_proxy::Fault;
use super::harness::TestBroker;
use super::protocol_versions::name;

const TOPIC: &str = "moved-away";

/// InitProducerId (no transactional id) sent straight to `broker`'s own listener; its error
/// code arrives on the channel when answered.
fn init_producer_id(broker: &TestBroker) -> mpsc::Receiver<i16> {
    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut socket = TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(40)))
        .unwrap();
    let (answered, answer) = mpsc::channel();
    std::thread::spawn(move || {
        let r: InitProducerIdResponse = request(&mut socket, ApiKey::InitProducerId, 4, 1, &init);
        let _ = answered.send(r.error_code);
    });
    answer
}

/// The partition's replicas as `broker` sees them.
fn replicas(broker: &TestBroker) -> Option<Vec<i32>> {
    let r = super::cluster_metadata::metadata(broker)?;
    let p = &topic(&r, TOPIC)?.partitions[0];
    Some(p.replica_nodes.iter().map(|b| b.0).collect())
}

/// Broker 1 is cut off; the other two move the partition off it; broker 1, still cut off,
/// is asked for a producer id, which it claims through the quorum, so its commit waits;
/// the links heal. The claim's image also holds the reassignment, and broker 1 must act
/// on it: its replica's log is deleted. On the old code the commit took the image without
/// following it, the reassignment's own applied image then looked old and was skipped, and
/// the log stayed for good.
#[test]
fn a_broker_acts_on_what_others_committed_while_its_own_commit_waited() {
    let cluster = ProxiedCluster::start();
    let all = every(&cluster.brokers);
    wait_everywhere(&all, SLACK, "three brokers", |r| broker_ids(r).len() == 3);
    let (code, message) = create_assigned(cluster.broker(2), TOPIC, -1, &[&[2, 3, 1]]);
    assert_eq!(code, 0, "{message}");
    wait_everywhere(&all, SLACK, "the partition with ISR 3", |r| {
        topic(r, TOPIC).is_some_and(|t| t.partitions[0].isr_nodes.len() == 3)
    });
    let log_dir = cluster.broker(1).data_dir().join(format!("{TOPIC}-0"));
    assert!(log_dir.is_dir(), "broker 1 holds no log at {log_dir:?}");

    cluster.isolate(1, Fault::Drop, Fault::Cut);
    let reassign = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(2), BrokerId(3)]))])]);
    let r: AlterPartitionReassignmentsResponse = ask(
        cluster.broker(2),
        ApiKey::AlterPartitionReassignments,
        0,
        &reassign,
    );
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    let others = [cluster.broker(2), cluster.broker(3)];
    wait_everywhere(
        &others,
        SLACK,
        "the partition on brokers 2 and 3 only",
        |r| {
            topic(r, TOPIC).is_some_and(|t| {
                let replicas: Vec<i32> =
                    t.partitions[0].replica_nodes.iter().map(|b| b.0).collect();
                replicas == [2, 3]
            })
        },
    );

    let claim = init_producer_id(cluster.broker(1));
    // Cut off from the quorum, broker 1 cannot claim ids: the request waits.
    assert_eq!(
        claim.recv_timeout(Duration::from_secs(1)).ok(),
        None,
        "broker 1 answered InitProducerId while cut off from the quorum"
    );
    cluster.set_all(Fault::Pass);
    assert_eq!(
        claim.recv_timeout(SLACK).ok(),
        Some(0),
        "InitProducerId on broker 1 after healing"
    );

    eventually(
        "broker 1 to delete the log of the partition moved off it",
        || {
            (
                !log_dir.exists(),
                format!("{log_dir:?} exists: {}", log_dir.exists()),
            )
        },
    );
    eventually("broker 1 to list the partition on brokers 2 and 3", || {
        let seen = replicas(cluster.broker(1));
        (seen.as_deref() == Some(&[2, 3][..]), format!("{seen:?}"))
    });
}
