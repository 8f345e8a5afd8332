"""Memory with many partitions and the restart time: starts the broker binary (argv[1],
default target/release/broker) on a free port with a temporary data dir, creates a topic
of 1,000 partitions and reads the RSS, creates 9,000 more, restarts the broker (SIGTERM,
start) and times it to listening and to a Metadata answer listing all 10,000 partitions.

    .venv/bin/python scripts/partitions-bench.py target/release/broker
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient, NewTopic

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/broker"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(proc):
    with open(f"/proc/{proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start(config, log, port):
    proc = subprocess.Popen([BIN, "--config", config], stdout=subprocess.DEVNULL, stderr=log)
    began = time.monotonic()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, time.monotonic() - began
        except OSError:
            if proc.poll() is not None or time.monotonic() - began > 60:
                raise RuntimeError("the broker did not start listening")
            time.sleep(0.01)


def partitions(admin):
    metadata = admin.list_topics(timeout=60)
    return sum(len(t.partitions) for t in metadata.topics.values())


def main():
    work = tempfile.mkdtemp()
    port = free_port()
    config = os.path.join(work, "config.toml")
    with open(config, "w") as f:
        f.write(f'listen = "127.0.0.1:{port}"\ndata_dir = "{work}/data"\n')
    log = open(os.path.join(work, "broker.log"), "ab")
    try:
        proc, _ = start(config, log, port)
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        for f in admin.create_topics([NewTopic("idle", 1000, 1)]).values():
            f.result(120)
        time.sleep(5)  # a settled, idle broker is what is measured, not the creation
        print(f"1,000 partitions idle: RSS {rss_mb(proc):.1f} MB")
        began = time.monotonic()
        for i in range(9):
            for f in admin.create_topics([NewTopic(f"more-{i}", 1000, 1)]).values():
                f.result(300)
        print(f"9,000 more partitions created in {time.monotonic() - began:.1f} s; "
              f"RSS {rss_mb(proc):.1f} MB; Metadata lists {partitions(admin)}")
        proc.terminate()
        proc.wait(120)
        proc, listening = start(config, log, port)
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
        began = time.monotonic()
        count = partitions(admin)
        print(f"restart with {count} partitions: listening after {listening:.2f} s, "
              f"Metadata answered {time.monotonic() - began:.2f} s later; RSS {rss_mb(proc):.1f} MB")
        proc.terminate()
        proc.wait(120)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
