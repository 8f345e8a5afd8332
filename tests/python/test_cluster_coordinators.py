"""kafka-python and confluent-kafka across a group coordinator kill: three broker processes (a metadata quorum on
127.0.0.1, free ports, temp dirs), a consumer group given all three addresses that commits
each record synchronously; after half the records the consumer's coordinator is killed with
SIGKILL. The group goes on at the new leader of its __consumer_offsets partition from the
committed offsets: every record is consumed, and none whose commit was acknowledged is
consumed again. And a confluent-kafka transactional producer whose transaction
coordinator is killed with SIGKILL between its sends and its commit: the transaction
commits on the new leader of its __transaction_state partition, and a read_committed
consumer reads it whole, once. Bounded waits only."""
import socket
import struct
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from conftest import Broker, free_port

RECORDS = 60
BEFORE_KILL = 30


def start_cluster(tmp_path):
    controllers = [free_port() for _ in range(3)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{port}" for i, port in enumerate(controllers))
    brokers = []
    for node in range(1, 4):
        home = tmp_path / f"node{node}"
        home.mkdir()
        brokers.append(
            Broker(
                home,
                f'node_id = {node}\ncontroller_quorum_voters = "{voters}"\n'
                "broker_heartbeat_interval_ms = 200\nbroker_session_timeout_ms = 2000\n"
                "offsets_topic_num_partitions = 3\ntransaction_state_log_num_partitions = 3\n"
                "group_initial_rebalance_delay_ms = 0\n"
                "group_min_session_timeout_ms = 1000",
            )
        )
    return brokers


def create_replicated_topic(bootstrap, name):
    """RF=3, retried while the quorum has no leader yet (NOT_CONTROLLER) or the brokers
    have not all registered."""
    deadline = time.monotonic() + 30
    while True:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        try:
            admin.create_topics(
                [NewTopic(name, 1, 3, topic_configs={"min.insync.replicas": "2"})]
            )
            return
        except Exception as err:  # retriable until the cluster has formed
            if time.monotonic() > deadline:
                raise AssertionError(f"CreateTopics kept failing: {err}")
            time.sleep(0.2)
        finally:
            admin.close()


def test_a_group_resumes_from_its_commits_after_a_coordinator_kill(tmp_path, closing):
    brokers = start_cluster(tmp_path)
    bootstrap = [b.bootstrap for b in brokers]
    try:
        create_replicated_topic(bootstrap, "coordinated")
        producer = closing(KafkaProducer(bootstrap_servers=bootstrap, acks="all"))
        for i in range(RECORDS):
            producer.send("coordinated", value=b"r-%03d" % i, partition=0)
        producer.flush(30)

        consumer = closing(
            KafkaConsumer(
                "coordinated",
                bootstrap_servers=bootstrap,
                group_id="kp-survivors",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=6000,
                heartbeat_interval_ms=500,
                request_timeout_ms=10000,
                retry_backoff_ms=100,
                reconnect_backoff_max_ms=1000,
            )
        )
        delivered = {}
        committed = set()
        again = []
        failed = 0
        victim = None
        deadline = time.monotonic() + 60
        while len(committed) < RECORDS:
            assert time.monotonic() < deadline, (
                f"{len(committed)} of {RECORDS} committed within 60 s, "
                f"{failed} commits failed, coordinator {victim} killed"
            )
            if victim is None and len(committed) >= BEFORE_KILL:
                # kafka-python names its coordinator connection "coordinator-<node id>".
                victim = int(str(consumer._coordinator.coordinator_id).rsplit("-", 1)[-1])
                assert victim in (1, 2, 3), victim
                brokers[victim - 1].proc.kill()
                brokers[victim - 1].proc.wait()
            for tp, records in consumer.poll(timeout_ms=500, max_records=1).items():
                for r in records:
                    if r.value in committed:
                        again.append(r.value)
                    delivered[r.value] = delivered.get(r.value, 0) + 1
                    try:
                        consumer.commit({tp: OffsetAndMetadata(r.offset + 1, None, -1)})
                        committed.add(r.value)
                    except Exception:  # retriable: the record comes again
                        failed += 1
        assert victim is not None
        assert again == [], f"consumed again after an acknowledged commit: {again}"
        assert sorted(delivered) == [b"r-%03d" % i for i in range(RECORDS)]
        position = consumer.committed(TopicPartition("coordinated", 0))
        assert position == RECORDS, position
    finally:
        for b in brokers:
            if b.proc.poll() is None:
                b.proc.kill()
                b.proc.wait()


def serving_coordinator(brokers, group):
    """The node whose coordinator holds the group's members, asking each broker in turn
    (its FindCoordinator answer, then DescribeGroups there): the one the consumer uses,
    whichever broker FindCoordinator sends it to."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + 20
    while True:
        found = set()
        for b in brokers:
            if b.proc.poll() is not None:
                continue
            admin = AdminClient({"bootstrap.servers": b.bootstrap})
            try:
                d = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
                if d.members and d.state != ConsumerGroupState.DEAD:
                    found.add(d.coordinator.id)
            except Exception:
                pass
        if len(found) == 1:
            return found.pop()
        assert time.monotonic() < deadline, f"no single coordinator holds the group: {found}"
        time.sleep(0.2)


def test_confluent_kafka_group_resumes_after_a_coordinator_kill(tmp_path):
    from confluent_kafka import Consumer, KafkaException, Producer

    brokers = start_cluster(tmp_path)
    bootstrap = ",".join(b.bootstrap for b in brokers)
    try:
        create_replicated_topic([b.bootstrap for b in brokers], "coordinated")
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for i in range(RECORDS):
            producer.produce("coordinated", value=b"r-%03d" % i, partition=0)
        assert producer.flush(30) == 0

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "ck-survivors",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
            }
        )
        consumer.subscribe(["coordinated"])
        delivered = {}
        committed = set()
        again = []
        victim = None
        deadline = time.monotonic() + 60
        try:
            while len(committed) < RECORDS:
                assert time.monotonic() < deadline, (
                    f"{len(committed)} of {RECORDS} committed within 60 s, "
                    f"coordinator {victim} killed"
                )
                if victim is None and len(committed) >= BEFORE_KILL:
                    victim = serving_coordinator(brokers, "ck-survivors")
                    brokers[victim - 1].proc.kill()
                    brokers[victim - 1].proc.wait()
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                if msg.value() in committed:
                    again.append(msg.value())
                delivered[msg.value()] = delivered.get(msg.value(), 0) + 1
                try:
                    consumer.commit(message=msg, asynchronous=False)
                    committed.add(msg.value())
                except KafkaException:  # retriable: the record comes again
                    pass
        finally:
            consumer.close()
        assert victim is not None
        assert again == [], f"consumed again after an acknowledged commit: {again}"
        assert sorted(delivered) == [b"r-%03d" % i for i in range(RECORDS)]
    finally:
        for b in brokers:
            if b.proc.poll() is None:
                b.proc.kill()
                b.proc.wait()


def find_transaction_coordinator(broker, transactional_id):
    """The node FindCoordinator v1 (key type 1, a transactional id) names at `broker`, or
    None while it answers an error (the topic being created, a partition being loaded)."""
    key = transactional_id.encode()
    client = b"txn-test"
    body = struct.pack(">hhih", 10, 1, 1, len(client)) + client
    body += struct.pack(">h", len(key)) + key + struct.pack(">b", 1)
    try:
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
            assert 0 < size < 1 << 20, size
            answer = sock.recv(size, socket.MSG_WAITALL)
    except OSError:
        return None
    # correlation id, throttle time, error code, error message (nullable string), node id
    _, _, error = struct.unpack_from(">iih", answer, 0)
    (message_len,) = struct.unpack_from(">h", answer, 10)
    (node,) = struct.unpack_from(">i", answer, 12 + max(message_len, 0))
    return node if error == 0 else None


def test_confluent_kafka_transaction_commits_across_a_coordinator_kill(tmp_path):
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    brokers = start_cluster(tmp_path)
    bootstrap = ",".join(b.bootstrap for b in brokers)
    txn_id = "ck-txn-survivor"
    settings = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 60000,
    }
    try:
        create_replicated_topic([b.bootstrap for b in brokers], "txn-coordinated")
        producer = Producer(settings)
        producer.init_transactions(30)

        def write(name):
            producer.begin_transaction()
            values = [b"%s-%03d" % (name, i) for i in range(RECORDS)]
            for value in values:
                producer.produce("txn-coordinated", value=value, partition=0)
            assert producer.flush(30) == 0
            return values

        def commit():
            """True once committed; False when aborted or the producer had to be replaced."""
            nonlocal producer
            deadline = time.monotonic() + 90
            while True:
                try:
                    producer.commit_transaction(30)
                    return True
                except KafkaException as err:
                    error = err.args[0]
                    if error.retriable() and time.monotonic() < deadline:
                        continue
                    if error.txn_requires_abort():
                        producer.abort_transaction(30)
                        return False
                    producer = Producer(settings)
                    producer.init_transactions(30)
                    return False

        first = write(b"open")
        deadline = time.monotonic() + 20
        victim = None
        while victim is None:
            assert time.monotonic() < deadline, "no transaction coordinator within 20 s"
            victim = find_transaction_coordinator(brokers[0], txn_id)
            time.sleep(0.1 if victim is None else 0)
        brokers[victim - 1].proc.kill()
        brokers[victim - 1].proc.wait()
        assert commit(), "the transaction open when its coordinator died commits"
        last = write(b"after")
        assert commit()

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "ck-txn-reader",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition("txn-coordinated", 0, 0)])
        seen = []
        deadline = time.monotonic() + 60
        try:
            while not set(last) <= set(seen):
                assert time.monotonic() < deadline, f"read {len(seen)} records within 60 s"
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                seen.append(msg.value())
        finally:
            consumer.close()
        assert seen == first + last, seen
    finally:
        for b in brokers:
            if b.proc.poll() is None:
                b.proc.kill()
                b.proc.wait()
