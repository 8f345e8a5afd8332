"""confluent-kafka over an SSL listener: a CA and a broker certificate made with openssl,
records produced and consumed through TLS, and the SSL listener advertised to its clients."""
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import Broker, free_port


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(d):
    """ca.pem, and broker.pem holding the broker's certificate (127.0.0.1, localhost) and key."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
            "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=broker",
            "-keyout", "broker-key.pem", "-out", "broker.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "broker-cert.pem", cwd=d)
    (d / "broker.pem").write_text((d / "broker-cert.pem").read_text() + (d / "broker-key.pem").read_text())


def test_produce_and_consume_over_ssl(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs)
    ssl_port = free_port()
    broker = Broker(tmp_path, lambda port: (
        f'listeners = "PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{ssl_port}"\n'
        f'ssl_keystore_location = "{certs / "broker.pem"}"\n'))
    try:
        client = {"bootstrap.servers": f"127.0.0.1:{ssl_port}", "security.protocol": "SSL",
                  "ssl.ca.location": str(certs / "ca.pem")}
        metadata = AdminClient(client).list_topics(timeout=10)
        assert [(b.host, b.port) for b in metadata.brokers.values()] == [("127.0.0.1", ssl_port)]

        errors = []
        producer = Producer({**client, "acks": "all", "linger.ms": 5})
        for i in range(1000):
            producer.produce("cf-ssl", value=b"tls-%04d" % i, on_delivery=lambda err, msg: err and errors.append(err))
            producer.poll(0)
        assert producer.flush(30) == 0
        assert errors == []

        consumer = Consumer({**client, "group.id": "unused", "enable.auto.commit": False})
        consumer.assign([TopicPartition("cf-ssl", 0, 0)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 1000 and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                assert m.error() is None, m.error()
                got.append(m.value())
        consumer.close()
        assert got == [b"tls-%04d" % i for i in range(1000)]
    finally:
        assert broker.stop() == 0, broker.log.read_text()
