"""Model names -> where their archives live and how to use them (``ModelSpec``).

The records are data: ``data/google_checkpoints.json`` (Google's releases, with the published
hashes) and ``data/demo_registry.json`` (the embedded demo, when present) ship in the package;
``BERT_HUB_REGISTRY`` names more JSON files of the same schema (several joined with
``os.pathsep``), read in order, later files winning: an entry with an existing name replaces it,
an alias moves to the later entry. Every entry is validated when loaded and an error names the
file, the entry and the fix.

Schema of a file: ``{"models": [entry, ...]}`` (or a bare list); keys starting with ``_`` are
comments. An entry::

    {"name": "my-bert",                  # required; also the cache folder name
     "url": "s3://bucket/my-bert.zip",   # required; http(s)://, s3://, file://, package://, path
     "do_lower_case": true,              # required: a wrong guess silently breaks a model
     "aliases": ["my_L-12"], "top_folder": "my_L-12", "max_len": 512,
     "file_sha256": {"vocab.txt": "<64 hex>"}, "archive_sha256": "<64 hex>", "note": "..."}

A relative path in ``url`` is relative to the JSON file. ``package://<package>/<path>`` names a
file shipped inside an installed package; ``resolve_url`` turns it into a ``file://`` URL.
"""
from __future__ import annotations

import difflib
import functools
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import EntryNotFoundError, RegistryError, UnknownModelError

PACKAGE_FILES = ("google_checkpoints.json", "demo_registry.json")  # under bert_hub/data/
URL_SCHEMES = ("http", "https", "s3", "file", "package")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a name is also a cache folder name
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    aliases: Tuple[str, ...]
    url: str
    top_folder: Optional[str]          # the archive's single top folder; None: flat or unknown
    do_lower_case: bool
    max_len: int                       # position embeddings: the longest input in wordpieces
    file_sha256: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    archive_sha256: Optional[str] = None
    note: Optional[str] = None
    source: str = field(default="", compare=False)  # the file this entry came from


# ----------------------------------------------------------------------------------------------
# Validation of one file


_FIELDS = ("name", "aliases", "url", "top_folder", "do_lower_case", "max_len", "file_sha256",
           "archive_sha256", "note")
_REQUIRED = ("name", "url", "do_lower_case")


def _fail(source: str, where: str, problem: str) -> RegistryError:
    return RegistryError(f"Registry file {source}, {where}: {problem}")


def parse_entry(raw: object, source: str, index: int, base_dir: Optional[Path] = None) -> ModelSpec:
    """One JSON entry -> ModelSpec, or a RegistryError naming the file, the entry and the fix."""
    where = f"entry {index}"
    if not isinstance(raw, dict):
        raise _fail(source, where, f"expected an object with {', '.join(_REQUIRED)}, "
                                   f"got {type(raw).__name__}.")
    if isinstance(raw.get("name"), str):
        where = f"entry {index} ({raw['name']!r})"
    for key in raw:
        if key not in _FIELDS and not str(key).startswith("_"):
            close = difflib.get_close_matches(str(key), _FIELDS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known fields: {', '.join(_FIELDS)}."
            raise _fail(source, where, f"unknown field {key!r}.{hint}")
    for key in _REQUIRED:
        if raw.get(key) is None:
            raise _fail(source, where, f"the required field {key!r} is missing (or null).")

    def check(key, ok, expected):
        if key in raw and raw[key] is not None and not ok(raw[key]):
            raise _fail(source, where, f"{key!r} must be {expected}, got {raw[key]!r}.")

    is_name = lambda v: isinstance(v, str) and bool(_NAME.match(v))  # noqa: E731
    name_rule = "letters, digits, '.', '_' or '-' (it names a cache folder)"
    check("name", is_name, f"a non-empty name of {name_rule}")
    check("aliases", lambda v: isinstance(v, list) and all(is_name(a) for a in v),
          f"a list of names of {name_rule}")
    check("url", lambda v: isinstance(v, str) and v.strip() != "", "a URL or path string")
    check("top_folder", lambda v: isinstance(v, str) and v and "/" not in v and v not in (".", ".."),
          "a folder name (no '/') or null")
    check("do_lower_case", lambda v: isinstance(v, bool), "true or false")
    check("max_len", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
          "a positive integer")
    check("file_sha256", lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(h, str) and _SHA256.match(h) for k, h in v.items()),
        "an object of file name -> 64 lowercase hex digits")
    check("archive_sha256", lambda v: isinstance(v, str) and bool(_SHA256.match(v)),
          "64 lowercase hex digits or null")
    check("note", lambda v: isinstance(v, str), "a string")
    aliases = tuple(raw.get("aliases") or ())
    if raw["name"] in aliases or len(set(aliases)) != len(aliases):
        raise _fail(source, where, f"aliases {list(aliases)} repeat each other or the name.")
    return ModelSpec(
        name=raw["name"],
        aliases=aliases,
        url=_normalise_url(raw["url"].strip(), source, where, base_dir),
        top_folder=raw.get("top_folder"),
        do_lower_case=raw["do_lower_case"],
        max_len=raw.get("max_len") or 512,
        file_sha256=MappingProxyType(dict(raw.get("file_sha256") or {})),
        archive_sha256=raw.get("archive_sha256"),
        note=raw.get("note"),
        source=source,
    )


