//! min.insync.replicas on a single broker: it is the only in-sync replica, so an acks=all
//! produce to a topic whose effective min.insync.replicas is above 1 gets
//! NOT_ENOUGH_REPLICAS (19) and nothing is appended, as Kafka answers a leader whose ISR is
//! smaller than the setting. acks=0 and acks=1 are not affected. Topic override and the
//! broker-level default both apply, live.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::*;

use broker::storage::batch_builder::build_batch;

use crate::harness::TestBroker;
use crate::hostile_wire::{text, topic, Wire};

const NOT_ENOUGH_REPLICAS: i16 = 19;

fn set(wire: &mut Wire, kind: i8, resource: &str, name: &str, value: &str) {
    let (code, message) = wire.set_config(kind, resource, name, value);
    assert_eq!(code, 0, "{name}={value}: {message}");
}

#[test]
fn acks_all_needs_min_insync_replicas_at_most_one_on_a_single_broker() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic("isr2"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(text("min.insync.replicas"))
                .with_value(Some(text("2")))])]);
    assert_eq!(wire.call(4, &req).expect("created").topics[0].error_code, 0);
    wire.create_topic("plain", 1);
    let batch = || build_batch(&[(Some(b"k"), Some(b"v"))], 1_000);

    assert_eq!(wire.produce("isr2", 0, -1, batch()), NOT_ENOUGH_REPLICAS);
    assert_eq!(wire.latest_offset("isr2", 0), 0, "nothing appended");
    assert_eq!(
        wire.produce("isr2", 0, 1, batch()),
        0,
        "acks=1 is not affected"
    );
    assert_eq!(wire.produce("plain", 0, -1, batch()), 0);

    // Lowered live, acks=all works again.
    set(&mut wire, 2, "isr2", "min.insync.replicas", "1");
    assert_eq!(wire.produce("isr2", 0, -1, batch()), 0);
    assert_eq!(wire.latest_offset("isr2", 0), 2);

    // The broker-level default applies to topics without their own value.
    set(&mut wire, 4, "0", "min.insync.replicas", "3");
    assert_eq!(wire.produce("plain", 0, -1, batch()), NOT_ENOUGH_REPLICAS);
    assert_eq!(wire.produce("isr2", 0, -1, batch()), 0, "its override wins");
    assert_eq!(wire.latest_offset("plain", 0), 1);
}
