"""JSON from a model folder (configs, tokenizer settings, checkpoint indexes, sentence-
transformers' module lists) read with bounds: whatever a file holds, the reader returns a value
or raises one typed error that names the file, in time proportional to a capped size.

Python's ``json`` recurses once per nesting level: a few KB of ``[[[[...`` raise
``RecursionError`` from deep inside (or, with a raised recursion limit, overflow the C stack).
So the nesting is counted first, without recursion, and a file nested deeper than any config
needs (``MAX_DEPTH``) or larger than any config is (``MAX_BYTES``) is refused before parsing.
"""
from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any, Type

if TYPE_CHECKING:     # imports nothing of bert_hub: any module may read JSON through it
    from .errors import BertHubError

# A BERT config is about 1 KB; one with thousands of labels, or a large checkpoint's index,
# stays well under 1 MB.
MAX_BYTES = 16 << 20
# Configs nest two or three levels (id2label, task_specific_params).
MAX_DEPTH = 64

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_INNERMOST = re.compile(r"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")    # a pair with no pair inside


def nests_deeper_than(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether ``[`` and ``{`` nest more than ``limit`` deep in JSON text (brackets inside
    strings not counted): strings blanked, then the innermost pairs removed one level per
    pass, at most ``limit`` passes of regular expressions (no recursion, no Python loop per
    character). Brackets left open count as nesting, as a parser would recurse into them."""
    if text.count("[") + text.count("{") <= limit:
        return False
    rest = _STRING.sub('""', text)
    for level in range(limit):
        if "[" not in rest and "{" not in rest:
            return False
        rest, removed = _INNERMOST.subn("0", rest)
        if not removed:                               # only unclosed brackets are left
            return level + rest.count("[") + rest.count("{") > limit
    return "[" in rest or "{" in rest


def parse_json(text: str, where: str, error: Type["BertHubError"], fix: str) -> Any:
    """``json.loads(text)``; invalid or too deeply nested JSON is ``error`` naming ``where``
    (a file, or a field of one) and ending with ``fix``."""
    if nests_deeper_than(text):
        raise error(f"{where} nests too deeply (more than {MAX_DEPTH} levels of JSON arrays or "
                    f"objects, which no config has); {fix}")
    try:
        return json.loads(text)
    except RecursionError:        # the count above bounds it; a lowered recursion limit may not
        raise error(f"{where} nests too deeply to read; {fix}") from None
    except ValueError as exc:     # JSONDecodeError, or an integer of thousands of digits
        raise error(f"{where} is not valid JSON ({str(exc)[:200]}); {fix}") from None


def read_json(path: os.PathLike, error: Type["BertHubError"], what: str = "JSON file",
              fix: str = "fix or delete it", max_bytes: int = MAX_BYTES) -> Any:
    """The JSON value in the file at ``path`` (UTF-8, a byte-order mark allowed). A file that
    is missing, unreadable, over ``max_bytes``, not UTF-8, not JSON or nested too deeply is
    ``error``: "<what> '<path>' ...; <fix>"."""
    where = f"{what} {os.fspath(path)!r}"
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{where} does not exist") from None
    except IsADirectoryError:
        raise error(f"{where} is a folder, not a file; {fix}") from None
    except OSError as exc:
        raise error(f"{where} cannot be read ({exc.strerror or exc}); {fix}") from None
    if len(raw) > max_bytes:
        raise error(f"{where} is over {max_bytes >> 20} MB, far larger than any config; {fix}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start}); {fix}") \
            from None
    return parse_json(text, where, error, fix)
