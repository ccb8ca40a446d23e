"""The suite's kernel mode (``BERT_HUB_TEST_KERNELS``), applied in every Python process the
tests start: tests/conftest.py puts this folder first on ``PYTHONPATH`` when a mode is set, so
child processes (scripts, torchrun workers, killed loaders) compute with the same kernels as
the test that checks them.

Modes, a stand-in for CPUs whose kernels round differently from the one at hand:

- ``default``: as installed.
- ``plain``: ``bert_hub.fast_path.ENABLED = False`` (F.linear, three projections).
- ``no-onednn``: ``torch.backends.mkldnn.enabled = False`` (MKL's kernels where torch or the
  fast path would take oneDNN's).

Nothing is imported here: each setting is applied right after its module is first imported
(or at once, if it already is), so processes that never import torch stay light.
"""
from __future__ import annotations

import importlib
import importlib.abc
import os
import sys

VARIABLE = "BERT_HUB_TEST_KERNELS"


def _fast_path_off(module) -> None:
    module.ENABLED = False


def _onednn_off(module) -> None:
    importlib.import_module("torch.backends.mkldnn").enabled = False


# mode -> {module name: what to do once it is imported}
MODES = {
    "default": {},
    "plain": {"bert_hub.fast_path": _fast_path_off},
    "no-onednn": {"torch": _onednn_off},
}


def mode() -> str:
    """The mode the environment asks for; an unknown one stops the run with the choices."""
    name = os.environ.get(VARIABLE, "").strip() or "default"
    if name not in MODES:
        raise SystemExit(f"{VARIABLE}={name!r} is not a kernel mode; choose one of {sorted(MODES)}")
    return name


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs an action right after a module's own code, the first time it is imported."""

    def __init__(self, actions: dict):
        self.actions = dict(actions)

    def find_spec(self, name, path=None, target=None):
        action = self.actions.get(name)
        if action is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        real = spec.loader.exec_module
        del self.actions[name]

        def exec_module(module):
            real(module)
            action(module)

        spec.loader.exec_module = exec_module
        return spec


def install(name: str) -> None:
    """Apply mode ``name`` to this process: now for modules already imported, else on import."""
    pending = {}
    for module_name, action in MODES[name].items():
        if module_name in sys.modules:
            action(sys.modules[module_name])
        else:
            pending[module_name] = action
    if pending:
        sys.meta_path.insert(0, _AfterImport(pending))


install(mode())
