"""Runs example.py, as a team would, against a real `charla up` (every service, a data folder of
its own, free ports), with a token signed from the key set charla up made, and checks what each of
its steps printed."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
READY_TIMEOUT_S = 60
EXAMPLE_TIMEOUT_S = 120


def charla_binary() -> Path:
    explicit = os.environ.get("CHARLA_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/charla/target")
    return Path(target) / "debug" / "charla"


@pytest.fixture(scope="module")
def charla_up(tmp_path_factory):
    """`charla up` on free ports (port 0: it prints the ones it got); yields them and its data folder."""
    binary = charla_binary()
    if not binary.is_file():
        pytest.fail(f"charla not found at {binary}: build it (cargo build -p charla) or set CHARLA_BIN")
    work = tmp_path_factory.mktemp("charla-up")
    env = dict(os.environ, CHARLA_DATA_DIR=str(work / "data"), RUST_LOG="warn")
    log_path = work / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(binary), "up", "--contact-port", "0", "--conversation-port", "0",
             "--metrics-port", "0", "--admin-port-offset", "0"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    try:
        ports = {}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ports) < 3 and process.poll() is None and time.monotonic() < deadline:
            text = log_path.read_text(errors="replace")
            ports = dict(re.findall(r"^  (contact|conversation|metrics) +[0-9.]+:(\d+) ", text, re.M))
            time.sleep(0.1)
        if len(ports) < 3:
            pytest.fail("charla up did not start:\n" + log_path.read_text(errors="replace"))
        yield ports, work / "data"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_example_drives_all_three_services_and_decodes_bad_request(charla_up):
    ports, data = charla_up
    finished = subprocess.run(
        [sys.executable, str(HERE / "example.py"),
         "--contact", f"127.0.0.1:{ports['contact']}",
         "--conversation", f"127.0.0.1:{ports['conversation']}",
         "--metrics", f"127.0.0.1:{ports['metrics']}",
         "--jwks", str(data / "jwks.json"), "--workspace", str(uuid.uuid4())],
        capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S)
    assert finished.returncode == 0, finished.stderr
    steps = {line["step"]: line for line in map(json.loads, finished.stdout.splitlines())}

    assert steps["resolved contact"]["created"] is True
    assert uuid.UUID(steps["resolved contact"]["contact_id"])
    assert steps["message recorded"]["opened"] is True
    assert steps["conversation closed"]["status"] == "CONVERSATION_STATUS_CLOSED"
    assert steps["dashboard"]["closed_today"] == 1
    assert steps["dashboard"]["opened_today"] == 1
    refused = steps["bad input refused"]
    assert refused["code"] == "INVALID_ARGUMENT"
    assert [field for field, _ in refused["violations"]] == ["contact.email"]
    assert all(description for _, description in refused["violations"])
