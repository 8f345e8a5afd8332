"""Client quotas (KIP-546) through kafka-python's protocol classes: neither
confluent-kafka 2.16 nor kafka-python's admin client has alter/describe_client_quotas, so
the test encodes AlterClientQuotas and DescribeClientQuotas v1 with kafka-python's message
classes and sends them on a socket. Then a confluent-kafka producer over its
producer_byte_rate is held near it."""
import socket
import struct
import time

from confluent_kafka import Producer
from kafka.protocol.admin import (
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
)

from conftest import Broker


class Wire:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.correlation = 0

    def call(self, request, response_class, version=1):
        self.correlation += 1
        request.with_header(correlation_id=self.correlation, client_id="pytest-quotas")
        self.sock.sendall(request.encode(version=version, header=True, framed=True))
        size = struct.unpack(">i", self._read(4))[0]
        return response_class.decode(self._read(size), version=version, header=True)

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the broker closed the connection"
            data += chunk
        return data


def alter(wire, entries, validate_only=False):
    E = AlterClientQuotasRequest.EntryData
    req = AlterClientQuotasRequest(
        entries=[
            E(
                entity=[E.EntityData(entity_type=t, entity_name=n) for t, n in entity],
                ops=[E.OpData(key=k, value=v, remove=r) for k, v, r in ops],
            )
            for entity, ops in entries
        ],
        validate_only=validate_only,
    )
    resp = wire.call(req, AlterClientQuotasResponse)
    return [e.error_code for e in resp.entries]


def describe(wire, components, strict=False):
    C = DescribeClientQuotasRequest.ComponentData
    req = DescribeClientQuotasRequest(
        components=[C(entity_type=t, match_type=m, match=n) for t, m, n in components],
        strict=strict,
    )
    resp = wire.call(req, DescribeClientQuotasResponse)
    entries = [
        (
            tuple((c.entity_type, c.entity_name) for c in e.entity),
            tuple(sorted((v.key, v.value) for v in e.values)),
        )
        for e in (resp.entries or [])
    ]
    entries.sort(key=repr)
    return resp.error_code, entries


def test_alter_and_describe_quotas_survive_a_restart(tmp_path):
    broker = Broker(tmp_path)
    try:
        wire = Wire(broker.port)
        codes = alter(
            wire,
            [
                ([("user", "alice")], [("producer_byte_rate", 1024.0, False)]),
                ([("user", None), ("client-id", None)], [("request_percentage", 25.0, False)]),
                ([("user", "alice")], [("no_such_key", 1.0, False)]),
            ],
        )
        assert codes == [0, 0, 42]
        assert alter(wire, [([("client-id", "x")], [("consumer_byte_rate", 5.0, False)])], True) == [0]
        error, entries = describe(wire, [("user", 2, None)])
        assert error == 0
        assert entries == sorted(
            [
                ((("user", None), ("client-id", None)), (("request_percentage", 25.0),)),
                ((("user", "alice"),), (("producer_byte_rate", 1024.0),)),
            ],
            key=repr,
        )
        assert describe(wire, [("client-id", 0, "x")]) == (0, [])
        assert describe(wire, [("user", 0, None)])[0] == 42
        wire.sock.close()
        assert broker.stop() == 0
        broker.start()
        assert describe(Wire(broker.port), [("user", 2, None)]) == (0, entries)
    finally:
        broker.stop()


def test_a_producer_over_its_byte_rate_is_held_near_it(tmp_path):
    quota = 200_000.0
    broker = Broker(tmp_path, "quota_window_num = 2")
    try:
        codes = alter(
            Wire(broker.port),
            [([("client-id", "noisy-py")], [("producer_byte_rate", quota, False)])],
        )
        assert codes == [0]
        delivered = [0]

        def on_delivery(err, msg):
            if err is None:
                delivered[0] += len(msg.value())

        p = Producer(
            {
                "bootstrap.servers": broker.bootstrap,
                "client.id": "noisy-py",
                "linger.ms": 5,
                "batch.size": 16384,
                "queue.buffering.max.kbytes": 2048,
            }
        )
        value = b"p" * 1000
        started = time.monotonic()
        while time.monotonic() - started < 5:
            try:
                p.produce("quota-py", value, on_delivery=on_delivery)
            except BufferError:
                p.poll(0.01)
            p.poll(0)
        elapsed = time.monotonic() - started
        rate = delivered[0] / elapsed
        p.purge()
        p.flush(10)
        assert rate < 2 * quota, f"{rate:.0f} B/s against {quota}"
        assert rate > 0.25 * quota, f"{rate:.0f} B/s: starved"
    finally:
        broker.stop()
