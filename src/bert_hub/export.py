"""ONNX export of any of our models, verified against PyTorch, optionally quantised to int8.

The graph is the model's dense path (``fast_path.is_tracing()`` is True while it is recorded):
public ops only, the attention mask an input applied inside the graph (padding handled there),
batch and sequence axes dynamic. The export goes through ``torch.export`` (the route to
AOTInductor and ExecuTorch too). After writing, ONNX Runtime runs the file on a ragged batch
whose length the export never saw and must match PyTorch (``TOLERANCE``), else nothing is left
at ``path``.

int8: ONNX Runtime's dynamic quantiser, per-channel weights, with the linear layers that
quantise worst (measured on real weights, see docs/deploy.md) kept in fp32.

``onnx``, ``onnxruntime`` and ``onnxscript`` (the ``onnx`` extra) are imported only here, only
when called. Shapes: B batch, C choices, S sequence length, H hidden, V vocabulary.
"""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import modeling
from .errors import ConversionError, InvalidInputError, MissingDependencyError
from .quantization import FP32_LAYERS, fp32_modules

logger = logging.getLogger(__name__)

# ONNX Runtime 1.14+ runs opset 18; the dynamo exporter's own default.
OPSET = 18
# ONNX Runtime's fp32 output against PyTorch's: the largest difference allowed, as a fraction of
# max(1, the largest |value|) (float rounding differs between CPUs and kernels).
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Head:
    cls: type
    outputs: Tuple[str, ...]
    choices: bool = False       # inputs (B, C, S) instead of (B, S)


HEADS: Dict[str, Head] = {
    "model": Head(modeling.BertModel, ("last_hidden_state", "pooler_output")),
    "pretraining": Head(modeling.BertForPreTraining,
                        ("prediction_logits", "seq_relationship_logits")),
    "masked-lm": Head(modeling.BertForMaskedLM, ("logits",)),
    "next-sentence": Head(modeling.BertForNextSentencePrediction, ("logits",)),
    "sequence-classification": Head(modeling.BertForSequenceClassification, ("logits",)),
    "multiple-choice": Head(modeling.BertForMultipleChoice, ("logits",), choices=True),
    "token-classification": Head(modeling.BertForTokenClassification, ("logits",)),
    "question-answering": Head(modeling.BertForQuestionAnswering,
                               ("start_logits", "end_logits")),
}
INPUTS = ("input_ids", "token_type_ids", "attention_mask")

def head_of(model: nn.Module) -> str:
    """The HEADS key of ``model``'s class (a transformers-style model's: its 0.6.2-style class)."""
    plain = next((c for c in type(model).__mro__ if c.__module__ == modeling.__name__), None)
    if plain is not type(model) and not hasattr(model, "plain_forward"):
        plain = None                    # another subclass: its forward may compute something else
    for name, head in HEADS.items():
        if plain is head.cls:
            return name
    raise InvalidInputError(
        f"cannot export a {type(model).__name__}: export one of "
        f"{', '.join(h.cls.__name__ for h in HEADS.values())}")


class _Graph(nn.Module):
    """The model with three tensor inputs and a tuple of tensors out (what ONNX needs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, token_type_ids, attention_mask):
        forward = getattr(self.model, "plain_forward", self.model)   # the 0.6.2-style forward
        if isinstance(self.model, modeling.BertModel):
            return forward(input_ids, token_type_ids, attention_mask,
                           output_all_encoded_layers=False)
        out = forward(input_ids, token_type_ids, attention_mask)
        return out if isinstance(out, tuple) else (out,)


def example_inputs(model: nn.Module, batch: int, seq: int, seed: int = 0
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ragged inputs for ``model``: (B, S) or (B, C, S) ids, token types and a mask whose rows
    hold from 1 to S real tokens (the first full, the last half padded when B > 1; padding at
    the end, ids 0 there)."""
    config = model.config
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, model.num_choices, seq) if HEADS[head_of(model)].choices else (batch, seq)
    ids = torch.randint(1, config.vocab_size, shape, generator=gen)
    types = torch.randint(0, config.type_vocab_size, shape, generator=gen)
    lengths = torch.randint(1, seq + 1, shape[:-1] + (1,), generator=gen)
    lengths.view(-1)[0] = seq                                  # at least one full row
    if lengths.numel() > 1:
        lengths.view(-1)[-1] = max(1, seq // 2)                # and one padded row
    mask = (torch.arange(seq) < lengths).long()
    return ids * mask, types * mask, mask


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({exc}); install them with "
            "`pip install 'bert_hub[onnx]'`") from exc
    return onnxruntime


def export_onnx(model: nn.Module, path: Union[str, os.PathLike], *, int8: bool = False,
                opset: int = OPSET, verify: bool = True) -> Path:
    """Write ``model`` (any of HEADS' classes) as an ONNX file at ``path``; returns the path.

    Inputs ``input_ids``, ``token_type_ids``, ``attention_mask`` (int64, (B, S), or (B, C, S)
    for multiple choice), outputs named per head (``HEADS``). ``int8``: the linear layers
    quantised (``quantize_onnx``). ``verify``: ONNX Runtime must reproduce PyTorch on inputs
    the export never saw (fp32 within TOLERANCE; int8 by the cosine of its outputs)."""
    ort = _require_onnx()
    head = HEADS[head_of(model)]
    path = Path(path).expanduser()
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give the .onnx file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
        fp32 = Path(tmp) / "model.onnx"
        _export(model, head, fp32, opset)
        out = fp32
        if int8:
            out = Path(tmp) / "model.int8.onnx"
            quantize_onnx(fp32, out, exclude=fp32_nodes(fp32))
        if verify:
            verify_onnx(model, out, ort, int8=int8)
        os.replace(out, path)                       # whole or not at all
    logger.info("wrote %s", path)
    return path


