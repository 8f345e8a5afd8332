"""confluent-kafka (librdkafka) against the broker: lz4 and zstd round trips over three
partitions, the admin client, watermarks."""
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic


def create(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)
    return admin


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_round_trip_5000(broker, codec):
    topic = f"cf-{codec}"
    create(broker.bootstrap, topic, 3)
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "acks": "all", "linger.ms": 5})
    for i in range(5000):
        producer.produce(topic, key=b"k%d" % i, value=b"payload-%05d" % i, partition=i % 3,
                         on_delivery=lambda err, msg: err and errors.append(err))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 5000 and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got.append((m.partition(), m.offset(), m.key(), m.value()))
    extra = consumer.consume(10, 0.3)
    assert extra == []
    assert len(got) == 5000
    for p in range(3):
        mine = [g for g in got if g[0] == p]
        assert [g[1] for g in mine] == list(range(len(mine)))
        assert [int(g[3][8:]) for g in mine] == list(range(p, 5000, 3))
        assert all(g[2] == b"k%d" % int(g[3][8:]) for g in mine)
        assert consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) == (0, len(mine))
    consumer.close()


def test_admin_client(broker):
    admin = create(broker.bootstrap, "cf-admin", 2)
    assert len(admin.list_topics(timeout=10).topics["cf-admin"].partitions) == 2
    for future in admin.create_partitions([NewPartitions("cf-admin", 5)]).values():
        future.result(30)
    assert len(admin.list_topics(timeout=10).topics["cf-admin"].partitions) == 5
    for future in admin.delete_topics(["cf-admin"]).values():
        future.result(30)
    assert "cf-admin" not in admin.list_topics(timeout=10).topics


