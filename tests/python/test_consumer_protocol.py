"""confluent-kafka (librdkafka) with group.protocol=consumer: Kafka 4's consumer group
protocol (KIP-848), the broker assigning. Two then three members split 12 partitions, every
record consumed exactly once across them with their commits; a member killed with SIGKILL
loses its partitions to the others within the session timeout; a rolling restart of the
members loses nothing. Every wait is bounded."""
import signal
import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker

PARTITIONS = 12
SESSION_MS = 3000


@pytest.fixture
def kip848(tmp_path):
    b = Broker(
        tmp_path,
        f"group_consumer_session_timeout_ms = {SESSION_MS}\n"
        "group_consumer_heartbeat_interval_ms = 500\n",
    )
    yield b
    code = b.stop()
    assert code == 0, "broker did not shut down cleanly:\n" + b.log.read_text()


def create(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(30)


def produce(bootstrap, topic, start, count):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for i in range(start, start + count):
        producer.produce(topic, value=b"%06d" % i, partition=i % PARTITIONS,
                         on_delivery=lambda err, msg: err and errors.append(err))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []


def member(bootstrap, group, name, assignor=None):
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "client.id": name,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if assignor:
        config["group.remote.assignor"] = assignor
    return Consumer(config)


def poll_round(members, seen, timeout=0.2):
    """One poll of each member; records go to `seen` (value -> times), then a synchronous
    commit of what the member has processed, so a partition that moves resumes after it."""
    for name, consumer in members.items():
        msgs = consumer.consume(500, timeout)
        for m in msgs:
            assert m.error() is None, m.error()
            seen.setdefault(m.value(), []).append(name)
        if msgs:
            try:
                consumer.commit(asynchronous=False)
            except KafkaException as e:
                # A commit racing a revocation is refused; the record may come again.
                print(f"{name}: commit refused: {e}")


# Commit errors Kafka's clients retry (librdkafka does not flag them retriable here).
COORDINATOR_ERRORS = {
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.REQUEST_TIMED_OUT,
}


def commit_until_answered(consumer, message, deadline):
    """A synchronous commit of `message`, retried while the coordinator answers one of
    COORDINATOR_ERRORS (the new one still loading its partition:
    COORDINATOR_LOAD_IN_PROGRESS), as Kafka's own commitSync retries: librdkafka hands
    that error to the application, and a record whose commit is dropped there never
    comes again. False: refused for good (the record may come again after a rebalance)."""
    while True:
        try:
            consumer.commit(message=message, asynchronous=False)
            return True
        except KafkaException as e:
            if e.args[0].code() not in COORDINATOR_ERRORS or time.monotonic() > deadline:
                print(f"commit of offset {message.offset()} refused: {e}")
                return False
            time.sleep(0.1)


def wait_until(members, seen, done, what, limit=60):
    deadline = time.monotonic() + limit
    while not done():
        assert time.monotonic() < deadline, f"{what} not within {limit} s"
        poll_round(members, seen)


def loads(members):
    return sorted(len(c.assignment()) for c in members.values())


@pytest.mark.parametrize("assignor", [None, "range"])
def test_two_then_three_members_split_twelve_partitions_exactly_once(kip848, assignor):
    topic = "kip848-split"
    create(kip848.bootstrap, topic)
    produce(kip848.bootstrap, topic, 0, 600)
    members = {n: member(kip848.bootstrap, "split", n, assignor) for n in ("m1", "m2")}
    for c in members.values():
        c.subscribe([topic])
    seen = {}
    wait_until(members, seen, lambda: len(seen) == 600 and loads(members) == [6, 6],
               "two members at 6 partitions each with every record")
    members["m3"] = member(kip848.bootstrap, "split", "m3", assignor)
    members["m3"].subscribe([topic])
    produce(kip848.bootstrap, topic, 600, 600)
    wait_until(members, seen, lambda: len(seen) == 1200 and loads(members) == [4, 4, 4],
               "three members at 4 partitions each with every record")
    # Anything left would show up now.
    for _ in range(5):
        poll_round(members, seen)
    assert sorted(seen) == [b"%06d" % i for i in range(1200)]
    twice = {v: who for v, who in seen.items() if len(who) > 1}
    assert twice == {}, f"{len(twice)} records consumed more than once"
    owned = [tp.partition for c in members.values() for tp in c.assignment()]
    assert sorted(owned) == list(range(PARTITIONS)), "every partition owned once"
    if assignor == "range":
        # The range assignor gives each member a contiguous run.
        for c in members.values():
            mine = sorted(tp.partition for tp in c.assignment())
            assert mine == list(range(mine[0], mine[0] + 4)), mine
    for c in members.values():
        c.close()


KILLED_MEMBER = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "group.protocol": "consumer", "client.id": "doomed",
              "auto.offset.reset": "earliest"})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.2)
    if c.assignment():
        print(len(c.assignment()), flush=True)
