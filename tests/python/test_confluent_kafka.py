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
