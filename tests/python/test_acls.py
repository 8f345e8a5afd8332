"""ACLs with confluent-kafka over SASL_SSL and SCRAM-SHA-512 (issue 14's scenario): the super
user `admin` (PLAIN) makes user alice and, with AdminClient.create_acls, an ACL letting her
write topic t1 only. Alice's produce to t1 is delivered, to t2 it fails with
TOPIC_AUTHORIZATION_FAILED, her Metadata does not list t2, and a wrong password fails with
an authentication error. describe_acls and delete_acls round-trip the ACL."""
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from conftest import Broker
from test_ssl import make_certs


def sasl_ssl(broker, certs, mechanism, user, password):
    return {
        "bootstrap.servers": broker.bootstrap,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(certs / "ca.pem"),
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def deliver(config, topic, timeout_ms=10000):
    """Produces one record; the delivery error (None when delivered) and the client errors."""
    errors, reports = [], []
    producer = Producer(dict(config, **{"error_cb": errors.append, "message.timeout.ms": timeout_ms}))
    producer.produce(topic, value=b"v", on_delivery=lambda err, _: reports.append(err))
    producer.flush(20)
    assert len(reports) == 1, "no delivery report"
    return reports[0], errors


def test_alice_may_write_t1_only_over_sasl_ssl(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs)
    broker = Broker(
        tmp_path,
        lambda port: f'listeners = "SASL_SSL://127.0.0.1:{port}"\n'
        f'ssl_keystore_location = "{certs / "broker.pem"}"\n'
        'authorizer_class_name = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"\n'
        'super_users = "User:admin"\n'
        "connection_failed_authentication_delay_ms = 10\n"
        "[sasl_plain_users]\n"
        'admin = "admin-secret"\n',
    )
    try:
        admin = AdminClient(sasl_ssl(broker, certs, "PLAIN", "admin", "admin-secret"))
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
        made = admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion("alice", info, b"alice-secret")], request_timeout=20
        )
        assert made["alice"].result() is None
        for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("t1", "t2")]).values():
            f.result(20)
        allow = AclBinding(ResourceType.TOPIC, "t1", ResourcePatternType.LITERAL,
                           "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
        assert admin.create_acls([allow], request_timeout=20)[allow].result() is None
        everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,
                                      None, None, AclOperation.ANY, AclPermissionType.ANY)
        assert admin.describe_acls(everything, request_timeout=20).result() == [allow]

        alice = sasl_ssl(broker, certs, "SCRAM-SHA-512", "alice", "alice-secret")
        err, _ = deliver(alice, "t1")
        assert err is None, err
        err, _ = deliver(alice, "t2")
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

        topics = AdminClient(alice).list_topics(timeout=20).topics
        assert "t1" in topics and "t2" not in topics, sorted(topics)

        err, errors = deliver(sasl_ssl(broker, certs, "SCRAM-SHA-512", "alice", "wrong"), "t1", 2000)
        assert err is not None
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors

        just_allow = AclBindingFilter(ResourceType.TOPIC, "t1", ResourcePatternType.LITERAL,
                                      "User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW)
        deleted = admin.delete_acls([just_allow], request_timeout=20)[just_allow].result()
        assert deleted == [allow]
        err, _ = deliver(alice, "t1")
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    finally:
        assert broker.stop() == 0, "broker did not shut down cleanly:\n" + broker.log.read_text()
