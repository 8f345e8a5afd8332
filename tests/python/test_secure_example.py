"""examples/secure as the README runs it: make-certs.sh writes the certificates into certs/,
`broker user add` makes the first administrator offline, and the broker starts with
examples/secure/config.toml in that directory (BROKER_* overrides give it free ports and a
temporary data dir). admin produces and consumes over SASL_SSL with SCRAM-SHA-512; a
plaintext client on the SASL_PLAINTEXT port gets nothing, and the broker keeps serving
admin there with PLAIN checked against the same credential; kcat (Debian's librdkafka 2.0.2)
reads the records back over SASL_SSL with SCRAM-SHA-512."""
import os
import shutil
import signal
import socket
import subprocess
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import BROKER_BIN, ROOT, free_port

EXAMPLE = ROOT / "examples" / "secure"


def wait_listening(proc, port, log):
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("broker exited at start:\n" + log.read_text())
            if time.monotonic() > deadline:
                raise RuntimeError("broker not ready in 20 s:\n" + log.read_text())
            time.sleep(0.02)


def produce_and_consume(config, topic, n):
    errors = []
    producer = Producer(dict(config, **{"acks": "all", "error_cb": errors.append,
                                        "message.timeout.ms": 20000}))
    for i in range(n):
        producer.produce(topic, value=b"secure-%03d" % i)
    assert producer.flush(30) == 0, errors
    consumer = Consumer(dict(config, **{"group.id": "secure-example", "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        for m in consumer.consume(n, 0.5):
            assert m.error() is None, m.error()
            got.append(m.value())
    consumer.close()
    assert got == [b"secure-%03d" % i for i in range(n)]


def test_the_secure_example_runs_as_documented(tmp_path):
    subprocess.run([str(EXAMPLE / "make-certs.sh"), "certs"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=120)
    for name in ["ca.pem", "broker.pem", "broker-key.pem", "client.pem", "client-key.pem"]:
        assert (tmp_path / "certs" / name).stat().st_size > 0, name
    (tmp_path / "admin.pw").write_text("admin-secret")

    sasl_ssl, sasl_plaintext = free_port(), free_port()
    env = dict(os.environ,
               BROKER_LISTENERS=f"SASL_SSL://127.0.0.1:{sasl_ssl},"
                                f"SASL_PLAINTEXT://127.0.0.1:{sasl_plaintext}",
               BROKER_DATA_DIR=str(tmp_path / "data"))
    config = str(EXAMPLE / "config.toml")
    subprocess.run([BROKER_BIN, "--config", config, "user", "add", "--name", "admin",
                    "--mechanism", "SCRAM-SHA-512", "--password-file", "admin.pw"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)

    log = tmp_path / "broker.log"
    proc = subprocess.Popen([BROKER_BIN, "--config", config], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
    try:
        wait_listening(proc, sasl_ssl, log)
        wait_listening(proc, sasl_plaintext, log)
        admin_ssl = {"bootstrap.servers": f"127.0.0.1:{sasl_ssl}", "security.protocol": "SASL_SSL",
                     "ssl.ca.location": str(tmp_path / "certs" / "ca.pem"),
                     "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                     "sasl.password": "admin-secret"}
        produce_and_consume(admin_ssl, "secure-t", 50)
        metadata = AdminClient(admin_ssl).list_topics(timeout=10)
        assert [(b.host, b.port) for b in metadata.brokers.values()] == [("127.0.0.1", sasl_ssl)]

        # A plaintext client on the SASL port is closed before it is served anything.
        plaintext = AdminClient({"bootstrap.servers": f"127.0.0.1:{sasl_plaintext}",
                                 "security.protocol": "PLAINTEXT"})
        try:
            plaintext.list_topics(timeout=5)
            raise AssertionError("a plaintext client was served on the SASL_PLAINTEXT port")
        except KafkaException:
            pass

        # The broker still serves admin on that port (PLAIN against the SCRAM credential).
        admin_plain = {"bootstrap.servers": f"127.0.0.1:{sasl_plaintext}",
                       "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                       "sasl.username": "admin", "sasl.password": "admin-secret"}
        topics = AdminClient(admin_plain).list_topics(timeout=10).topics
        assert "secure-t" in topics

        # kcat (Debian's librdkafka 2.0.2, which echoes its SCRAM nonce twice) as in the README.
        kcat = shutil.which("kcat") or shutil.which("kafkacat")
        assert kcat is not None, "kcat is not installed: scripts/test.sh installs it"
        admin_kcat = [kcat, "-b", f"127.0.0.1:{sasl_ssl}", "-X", "security.protocol=SASL_SSL",
                      "-X", "ssl.ca.location=certs/ca.pem", "-X", "sasl.mechanism=SCRAM-SHA-512",
                      "-X", "sasl.username=admin", "-X", "sasl.password=admin-secret"]
        out = subprocess.run(admin_kcat + ["-C", "-t", "secure-t", "-p", "0", "-o", "beginning",
                                           "-e", "-q"],
                             cwd=tmp_path, capture_output=True, timeout=60, check=True)
        assert out.stdout.decode().splitlines() == ["secure-%03d" % i for i in range(50)]
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        assert code == 0, log.read_text()
