"""Suite-wide guards: every test gets its own empty cache and environment, and no socket may
reach anything but loopback; the kernel mode (``BERT_HUB_TEST_KERNELS``, docs/testing.md) for
this process and every Python process the tests start."""
import importlib.util
import ipaddress
import os
import socket
import sys
from pathlib import Path

import pytest

from http_server import file_server  # noqa: F401  (fixture: a real HTTP server on 127.0.0.1)
from mirror import mirror  # noqa: F401  (fixture: that server as a mirror of Google's bucket)

KERNEL_MODE_DIR = Path(__file__).parent / "kernel_mode"


def _kernel_mode():
    """tests/kernel_mode/sitecustomize.py, loaded here under its own name (it applies the mode
    to this process as it loads)."""
    spec = importlib.util.spec_from_file_location("bert_hub_test_kernel_mode",
                                                  KERNEL_MODE_DIR / "sitecustomize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_configure(config):
    mode = _kernel_mode().mode()
    if mode != "default":     # child processes import the same file as their sitecustomize
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join([str(KERNEL_MODE_DIR), *paths])
    config.bert_hub_kernel_mode = mode


def pytest_report_header(config):
    return f"kernel mode: {config.bert_hub_kernel_mode} (BERT_HUB_TEST_KERNELS)"


_BERT_HUB_VARS = (
    "BERT_HUB_CACHE", "BERT_HUB_OFFLINE", "BERT_HUB_ENDPOINT", "BERT_HUB_REGISTRY",
    "BERT_HUB_DISABLE_PROGRESS", "XDG_CACHE_HOME",
)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    for name in _BERT_HUB_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BERT_HUB_CACHE", str(tmp_path / "bert_hub_cache"))
    monkeypatch.setenv("BERT_HUB_DISABLE_PROGRESS", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost,::1")
    yield


def _is_loopback(address):
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return True
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already leave the machine


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded(real):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise ConnectionRefusedError(f"tests may only reach loopback, not {address!r}")
        return real(self, address)
    return connect


@pytest.fixture(autouse=True, scope="session")
def loopback_only():
    socket.socket.connect = _guarded(_real_connect)
    socket.socket.connect_ex = _guarded(_real_connect_ex)
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(autouse=True, scope="session")
def committed_fixtures_stay_untouched():
    """A test that loads a committed Google folder in place would convert beside it and change
    what every later test reads: copy it to tmp_path first."""
    from pathlib import Path
    data = Path(__file__).parent / "data"
    before = sorted(p.relative_to(data).as_posix() for p in data.rglob("*"))
    yield
    after = sorted(p.relative_to(data).as_posix() for p in data.rglob("*"))
    assert after == before, f"tests wrote into tests/data: {sorted(set(after) - set(before))}"


class _BlockTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError("tensorflow is blocked in the process under test")


@pytest.fixture
def no_tensorflow(monkeypatch):
    """Any attempt to import TensorFlow from the process under test fails (TensorFlow stays an
    oracle, run in subprocesses)."""
    monkeypatch.setattr(sys, "meta_path", [_BlockTensorFlow(), *sys.meta_path])
    yield
