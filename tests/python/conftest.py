"""A real broker process per test: free port on 127.0.0.1, temporary data dir, bounded waits."""
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BROKER_BIN = os.environ.get("BROKER_BIN", str(ROOT / "target" / "debug" / "broker"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, tmp_path, extra=""):
        self.dir = tmp_path
        self.port = free_port()
        if callable(extra):  # config lines that name the port (`listeners`)
            extra = extra(self.port)
        self.config = tmp_path / "config.toml"
        if callable(extra):  # lines that must name the port the broker is awaited on
            extra = extra(self.port)
        self.config.write_text(
            f'listen = "127.0.0.1:{self.port}"\ndata_dir = "{tmp_path / "data"}"\n{extra}\n'
        )
        self.log = tmp_path / "broker.log"
        self.proc = None
        self.start()

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            [BROKER_BIN, "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("broker exited at start:\n" + self.log.read_text())
                if time.monotonic() > deadline:
                    raise RuntimeError("broker not ready in 20 s:\n" + self.log.read_text())
                time.sleep(0.02)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode if self.proc else None


@pytest.fixture
def closing():
    """Closes every client a test hands it, when the test ends, passed or failed. A
    kafka-python client left open keeps reconnecting to its stopped broker on the event loop
    all kafka-python clients of the process share, and later tests' consumers starve."""
    clients = []

    def register(client):
        clients.append(client)
        return client

    yield register
    for client in reversed(clients):
        client.close()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path, "default_partitions = 1")
    yield b
    code = b.stop()
    assert code == 0, "broker did not shut down cleanly:\n" + b.log.read_text()


def run_client(broker, argv, timeout=180, **kw):
    """Runs one client test program against `broker`, bounded by `timeout`; fails the test on
    a non-zero exit or a timeout, showing the program's output and the broker's log tail."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
        status = f"exited with {done.returncode}"
        out, err, ok = done.stdout, done.stderr, done.returncode == 0
    except subprocess.TimeoutExpired as e:
        status = f"ran past {timeout} s"
        out, err, ok = e.stdout or "", e.stderr or "", False
        out, err = (s.decode(errors="replace") if isinstance(s, bytes) else s for s in (out, err))
    if not ok:
        log_tail = "\n".join(broker.log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(
            f"{argv[0]} {status}\n--- stdout\n{out}\n--- stderr\n{err}\n--- broker log tail\n{log_tail}",
            pytrace=False,
        )
    return out
