//! DescribeLogDirs v4 against a real broker: the data directory's file system size and free
//! space (statvfs), and each partition's size as its segment files add up.

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::*;

use broker::storage::batch_builder::build_batch;

use crate::harness::TestBroker;
use crate::hostile_wire::{topic, Wire};

#[test]
fn log_dirs_report_disk_space_and_partition_sizes() {
    let broker = TestBroker::start("");
    let mut wire = Wire::connect(broker.port());
    wire.create_topic("sized", 2);
    for i in 0..20 {
        let value = format!("{i:01000}");
        let batch = build_batch(&[(None, Some(value.as_bytes()))], 1_000);
        assert_eq!(wire.produce("sized", 0, -1, batch), 0);
    }
    let req =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(topic("sized"))
                .with_partitions(vec![0, 1])]));
    let resp = wire.call(4, &req).expect("DescribeLogDirs answered");
    let dir = &resp.results[0];
    assert_eq!(dir.error_code, 0);
    assert!(
        dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes,
        "total {} usable {}",
        dir.total_bytes,
        dir.usable_bytes
    );
    let on_disk = |p: i32| -> i64 {
        std::fs::read_dir(broker.data_dir().join(format!("sized-{p}")))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().unwrap().len() as i64)
            .sum()
    };
    let sizes: Vec<(i32, i64, i64)> = dir.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.partition_size, p.offset_lag))
        .collect();
    assert_eq!(sizes, vec![(0, on_disk(0), 0), (1, 0, 0)]);
    assert!(sizes[0].1 > 20_000, "{sizes:?}");
}
