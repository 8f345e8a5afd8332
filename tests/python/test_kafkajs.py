"""kafkajs (npm, pinned in tests/js/package-lock.json): admin, idempotent producer and a
consumer group whose second run resumes after its commits, against a fresh broker. The
program checks its own results and exits non-zero saying what differed."""
import shutil

import pytest
from conftest import ROOT, run_client

NODE = shutil.which("node")
JS = ROOT / "tests" / "js"


@pytest.fixture
def kafkajs():
    if NODE is None or not (JS / "node_modules" / "kafkajs").is_dir():
        pytest.fail("node or kafkajs is missing: scripts/test.sh runs npm ci in tests/js")
    return [NODE, str(JS / "roundtrip.js")]


def test_kafkajs_admin_producer_consumer_group(broker, kafkajs):
    out = run_client(broker, kafkajs + [f"--bootstrap={broker.bootstrap}", "--topic=kafkajs", "--records=150"])
    assert "each read once in order" in out
