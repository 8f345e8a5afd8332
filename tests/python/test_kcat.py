"""kcat (Debian's, on its own librdkafka) lists metadata and round-trips lines."""
import shutil
import subprocess

import pytest

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


@pytest.fixture
def kcat():
    if KCAT is None:
        pytest.fail("kcat is not installed: scripts/test.sh installs it")
    return KCAT


def run(args, **kw):
    return subprocess.run(args, capture_output=True, timeout=60, check=True, **kw)


def test_metadata_listing(broker, kcat):
    run([kcat, "-b", broker.bootstrap, "-P", "-t", "listed", "-p", "0"], input=b"one\n")
    out = run([kcat, "-b", broker.bootstrap, "-L"]).stdout.decode()
    assert f"broker 0 at 127.0.0.1:{broker.port}" in out
    assert 'topic "listed" with 1 partitions' in out


def test_produce_and_consume_lines(broker, kcat):
    lines = [f"line-{i}" for i in range(500)]
    run([kcat, "-b", broker.bootstrap, "-P", "-t", "lines", "-p", "0"], input=("\n".join(lines) + "\n").encode())
    out = run([kcat, "-b", broker.bootstrap, "-C", "-t", "lines", "-p", "0", "-o", "beginning", "-e", "-q"]).stdout.decode()
    assert out.splitlines() == lines
