"""Reading ``BERT_HUB_*`` environment variables, always when a function runs (never at import),
with one meaning for every boolean and a clear error for a value that is neither; and the one
rule for showing a progress bar."""
from __future__ import annotations

import os
import sys
from typing import Optional

from .errors import InvalidInputError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def flag(name: str) -> bool:
    """True for 1/true/yes/on, False for unset, empty or 0/false/no/off (any case)."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InvalidInputError(
        f"{name}={os.environ[name]!r} is not a yes/no value: set it to 1 (or true/yes/on) to turn "
        "it on, or 0 (or unset it) to turn it off")


def seconds(name: str, default: float) -> float:
    """A non-negative number of seconds, ``default`` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InvalidInputError(
            f"{name}={raw!r} is not a number of seconds >= 0; set it to e.g. 600, or unset it "
            f"for the default ({default:g} s)")
    return value


def progress_disabled() -> bool:
    """BERT_HUB_DISABLE_PROGRESS: no progress bar anywhere, unless a caller forces one."""
    return flag("BERT_HUB_DISABLE_PROGRESS")


def progress_enabled(progress: Optional[bool] = None) -> bool:
    """Whether to draw a progress bar: ``progress`` when the caller says; by default only where
    someone watches (stderr is a terminal, or a notebook) and BERT_HUB_DISABLE_PROGRESS is
    unset, so scripts writing to a file or a pipe stay free of bars."""
    if progress is not None:
        return bool(progress)
    if progress_disabled():
        return False
    return _stderr_is_tty() or _in_notebook()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
