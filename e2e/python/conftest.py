"""Starts Tern or nats-server for each test, the way the Rust harness does: loopback, a port
from the OS, the port read back from the ports file. TERN_E2E_SERVERS selects the servers."""

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def server_binary(kind):
    if kind == "tern":
        path = os.environ.get("TERN_BIN") or os.path.join(
            os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "tern"
        )
        if not os.access(path, os.X_OK):
            pytest.fail(f"tern binary not found at {path}: run `cargo build -p tern-broker` or set TERN_BIN")
        return path
    if kind == "nats-server-current":
        candidates = [
            os.environ.get("NATS_SERVER_CURRENT_BIN"),
            os.path.join(ROOT, ".cache", "nats-server-2.12", "nats-server"),
        ]
        for path in candidates:
            if path and os.access(path, os.X_OK):
                return path
        pytest.fail("nats-server 2.12 not found: run e2e/setup/install-test-deps.sh or set NATS_SERVER_CURRENT_BIN")
    if kind != "nats-server":
        pytest.fail(f"unknown server kind {kind!r} in TERN_E2E_SERVERS")
    path = os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(path, os.X_OK):
        pytest.fail("nats-server not found: run e2e/setup/install-test-deps.sh or set NATS_SERVER_BIN")
    return path


def selected_kinds():
    return [kind.strip() for kind in os.environ.get("TERN_E2E_SERVERS", "tern,nats-server").split(",") if kind.strip()]


class Server:
    def __init__(self, kind, config=None):
        self.kind = kind
        self.directory = tempfile.mkdtemp(prefix=f"tern-py-{kind}-")
        self.log = open(os.path.join(self.directory, "server.log"), "wb")
        arguments = [server_binary(kind), "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", self.directory]
        if config is not None:
            config_path = os.path.join(self.directory, "server.conf")
            with open(config_path, "w") as config_file:
                config_file.write(config)
            arguments += ["-c", config_path]
        self.process = subprocess.Popen(
            arguments,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            files = glob.glob(os.path.join(self.directory, "*.ports"))
            if files:
                try:
                    with open(files[0]) as ports_file:
                        ports = json.load(ports_file)
                    self.url = (ports.get("nats") or ports.get("client"))[0]
                    self.websocket_urls = ports.get("websocket") or []
                    break
                except (ValueError, TypeError):
                    pass
            if self.process.poll() is not None:
                pytest.fail(f"{kind} exited before it was ready: {self.read_log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{kind} wrote no ports file within 20s: {self.read_log()}")
            time.sleep(0.02)

    def read_log(self):
        self.log.flush()
        with open(self.log.name, "rb") as log:
            return log.read().decode(errors="replace")[-4000:]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(params=selected_kinds())
def server(request):
    started = Server(request.param)
    yield started
    started.stop()


@pytest.fixture(params=selected_kinds())
def compressing_websocket_server(request):
    """A server with a plain ws:// listener that agrees to permessage-deflate."""
    started = Server(
        request.param,
        config="websocket {\n  host: 127.0.0.1\n  port: -1\n  no_tls: true\n  compression: true\n}\n",
    )
    yield started
    started.stop()