"""


def test_a_killed_members_partitions_move_within_its_session_timeout(kip848):
    topic = "kip848-kill"
    create(kip848.bootstrap, topic)
    doomed = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, kip848.bootstrap, "kill", topic],
                              stdout=subprocess.PIPE, text=True)
    try:
        # The doomed member owns partitions first, then the survivor joins.
        line = doomed.stdout.readline()
        assert line.strip(), "the doomed member got no partitions"
        members = {"survivor": member(kip848.bootstrap, "kill", "survivor")}
        members["survivor"].subscribe([topic])
        seen = {}
        wait_until(members, seen, lambda: loads(members) == [6], "the survivor at 6 partitions")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        killed = time.monotonic()
        wait_until(members, seen, lambda: loads(members) == [PARTITIONS],
                   "the killed member's partitions moved", limit=SESSION_MS / 1000 + 15)
        moved_after = time.monotonic() - killed
        print(f"partitions moved {moved_after:.2f} s after the kill (session {SESSION_MS} ms)")
        assert moved_after < SESSION_MS / 1000 + 5
        assert "its session timed out" in kip848.log.read_text()
        members["survivor"].close()
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(10)


def test_a_rolling_restart_of_the_members_loses_nothing(kip848):
    topic = "kip848-roll"
    create(kip848.bootstrap, topic)
    names = ("r1", "r2", "r3")
    members = {n: member(kip848.bootstrap, "roll", n) for n in names}
    for c in members.values():
        c.subscribe([topic])
    seen = {}
    wait_until(members, seen, lambda: loads(members) == [4, 4, 4], "three members at 4 each")
    produced = 0
    for n in names:
        produce(kip848.bootstrap, topic, produced, 300)
        produced += 300
        for _ in range(3):
            poll_round(members, seen)
        members[n].close()
        members[n] = member(kip848.bootstrap, "roll", n)
        members[n].subscribe([topic])
    produce(kip848.bootstrap, topic, produced, 300)
    produced += 300
    wait_until(members, seen, lambda: len(seen) == produced and loads(members) == [4, 4, 4],
               "every record after the restarts")
    assert sorted(seen) == [b"%06d" % i for i in range(produced)]
    twice = sum(1 for who in seen.values() if len(who) > 1)
    print(f"{produced} records, {twice} consumed twice")
    assert twice == 0
    for c in members.values():
        c.close()


def test_a_consumer_group_goes_on_after_its_coordinator_is_killed(tmp_path):
    """Cluster mode: the group's records are on __consumer_offsets, so after the
    coordinator's SIGKILL the new coordinator of the group's partition loads the member
    with its member id and epoch, and the member goes on (no rejoin) from its commits.
    Nothing is lost, and nothing whose commit was acknowledged comes again."""
    from test_cluster_coordinators import create_replicated_topic, start_cluster

    group, topic, records = "kip848-ha", "kip848-ha", 60
    brokers = start_cluster(tmp_path)
    bootstrap = ",".join(b.bootstrap for b in brokers)
    consumer = None
    try:
        create_replicated_topic(bootstrap, topic)
        produce_to = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for i in range(records):
            produce_to.produce(topic, value=b"%06d" % i, partition=0)
        assert produce_to.flush(30) == 0
        consumer = member(bootstrap, group, "ha")
        consumer.subscribe([topic])
        committed, again, victim = set(), [], None
        deadline = time.monotonic() + 90
        while len(committed) < records:
            assert time.monotonic() < deadline, (
                f"{len(committed)} of {records} committed in 90 s, coordinator {victim} killed")
            if victim is None and len(committed) >= records // 2:
                # The coordinator is the broker whose log speaks of the group.
                holders = [i for i, b in enumerate(brokers) if f"group={group}" in b.log.read_text()]
                assert len(holders) == 1, holders
                victim = holders[0]
                member_id = consumer.memberid()
                brokers[victim].proc.kill()
                brokers[victim].proc.wait()
            m = consumer.poll(0.5)
            if m is None or m.error():
                continue
            if m.value() in committed:
                again.append(m.value())
            if commit_until_answered(consumer, m, deadline):
                committed.add(m.value())
        assert victim is not None
        assert again == [], f"consumed again after an acknowledged commit: {again}"
        assert sorted(committed) == [b"%06d" % i for i in range(records)]
        others = [b.log.read_text() for i, b in enumerate(brokers) if i != victim]
        assert any(f"group={group}" in log for log in others), "the member went on elsewhere"
        loaded = [line for log in others for line in log.splitlines()
                  if "Consumer group loaded with its members" in line and f"group={group}" in line]
        assert loaded, "the new coordinator loaded the group with its member"
        assert consumer.memberid() == member_id, "the member kept its member id"

    finally:
        if consumer is not None:
            consumer.close()
        for b in brokers:
            if b.proc.poll() is None:
                b.proc.kill()
                b.proc.wait()
