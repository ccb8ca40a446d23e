"""The design's import rules, checked on the source (every import statement, also those inside
functions) and in fresh interpreters:

- imports only go down the layers of docs/architecture.md (``LAYERS`` here, kept equal to it);
- the download path (``registry``, ``download``, ``cache`` and the modules split from them)
  never imports torch;
- the Trainer (``trainer``, ``training.*``) never imports the models, the hub or loading;
- nothing imports tensorflow, onnx, onnxruntime or huggingface_hub when it is imported.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "bert_hub"
DOC = ROOT / "docs" / "architecture.md"

# Layer -> modules (names below bert_hub; "bert_hub" is the package root, a package name is its
# __init__). A module imports only modules of lower layers. docs/architecture.md has the same.
LAYERS: Dict[int, List[str]] = {
    0: ["bert_hub", "errors", "filenames", "json_files", "fast_path", "training",
        "training.precision", "tasks.squad_metrics", "transformers_compat", "serve.metrics",
        "serve.schemas", "serve.page"],
    1: ["env", "config", "registry", "disk", "fetcher", "gzip_reader", "leveldb_table", "weights",
        "distributed", "optimization", "wordpiece", "sequence_pairs", "training.batches", "unpadding",
        "layers", "transformers_compat.outputs", "transformers_compat.batch_encoding", "serve.settings",
        "serve.errors"],
    2: ["manifest", "archive", "cache_layout", "transfer", "http_fetcher", "s3_fetcher",
        "tf_checkpoint", "input_checks", "config_files", "token_offsets", "training.data",
        "training.checkpointing", "training.logging_sinks", "training.optimizer_step", "tasks.glue",
        "tasks.pretraining", "serve.scheduler"],
    3: ["download", "convert", "hf_hub", "training.arguments"],
    4: ["cache", "trainer"],
    5: ["hub"],
    6: ["loading", "tokenization", "transformers_compat.configuration",
        "transformers_compat.tokenizer_files"],
    7: ["modeling", "pipelines.base", "tasks.squad", "tasks.script_support",
        "transformers_compat.tokenizer"],
    8: ["pipelines.classification", "pipelines.embeddings", "pipelines.fill_mask",
        "pipelines.question_answering", "tasks", "quantization", "transformers_compat.model_base"],
    9: ["pipelines", "export", "transformers_compat.models"],
    10: ["pipelines.cli", "demo", "transformers_compat.auto", "serve.engine"],
    11: ["serve.state"],
    12: ["serve.operations", "serve.guard"],
    13: ["serve.tei_routes", "serve.openai_routes", "serve.hf_routes"],
    14: ["serve.app"],
    15: ["serve.cli"],
    16: ["serve", "cli"],
}
# Never import torch, not even inside a function: `bert-hub download` stays light.
LIGHT = ["registry", "download", "fetcher", "http_fetcher", "s3_fetcher", "transfer", "cache",
         "cache_layout", "archive", "gzip_reader", "manifest", "disk", "env"]
TRAINER = ["trainer"] + [f"training.{p.stem}" for p in (SRC / "training").glob("*.py")
                         if p.stem != "__init__"]
NOT_FOR_THE_TRAINER = {"modeling", "hub", "loading"}
OPTIONAL_HEAVY = ("tensorflow", "onnx", "onnxruntime", "huggingface_hub")


def _full(name: str) -> str:
    return name if name == "bert_hub" else f"bert_hub.{name}"


def _short(name: str) -> str:
    return name if name == "bert_hub" else name[len("bert_hub."):]


def _modules() -> Dict[str, Path]:
    """bert_hub module name -> its file, for every .py under src/bert_hub."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _in_type_checking(node: ast.AST, parents: Dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _imports(module: str) -> Dict[str, Set[str]]:
    """{"internal": bert_hub modules, "external": top-level packages} named by any import
    statement of `module` (at import time or inside a function; not under TYPE_CHECKING)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    internal: Set[str] = set()
    external: Set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _in_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                (internal if alias.name.split(".")[0] == "bert_hub" else external).add(alias.name)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
            if target.split(".")[0] != "bert_hub":
                external.add(target)
                continue
        for alias in node.names:   # `from pkg import sub` names a module; else the name is in pkg
            internal.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    internal.discard(module)
    return {"internal": internal, "external": {name.split(".")[0] for name in external}}


GRAPH = {module: _imports(module) for module in MODULES}


def _layer_of() -> Dict[str, int]:
    return {_full(name): layer for layer, names in LAYERS.items() for name in names}


def _path_to(start: str, targets: Set[str]) -> Optional[List[str]]:
    """The first import chain from `start` to one of `targets` (importing a submodule runs its
    packages' __init__ first, so those count as imported too; the root's names are lazy)."""
    seen, queue = {start}, [[start]]
    while queue:
        chain = queue.pop(0)
        here = chain[-1]
        if here in targets:
            return chain
        parents = {here.rsplit(".", i)[0] for i in range(1, here.count("."))}
        for nxt in sorted(GRAPH[here]["internal"] | (parents - {"bert_hub"})):
            if nxt not in seen and nxt in GRAPH:
                seen.add(nxt)
                queue.append(chain + [nxt])
    return None


def _fresh(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# ----------------------------------------------------------------------------------------------


def test_every_module_has_one_layer_and_the_docs_show_the_same_table():
    listed = [_full(name) for names in LAYERS.values() for name in names]
    assert len(listed) == len(set(listed)), "a module is in two layers"
    missing, gone = sorted(set(MODULES) - set(listed)), sorted(set(listed) - set(MODULES))
    assert not missing, (
        f"{missing} have no layer: add each to LAYERS here and to the table in "
        f"docs/architecture.md, one layer above the highest module it imports")
    assert not gone, f"{gone} are in LAYERS but not in src/bert_hub: remove them here and in the docs"
    doc = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", doc.split("## Import layers", 1)[1], re.M)
    documented = {int(layer): sorted(re.findall(r"`([\w.]+)`", names)) for layer, names in rows}
    assert documented == {layer: sorted(names) for layer, names in LAYERS.items()}, \
        "docs/architecture.md's import layers differ from LAYERS in this test"


def test_imports_only_go_down():
    layer = _layer_of()
    upward = [f"{_short(m)} (layer {layer[m]}) imports {_short(d)} (layer {layer[d]})"
              for m in sorted(GRAPH) for d in sorted(GRAPH[m]["internal"])
              if d in layer and m in layer and layer[d] >= layer[m]]
    assert not upward, ("imports must go down the layers of docs/architecture.md:\n"
                        + "\n".join(upward))


def test_the_trainer_never_imports_the_models_the_hub_or_loading():
    forbidden = {_full(name) for name in NOT_FOR_THE_TRAINER}
    chains = [_path_to(_full(name), forbidden) for name in TRAINER]
    chains = [" -> ".join(_short(m) for m in chain) for chain in chains if chain]
    assert not chains, "the Trainer trains any nn.Module; it must not reach:\n" + "\n".join(chains)
    _fresh("import sys, bert_hub.trainer, bert_hub.training.checkpointing\n"
           f"bad = sorted(m for m in {sorted(forbidden)!r} if m in sys.modules)\n"
           "assert not bad, bad")


def test_the_download_path_never_imports_torch():
    heavy = {m for m in GRAPH if "torch" in GRAPH[m]["external"]}
    chains = [_path_to(_full(name), heavy) for name in LIGHT]
    chains = [" -> ".join(_short(m) for m in chain) + " (imports torch)" for chain in chains if chain]
    assert not chains, "registry, download and cache never import torch:\n" + "\n".join(chains)
    modules = ", ".join(_full(name) for name in LIGHT)
    _fresh(f"import sys, {modules}\n"
           "assert 'torch' not in sys.modules, 'torch was imported'")


def test_no_module_imports_tensorflow_onnx_or_huggingface_hub_when_imported():
    modules = ", ".join(sorted(MODULES))
    _fresh(f"import sys, {modules}\n"
           f"bad = sorted(m for m in {OPTIONAL_HEAVY!r} if m in sys.modules)\n"
           "assert not bad, f'importing bert_hub imported {bad}'")
