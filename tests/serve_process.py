"""Real ``bert-hub serve`` (or uvicorn) processes on 127.0.0.1 for the serve tests: started on a
free port, waited for (GET /health 200) with a bound, stopped with SIGTERM (then killed if it
overstays), their output kept for the failure message."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import requests

START_SECONDS = 90        # import torch + FastAPI, load, warm up: a few seconds; generous on a busy CI
STOP_SECONDS = 30
TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process: ``bert-hub serve ARGS`` or, with ``script``, ``_serve_apps.py ARGS``
    (an app with a model of known behaviour, run by ``bert_hub.serve.serve`` as the CLI runs it)."""

    def __init__(self, args: List[str], log: Path, env: Optional[dict] = None, script: bool = False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        program = [str(TESTS / "_serve_apps.py")] if script else ["-m", "bert_hub.cli", "serve"]
        command = [sys.executable, *program, *args, "--host", "127.0.0.1", "--port", str(self.port),
                   "--log-level", "warning"]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(TESTS), os.environ.get("PYTHONPATH", "")]), **(env or {})}
        self._log = open(log, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=environment, cwd=str(log.parent))

    def wait_ready(self, timeout: float = START_SECONDS) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"the server was not ready within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = STOP_SECONDS) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"the server did not stop within {timeout} s of SIGTERM:\n{self.output()}")

    def stop(self) -> int:
        self.terminate()
        try:
            return self.wait()
        finally:
            self._log.close()

    def post(self, path: str, payload=None, timeout: float = 60, **kwargs):
        return requests.post(self.url + path, json=payload, timeout=timeout, **kwargs)

    def get(self, path: str, timeout: float = 30, **kwargs):
        return requests.get(self.url + path, timeout=timeout, **kwargs)


def start_all(specs, folder: Path) -> dict:
    """Start every ``name: args`` at once (they load in parallel), then wait for each."""
    servers = {}
    try:
        for name, args in specs.items():
            servers[name] = Server(args, folder / f"{name}.log")
        for server in servers.values():
            server.wait_ready()
    except BaseException:
        for server in servers.values():
            server.stop() if server.process.poll() is None else None
        raise
    return servers
