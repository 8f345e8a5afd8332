"""Transactions from Python clients: confluent-kafka (librdkafka) and kafka-python commit and
abort; read_committed consumers of both libraries see exactly the committed records."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer


def create(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)


def read_committed(bootstrap, topic, partitions, expected):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        for m in consumer.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got.append(m.value())
    got.extend(m.value() for m in consumer.consume(10, 0.5))
    consumer.close()
    return got


def test_confluent_kafka_commit_and_abort(broker):
    create(broker.bootstrap, "py-txn", 2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "py-txn-1"})
    producer.init_transactions(30)
    committed = []
    for t in range(6):
        producer.begin_transaction()
        values = [b"t%d-%03d" % (t, i) for i in range(100)]
        for i, v in enumerate(values):
            producer.produce("py-txn", value=v, partition=i % 2)
        if t % 2:
            producer.flush(30)
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)
            committed.extend(values)
    got = read_committed(broker.bootstrap, "py-txn", 2, len(committed))
    assert sorted(got) == sorted(committed)


def test_kafka_python_transactions_and_read_committed(broker):
    create(broker.bootstrap, "kp-txn", 1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="kp-txn-1")
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(50):
        producer.send("kp-txn", value=b"keep-%02d" % i, partition=0)
    producer.commit_transaction()
    producer.begin_transaction()
    for i in range(50):
        producer.send("kp-txn", value=b"drop-%02d" % i, partition=0)
    producer.flush()
    producer.abort_transaction()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    tp = __import__("kafka").TopicPartition("kp-txn", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning()
    # Read until the position passes the last stable offset (both markers included), not
    # until the consumer has been idle for a while: how fast the machine is cannot matter.
    end = consumer.end_offsets([tp])[tp]
    got = []
    deadline = time.monotonic() + 30
    while consumer.position(tp) < end and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(r.value for r in records)
    assert consumer.position(tp) >= end, f"read to {consumer.position(tp)} of {end} in 30 s"
    consumer.close()
    assert got == [b"keep-%02d" % i for i in range(50)]
    # librdkafka's read_committed consumer agrees.
    assert sorted(read_committed(broker.bootstrap, "kp-txn", 1, 50)) == got
