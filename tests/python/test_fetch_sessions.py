"""kafka-python uses incremental fetch sessions (KIP-227) when the broker offers them (its
enable_incremental_fetch_sessions defaults to true; librdkafka never does). One consumer
assigned many partitions, fed in rounds to a few of them at a time, reads every record
exactly once, and its fetch session moved past the first incremental epoch."""
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

PARTITIONS = 60
ROUNDS = 5
PER_ROUND = 5  # partitions fed per round
RECORDS = 20  # per fed partition per round


def session_epochs(consumer):
    # The client's own record of its sessions, one handler per broker (kafka-python keeps
    # it in the fetcher); an epoch above 1 means incremental fetches were answered.
    return [h.next_metadata.epoch for h in consumer._fetcher._session_handlers.values()]


def test_many_partitions_through_a_fetch_session(broker, closing):
    admin = closing(KafkaAdminClient(bootstrap_servers=broker.bootstrap))
    admin.create_topics([NewTopic("fs", PARTITIONS, 1)])
    producer = closing(KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5))
    consumer = closing(
        KafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
    )
    tps = [TopicPartition("fs", p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = []
    sent = []
    for r in range(ROUNDS):
        for p in range(r * PER_ROUND, (r + 1) * PER_ROUND):
            for i in range(RECORDS):
                value = b"%d-%d-%d" % (r, p, i)
                producer.send("fs", value=value, partition=p)
                sent.append((p, value))
        producer.flush(30)
        deadline = time.monotonic() + 30
        while len(got) < len(sent) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend((m.partition, m.value, m.offset) for m in records)
        assert len(got) == len(sent), f"round {r}: {len(got)} of {len(sent)}"
    # Anything past the expected count would be a duplicate.
    for records in consumer.poll(timeout_ms=500).values():
        got.extend((m.partition, m.value, m.offset) for m in records)
    assert sorted((p, v) for p, v, _ in got) == sorted(sent)
    assert len({(p, o) for p, _, o in got}) == len(got)
    epochs = session_epochs(consumer)
    assert epochs and max(epochs) > 1, f"no incremental fetch was answered: {epochs}"