def _normalise_url(url: str, source: str, where: str, base_dir: Optional[Path]) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme in URL_SCHEMES:
        return url
    if scheme == "" or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):  # a path (C:\ too)
        path = Path(url).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return str(path)
    raise _fail(source, where, f"the url {url!r} has an unsupported scheme {scheme!r}; use one of "
                               f"{', '.join(s + '://' for s in URL_SCHEMES)} or a path.")


def parse_file(path: Union[str, os.PathLike], source: Optional[str] = None) -> List[ModelSpec]:
    """Every entry of one registry JSON file, validated; names and aliases unique in the file."""
    path = Path(path)
    source = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"Registry file {source} does not exist. Fix the path in "
                            f"BERT_HUB_REGISTRY or unset it.") from None
    except OSError as exc:
        raise RegistryError(f"Registry file {source} cannot be read ({exc.strerror}).") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RegistryError(f"Registry file {source} is not valid JSON ({exc}). Fix it, or unset "
                            f"BERT_HUB_REGISTRY.") from None
    entries = data.get("models") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise RegistryError(f"Registry file {source} must hold {{\"models\": [...]}} or a list of "
                            f"entries; found {type(data).__name__} without a 'models' list.")
    specs = [parse_entry(raw, source, i, path.parent) for i, raw in enumerate(entries)]
    seen: Dict[str, str] = {}
    for spec in specs:
        for key in (spec.name,) + spec.aliases:
            if key in seen:
                raise RegistryError(f"Registry file {source}: {key!r} is used by both {seen[key]!r} "
                                    f"and {spec.name!r}. Names and aliases must be unique; "
                                    f"rename one.")
            seen[key] = spec.name
    return specs


# ----------------------------------------------------------------------------------------------
# The registry