def test_incremental_alter_configs_applies_live(tmp_path):
    from conftest import Broker
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

    b = Broker(tmp_path, "[log]\nretention_check_interval_ms = 100")
    try:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        for future in admin.create_topics([NewTopic("live", 1, 1, config={"segment.bytes": "10000"})]).values():
            future.result(30)
        producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1, "batch.size": 2000})
        for i in range(2000):
            producer.produce("live", value=b"x" * 100, partition=0)
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused"})
        assert consumer.get_watermark_offsets(TopicPartition("live", 0), timeout=10)[0] == 0
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            "live",
            incremental_configs=[ConfigEntry("retention.bytes", "20000", incremental_operation=AlterConfigOpType.SET)],
        )
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)
        described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "live")])
        entries = list(described.values())[0].result(30)
        assert entries["retention.bytes"].value == "20000"
        assert entries["retention.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
        assert entries["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
        # The partition takes the new limit at once: the earliest offset moves on.
        deadline = time.monotonic() + 20
        low = 0
        while low == 0 and time.monotonic() < deadline:
            low = consumer.get_watermark_offsets(TopicPartition("live", 0), timeout=10)[0]
            time.sleep(0.1)
        assert low > 0, "retention applied the changed retention.bytes"
        consumer.close()
    finally:
        assert b.stop() == 0


def test_dynamic_broker_config_applies_live_and_survives_restart(tmp_path):
    from conftest import Broker
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource

    def broker_change(admin, name, value, op=AlterConfigOpType.SET):
        resource = ConfigResource(
            ConfigResource.Type.BROKER,
            "0",
            incremental_configs=[ConfigEntry(name, value, incremental_operation=op)],
        )
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(30)

    def topic_entries(admin):
        described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "dyn")])
        return list(described.values())[0].result(30)

    b = Broker(tmp_path, "[log]\nretention_check_interval_ms = 100")
    try:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        for future in admin.create_topics([NewTopic("dyn", 1, 1, config={"segment.bytes": "10000"})]).values():
            future.result(30)
        producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1, "batch.size": 2000})
        for i in range(2000):
            producer.produce("dyn", value=b"x" * 100, partition=0)
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused"})
        assert consumer.get_watermark_offsets(TopicPartition("dyn", 0), timeout=10)[0] == 0

        # Kafka's error codes for a bad value and for a config that is not dynamic.
        with pytest.raises(KafkaException) as bad:
            broker_change(admin, "log.retention.bytes", "lots")
        assert bad.value.args[0].name() == "INVALID_CONFIG"
        with pytest.raises(KafkaException) as fixed:
            broker_change(admin, "log.dirs", "/elsewhere")
        assert fixed.value.args[0].name() == "INVALID_REQUEST"

        broker_change(admin, "log.retention.bytes", "20000")
        entry = topic_entries(admin)["retention.bytes"]
        assert entry.value == "20000"
        assert entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        assert "log.retention.bytes" in entry.synonyms
        described = admin.describe_configs([ConfigResource(ConfigResource.Type.BROKER, "0")])
        broker_entries = list(described.values())[0].result(30)
        assert broker_entries["log.retention.bytes"].value == "20000"
        assert broker_entries["log.retention.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
        assert broker_entries["log.dirs"].is_read_only

        # The partition, which has no retention.bytes of its own, takes it at once.
        deadline = time.monotonic() + 20
        low = 0
        while low == 0 and time.monotonic() < deadline:
            low = consumer.get_watermark_offsets(TopicPartition("dyn", 0), timeout=10)[0]
            time.sleep(0.1)
        assert low > 0, "retention applied the dynamic log.retention.bytes"
        consumer.close()

        # Persisted: a restart keeps it; DELETE goes back to the default.
        assert b.stop() == 0
        b.start()
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        entry = topic_entries(admin)["retention.bytes"]
        assert (entry.value, entry.source) == ("20000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
        broker_change(admin, "log.retention.bytes", None, AlterConfigOpType.DELETE)
        entry = topic_entries(admin)["retention.bytes"]
        assert (entry.value, entry.source) == ("-1", ConfigSource.DEFAULT_CONFIG.value)
    finally:
        assert b.stop() == 0


def test_describe_cluster(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    cluster = admin.describe_cluster().result(30)
    assert [n.id for n in cluster.nodes] == [0]
    assert cluster.nodes[0].port == broker.port
    assert cluster.controller.id == 0
    assert cluster.cluster_id == "broker-single-node"


def stored_codecs(broker, topic):
    """The codec (attributes & 7) of every batch in partition 0's segment files."""
    codecs = []
    for segment in sorted((broker.dir / "data" / f"{topic}-0").glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            length = int.from_bytes(data[pos + 8:pos + 12], "big")
            if length == 0:
                break
            attributes = int.from_bytes(data[pos + 21:pos + 23], "big")
            codecs.append(attributes & 7)
            pos += 12 + length
    return codecs


@pytest.mark.parametrize("producer_codec,topic_codec,stored", [("gzip", "zstd", 4), ("zstd", "uncompressed", 0)])
def test_topic_compression_type_recompresses(broker, producer_codec, topic_codec, stored):
    topic = f"cf-{producer_codec}-to-{topic_codec}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    new = NewTopic(topic, 1, 1, config={"compression.type": topic_codec})
    for future in admin.create_topics([new]).values():
        future.result(30)
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": producer_codec,
                         "acks": "all", "linger.ms": 20})
    sent = []
    for i in range(1000):
        record = (b"k%d" % i, b'{"id": %d, "pad": "%s"}' % (i, b"x" * (i % 50)),
                  [("h", b"%d" % i)], 1_600_000_000_000 + i)
        producer.produce(topic, key=record[0], value=record[1], headers=record[2], timestamp=record[3],
                         partition=0, on_delivery=lambda err, msg: err and errors.append(err))
        sent.append(record)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    codecs = stored_codecs(broker, topic)
    assert codecs and set(codecs) == {stored}, codecs
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got.append((m.key(), m.value(), m.headers(), m.timestamp()[1]))
    consumer.close()
    assert got == sent
