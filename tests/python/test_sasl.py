"""SASL on a SASL_PLAINTEXT listener with the Python clients: an admin logging in with PLAIN
makes SCRAM users with confluent-kafka's AdminClient (AlterUserScramCredentials), who then
produce and consume with SCRAM-SHA-512 (confluent-kafka) and SCRAM-SHA-256 (kafka-python);
a wrong password fails with an authentication error; the users survive a restart;
kafka-python produces and consumes with PLAIN."""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition

from conftest import Broker


def sasl_broker(tmp_path):
    return Broker(
        tmp_path,
        lambda port: f'listeners = "SASL_PLAINTEXT://127.0.0.1:{port}"\n'
        "connection_failed_authentication_delay_ms = 10\n"
        "[sasl_plain_users]\n"
        'admin = "admin-secret"\n',
    )


@pytest.fixture
def sasl(tmp_path):
    b = sasl_broker(tmp_path)
    yield b
    code = b.stop()
    assert code == 0, "broker did not shut down cleanly:\n" + b.log.read_text()


def ck_config(broker, mechanism, user, password):
    return {
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def make_users(broker):
    admin = AdminClient(ck_config(broker, "PLAIN", "admin", "admin-secret"))
    upserts = [
        UserScramCredentialUpsertion(
            "alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"alice-secret"
        ),
        UserScramCredentialUpsertion(
            "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"bob-secret"
        ),
    ]
    for user, future in admin.alter_user_scram_credentials(upserts, request_timeout=20).items():
        assert future.result() is None, user
    described = admin.describe_user_scram_credentials(["alice", "bob"], request_timeout=20)
    alice = described["alice"].result()
    assert [(i.mechanism, i.iterations) for i in alice.scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_512, 8192)
    ]
    return admin


def produce_with(config, topic, n):
    errors = []
    producer = Producer(dict(config, **{"error_cb": errors.append, "message.timeout.ms": 20000}))
    for i in range(n):
        producer.produce(topic, value=b"v%d" % i)
    assert producer.flush(30) == 0, errors
    return errors


def consume_with(config, topic, n):
    consumer = Consumer(dict(config, **{"group.id": "sasl-test", "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m.value())
    consumer.close()
    return got


def test_confluent_kafka_scram_users_made_online_survive_a_restart(tmp_path):
    broker = sasl_broker(tmp_path)
    try:
        make_users(broker)
        alice = ck_config(broker, "SCRAM-SHA-512", "alice", "alice-secret")
        produce_with(alice, "scram-t", 20)
        assert consume_with(alice, "scram-t", 20) == [b"v%d" % i for i in range(20)]

        # A wrong password: an authentication error, no delivery.
        errors = []
        bad = Producer(
            dict(
                ck_config(broker, "SCRAM-SHA-512", "alice", "wrong"),
                **{"error_cb": errors.append, "message.timeout.ms": 3000},
            )
        )
        reports = []
        bad.produce("scram-t", value=b"never", on_delivery=lambda err, _: reports.append(err))
        bad.flush(15)
        assert len(reports) == 1 and reports[0] is not None, "not delivered"
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors

        assert broker.stop() == 0
        broker.start()
        assert consume_with(alice, "scram-t", 20) == [b"v%d" % i for i in range(20)]
    finally:
        broker.stop()


def test_kafka_python_plain_and_scram_sha_256(sasl, closing):
    make_users(sasl)
    for mechanism, user, password in [
        ("PLAIN", "admin", "admin-secret"),
        ("SCRAM-SHA-256", "bob", "bob-secret"),
    ]:
        auth = dict(
            bootstrap_servers=sasl.bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=mechanism,
            sasl_plain_username=user,
            sasl_plain_password=password,
        )
        topic = f"kp-{mechanism.lower()}"
        producer = closing(KafkaProducer(acks="all", **auth))
        for i in range(10):
            producer.send(topic, value=b"m%d" % i, partition=0).get(timeout=30)
        consumer = closing(KafkaConsumer(enable_auto_commit=False, **auth))
        tp = KpTopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(r.value for r in records)
        assert got == [b"m%d" % i for i in range(10)], mechanism