class Registry:
    """Specs by name, in file order, with aliases; later specs override earlier ones."""

    def __init__(self, layers: Sequence[Sequence[ModelSpec]] = ()):
        self._specs: Dict[str, ModelSpec] = {}
        self._aliases: Dict[str, str] = {}
        for layer in layers:
            for spec in layer:
                self._add(spec)

    def _add(self, spec: ModelSpec) -> None:
        old = self._specs.get(spec.name)  # replaced in place: it keeps its place in listings
        if old is not None:
            for alias in old.aliases:
                self._aliases.pop(alias, None)
        if spec.name in self._aliases:  # the new name was an alias of an earlier entry: take it
            self._drop_alias(spec.name)
        for alias in spec.aliases:
            if alias in self._specs:
                raise RegistryError(
                    f"Registry file {spec.source}: the alias {alias!r} of {spec.name!r} is the name "
                    f"of the entry from {self._specs[alias].source}. Rename the alias, or override "
                    f"that entry by giving yours the name {alias!r}.")
            if alias in self._aliases:
                self._drop_alias(alias)
            self._aliases[alias] = spec.name
        self._specs[spec.name] = spec

    def _drop_alias(self, alias: str) -> None:
        owner = self._specs[self._aliases.pop(alias)]
        self._specs[owner.name] = replace(owner, aliases=tuple(a for a in owner.aliases if a != alias))

    def find(self, name_or_alias: str) -> Optional[ModelSpec]:
        """The spec, or None: for callers deciding whether a string is a registry name at all."""
        spec = self._specs.get(name_or_alias)
        if spec is None and name_or_alias in self._aliases:
            spec = self._specs[self._aliases[name_or_alias]]
        return spec

    def get(self, name_or_alias: str) -> ModelSpec:
        spec = self.find(name_or_alias)
        if spec is not None:
            return spec
        keys = list(self._specs) + list(self._aliases)
        close = difflib.get_close_matches(str(name_or_alias), keys, n=4, cutoff=0.6)
        if not close:  # case and separators are common slips: compare loosely too
            loose = {k.lower().replace("_", "-"): k for k in keys}
            close = [loose[k] for k in difflib.get_close_matches(
                str(name_or_alias).lower().replace("_", "-"), list(loose), n=4, cutoff=0.6)]
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(
            f"Unknown model name {name_or_alias!r}.{hint} `bert-hub list` shows every registered "
            f"name; a local folder, an archive path or a URL works too, and BERT_HUB_REGISTRY can "
            f"add entries.")

    def names(self) -> List[str]:
        return list(self._specs)

    def aliases(self) -> Dict[str, str]:
        """alias -> name."""
        return dict(self._aliases)

    def __contains__(self, name_or_alias: object) -> bool:
        return isinstance(name_or_alias, str) and self.find(name_or_alias) is not None

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(list(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)


@functools.lru_cache(maxsize=1)
def _package_layers() -> Tuple[Tuple[ModelSpec, ...], ...]:
    import importlib.resources

    data = importlib.resources.files("bert_hub").joinpath("data")
    layers = []
    for name in PACKAGE_FILES:
        resource = data.joinpath(name)
        if resource.is_file():
            layers.append(tuple(parse_file(Path(str(resource)), source=f"bert_hub/data/{name}")))
    return tuple(layers)


@functools.lru_cache(maxsize=8)
def _user_layer(path: str, mtime_ns: int, size: int) -> Tuple[ModelSpec, ...]:
    return tuple(parse_file(path))


def load_registry() -> Registry:
    """The package's entries, then those of the files named by BERT_HUB_REGISTRY (read now)."""
    layers: List[Sequence[ModelSpec]] = list(_package_layers())
    for path in filter(None, os.environ.get("BERT_HUB_REGISTRY", "").split(os.pathsep)):
        path = os.path.abspath(os.path.expanduser(path))
        try:
            st = os.stat(path)
        except OSError:
            raise RegistryError(f"Registry file {path} (from BERT_HUB_REGISTRY) does not exist. "
                                f"Fix the path or unset BERT_HUB_REGISTRY.") from None
        layers.append(_user_layer(path, st.st_mtime_ns, st.st_size))
    return Registry(layers)


def get_spec(name_or_alias: str) -> ModelSpec:
    """Shorthand for ``load_registry().get(name_or_alias)``."""
    return load_registry().get(name_or_alias)


# ----------------------------------------------------------------------------------------------
# URLs


def resolve_url(spec_or_url: Union[ModelSpec, str]) -> str:
    """The URL to fetch: BERT_HUB_ENDPOINT applied, package:// turned into a file:// URL.

    BERT_HUB_ENDPOINT (e.g. ``http://127.0.0.1:8000`` or ``https://mirror.example/bert``)
    replaces the scheme and host of http(s) registry URLs and keeps their path. It applies to a
    spec's URL, and to a URL string on a host that registry entries use (storage.googleapis.com),
    never to other URLs.
    """
    if isinstance(spec_or_url, ModelSpec):
        url, from_registry = spec_or_url.url, True
    else:
        url = str(spec_or_url)
        from_registry = urlsplit(url).netloc.lower() in _registry_hosts()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "package":
        return package_file(url).as_uri()
    endpoint = os.environ.get("BERT_HUB_ENDPOINT", "").strip()
    if endpoint and from_registry and scheme in ("http", "https"):
        base = urlsplit(endpoint)
        if base.scheme not in ("http", "https") or not base.netloc or base.query or base.fragment:
            raise RegistryError(
                f"BERT_HUB_ENDPOINT={endpoint!r} is not an http(s) base URL such as "
                f"http://127.0.0.1:8000 or https://mirror.example/prefix. Fix or unset it.")
        path = base.path.rstrip("/") + parts.path
        return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))
    return url


def _registry_hosts() -> frozenset:
    return frozenset(urlsplit(spec.url).netloc.lower() for layer in _package_layers() for spec in layer
                     if urlsplit(spec.url).scheme in ("http", "https"))


def package_file(url: str) -> Path:
    """package://<package>/<path> -> the file inside that installed package (must exist)."""
    import importlib.resources

    parts = urlsplit(url)
    rel = unquote(parts.path).lstrip("/")
    if not parts.netloc or not rel or ".." in rel.split("/"):
        raise RegistryError(f"Malformed package URL {url!r}: expected package://<package>/<path>, "
                            f"e.g. package://bert_hub/data/<file>.")
    try:
        path = Path(str(importlib.resources.files(parts.netloc).joinpath(rel)))
    except ModuleNotFoundError:
        raise EntryNotFoundError(f"{url!r} names the package {parts.netloc!r}, which is not "
                                 f"installed.") from None
    if not path.is_file():
        raise EntryNotFoundError(f"{url!r}: {path} does not exist; the installed {parts.netloc} "
                                 f"lacks this data file (reinstall it).")
    return path