def _export(model: nn.Module, head: Head, path: Path, opset: int) -> None:
    import torch.onnx
    batch = torch.export.Dim("batch", min=1, max=1024)
    seq = torch.export.Dim("sequence", min=1, max=model.config.max_position_embeddings)
    axes = {0: batch, 2: seq} if head.choices else {0: batch, 1: seq}
    inputs = example_inputs(model, 2, min(16, model.config.max_position_embeddings))
    # The exporter warns about every torchvision op it cannot register: not ours to hear.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
        try:
            program = torch.onnx.export(
                _Graph(model), inputs, dynamo=True, opset_version=opset, input_names=INPUTS,
                output_names=list(head.outputs), dynamic_shapes=(axes, axes, axes),
                external_data=False, optimize=True, verbose=False)
        except Exception as exc:   # the exporter raises many types; one clear error here
            raise ConversionError(
                f"torch.onnx.export failed for {type(model).__name__} ({type(exc).__name__}: "
                f"{str(exc)[:500]})") from exc
    program.save(str(path))


def _session(ort, path: Path):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(path_or_session, input_ids, token_type_ids, attention_mask) -> Tuple[torch.Tensor, ...]:
    """The ONNX file's outputs (as tensors) on these inputs."""
    session = path_or_session
    if isinstance(path_or_session, (str, os.PathLike)):
        session = _session(_require_onnx(), Path(path_or_session))
    feed = {name: t.long().numpy() for name, t in zip(INPUTS, (input_ids, token_type_ids,
                                                                attention_mask))}
    return tuple(torch.from_numpy(a) for a in session.run(None, feed))


def verify_onnx(model: nn.Module, path: Path, ort=None, *, int8: bool = False) -> None:
    """ONNX Runtime on ``path`` against ``model`` on ragged batches of a batch size and length
    the export never saw; a ConversionError says by how much they differ."""
    session = _session(ort or _require_onnx(), path)
    max_len = model.config.max_position_embeddings
    for batch, seq in ((3, min(11, max_len)), (1, min(5, max_len))):
        inputs = example_inputs(model, batch, seq, seed=batch)
        with torch.no_grad():
            want = _Graph(model)(*inputs)
        got = run_onnx(session, *inputs)
        for name, w, g in zip(HEADS[head_of(model)].outputs, want, got):
            if int8:
                cosine = torch.nn.functional.cosine_similarity(
                    w.reshape(w.shape[0], -1).double(), g.reshape(g.shape[0], -1).double())
                if float(cosine.min()) < 0.9:
                    raise ConversionError(
                        f"the int8 ONNX model's {name} differs from PyTorch's (cosine "
                        f"{float(cosine.min()):.3f}); export without int8")
                continue
            diff = float((w - g).abs().max()) if w.shape == g.shape else float("inf")
            scale = max(1.0, float(w.abs().max())) if w.numel() else 1.0
            if not diff <= TOLERANCE * scale:       # relative: rounding differs between CPUs
                raise ConversionError(
                    f"ONNX Runtime's {name} differs from PyTorch's by {diff:.3g} (shapes "
                    f"{tuple(g.shape)} vs {tuple(w.shape)}, tolerance {TOLERANCE} x "
                    f"{scale:.3g}, the largest value); the export is not written")


# -- int8 -----------------------------------------------------------------------------------------
def fp32_nodes(path: Union[str, os.PathLike], patterns: Sequence[str] = FP32_LAYERS) -> list:
    """Names of the MatMul / Gemm nodes of the ONNX file at ``path`` that compute the linear
    layers ``patterns`` keep in fp32 (``quantization.fp32_modules``), found by the module path
    the exporter records on each node."""
    import onnx
    graph = onnx.load(str(path), load_external_data=False).graph
    modules = {node.name: _module_of(node) for node in graph.node
               if node.op_type in ("MatMul", "Gemm")}
    kept = fp32_modules([m for m in modules.values() if m], patterns)
    # The quantiser turns a Gemm into a MatMul named "<gemm>_MatMul" before it reads the list.
    return [name for node, module in modules.items() if module in kept
            for name in (node, f"{node}_MatMul")]


def _module_of(node) -> Optional[str]:
    """The module path the dynamo exporter records on a node (``model.bert.pooler.dense``)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            scopes = [s.strip(" '\"") for s in prop.value.strip("[]").split(",")]
            return scopes[-2] if len(scopes) > 1 else None     # the last is the op's name
    return None


def quantize_onnx(src: Union[str, os.PathLike], dst: Union[str, os.PathLike],
                  exclude: Sequence[str] = ()) -> Path:
    """ONNX Runtime's dynamic int8 quantisation of ``src``'s MatMuls into ``dst``: per-channel
    int8 weights, activations quantised per batch at run time; ``exclude`` (node names) stay
    fp32."""
    _require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    # A Gemm (the exporter's linear on (B, H): pooler, classifiers) becomes a MatMul first.
    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=list(exclude))
    return Path(dst)


def load_for_export(source: str, head: str, cache_dir=None, **head_kwargs) -> nn.Module:
    """``HEADS[head].cls.from_pretrained(source)`` with a clear error for an unknown head."""
    if head not in HEADS:
        raise InvalidInputError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    return HEADS[head].cls.from_pretrained(source, cache_dir=cache_dir, **head_kwargs)
