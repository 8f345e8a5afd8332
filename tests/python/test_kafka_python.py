"""kafka-python against the broker: produce (acks 1 and all, gzip, keys, headers), consume
with manual assignment, admin create/describe/delete, offsets."""
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import InvalidTopicError, TopicAlreadyExistsError


def consume_exactly(bootstrap, topic, partitions, expected, timeout=30):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(records)
    # Anything beyond the expected count would be a duplicate.
    for records in consumer.poll(timeout_ms=300).values():
        got.extend(records)
    ends = consumer.end_offsets(tps)
    consumer.close()
    return got, ends


@pytest.mark.parametrize("acks", [1, "all"])
def test_produce_and_consume_exactly(broker, acks, closing):
    admin = closing(KafkaAdminClient(bootstrap_servers=broker.bootstrap))
    topic = f"kp-{acks}"
    admin.create_topics([NewTopic(topic, 2, 1)])
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        acks=acks,
        compression_type="gzip",
        enable_idempotence=False,
        linger_ms=5,
    )
    futures = [
        producer.send(
            topic,
            key=b"k%d" % (i % 3),
            value=b"value-%05d" % i,
            partition=i % 2,
            headers=[("n", b"%d" % i), ("empty", b"")],
        )
        for i in range(2000)
    ]
    producer.flush(30)
    metadata = [f.get(timeout=30) for f in futures]
    assert all(m.offset >= 0 for m in metadata)
    producer.close()
    got, ends = consume_exactly(broker.bootstrap, topic, 2, 2000)
    assert len(got) == 2000
    assert ends == {TopicPartition(topic, 0): 1000, TopicPartition(topic, 1): 1000}
    for p in range(2):
        mine = [r for r in got if r.partition == p]
        assert [r.offset for r in mine] == list(range(1000))
        assert [int(r.value[6:]) for r in mine] == list(range(p, 2000, 2))
        for r in mine:
            n = int(r.value[6:])
            assert r.key == b"k%d" % (n % 3)
            assert r.headers == [("n", b"%d" % n), ("empty", b"")]


def test_admin_create_describe_delete(broker, closing):
    admin = closing(KafkaAdminClient(bootstrap_servers=broker.bootstrap))
    admin.create_topics([NewTopic("adm", 3, 1, topic_configs={"retention.ms": "1000"})])
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic("adm", 3, 1)])
    with pytest.raises(InvalidTopicError):
        admin.create_topics([NewTopic("bad name", 1, 1)])
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "adm")], config_filter="all")
    configs = described["topic"]["adm"]
    assert configs["retention.ms"]["value"] == "1000"
    assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["cleanup.policy"]["value"] == "delete"
    assert configs["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
    assert "adm" in admin.list_topics()
    admin.delete_topics(["adm"])
    assert "adm" not in admin.list_topics()


def test_offsets_for_times(broker):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=False)
    base = 1_700_000_000_000
    for i in range(50):
        producer.send("times", value=b"v%d" % i, partition=0, timestamp_ms=base + i * 1000).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    tp = TopicPartition("times", 0)
    found = consumer.offsets_for_times({tp: base + 20 * 1000})
    assert found[tp].offset == 20
    assert consumer.offsets_for_times({tp: base + 10_000_000})[tp] is None
    assert consumer.beginning_offsets([tp])[tp] == 0
    assert consumer.end_offsets([tp])[tp] == 50
    consumer.close()


def test_consumer_group_commits_and_resumes(tmp_path, closing):
    from conftest import Broker

    b = Broker(tmp_path, "group_initial_rebalance_delay_ms = 0")
    try:
        producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", enable_idempotence=False)
        for i in range(300):
            producer.send("grouped", value=b"g-%03d" % i, partition=0)
        producer.flush(30)
        producer.close()

        def read(expected):
            consumer = KafkaConsumer(
                "grouped",
                bootstrap_servers=b.bootstrap,
                group_id="kp-group",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            got = []
            deadline = time.monotonic() + 30
            # Each poll may take all the time left: poll returns as soon as records come.
            # kafka-python 3.0.12 loses an assignment when a poll's own timeout runs out in
            # the middle of a rebalance ("timeout in ensure_active_group", then no "Setting
            # newly assigned partitions" and no rejoin), which 200 ms polls hit on a busy
            # machine when the first assignment saw no partition metadata yet.
            while len(got) < expected and time.monotonic() < deadline:
                left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                for records in consumer.poll(timeout_ms=left_ms).values():
                    got.extend(records)
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
            consumer.commit()
            consumer.close()
            return got

        first = read(300)
        assert [r.value for r in first] == [b"g-%03d" % i for i in range(300)]
        producer = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", enable_idempotence=False)
        for i in range(300, 310):
            producer.send("grouped", value=b"g-%03d" % i, partition=0)
        producer.flush(30)
        producer.close()
        second = read(10)
        assert [r.value for r in second] == [b"g-%03d" % i for i in range(300, 310)]
        admin = closing(KafkaAdminClient(bootstrap_servers=b.bootstrap))
        listed = admin.list_groups()
        assert "kp-group" in str(listed), listed
        offsets = admin.list_group_offsets("kp-group")
        assert offsets["kp-group"][TopicPartition("grouped", 0)].offset == 310, offsets
    finally:
        assert b.stop() == 0


def test_describe_log_dirs_reports_partition_sizes(broker, closing):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=False)
    for i in range(100):
        producer.send("sized", value=b"v" * 100, partition=0)
    producer.flush(30)
    producer.close()
    admin = closing(KafkaAdminClient(bootstrap_servers=broker.bootstrap))
    result = admin.describe_log_dirs()
    topics = result[0]["log_dirs"][0]["topics"]
    sized = [t for t in topics if t["name"] == "sized"][0]
    # 100 records of 100 bytes, in batches: more than the payload, less than twice it.
    assert 10_000 < sized["partitions"][0]["partition_size"] < 20_000, sized
