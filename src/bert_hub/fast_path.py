"""The model's fast paths, in one place, behind one switch.

``modeling.py`` is the plain network; everything that makes it faster than plain PyTorch lives
here, beside a plain path that computes the same thing with public ops:

- oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, a private op: the kernel
  ``torch.compile`` uses on CPU) for every dense layer when no gradient is needed, with the
  activation fused into the matmul. It has no autograd, so training always takes ``F.linear``.
- Query/key/value weights kept back to back in one buffer (``PackedQKV``), so attention projects
  with one (H, 3H) matmul over a view of the three, without a copy. Parameter objects and
  names stay 0.6.2's.

Under a tracer (``is_tracing()``: torch.compile, torch.export, TorchScript, ONNX export) the
plain path is taken too: a graph holds public ops only.

``ENABLED = False`` takes the plain path everywhere (to compare, or to rule the fast path out);
``torch.backends.mkldnn.enabled = False`` rules out oneDNN's linear as it does torch's own uses.
A torch whose private op is missing, raises, or computes something else (checked once per
activation and dtype against ``F.linear``) costs speed, never correctness: the plain path
takes over.

Shapes: B batch, S sequence length, H hidden size.
"""
from __future__ import annotations

import logging
import sys
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

# The switch: False computes everything with public ops (F.linear, three projections).
ENABLED = True

# Activations oneDNN fuses into its linear: ACT2FN's name -> (post-op, algorithm, plain form).
_POST_OPS: Dict[str, Tuple[str, str, Callable]] = {
    "gelu": ("gelu", "none", F.gelu),
    "gelu_new": ("gelu", "tanh", partial(F.gelu, approximate="tanh")),
    "gelu_pytorch_tanh": ("gelu", "tanh", partial(F.gelu, approximate="tanh")),
    "relu": ("relu", "", F.relu),
}
_NO_ACTIVATION = ("none", "", lambda x: x)
# (post-op, algorithm, dtype) -> oneDNN's linear where this torch has it and it computes what
# F.linear does there (checked once), else None.
_onednn_ops: Dict[tuple, Optional[Callable]] = {}


# -- tracing -----------------------------------------------------------------------------------
def is_tracing() -> bool:
    """True while torch.compile, torch.export, TorchScript tracing or ONNX export records the
    forward: then the model takes only paths whose ops do not depend on the values of tensors
    (no data-dependent branches, no private ops a tracer cannot follow)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return True
    onnx = sys.modules.get("torch.onnx")      # never imported here just to ask (about 60 ms)
    return onnx is not None and onnx.is_in_onnx_export()


# -- oneDNN linear ------------------------------------------------------------------------------
def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
           activation: Optional[Callable] = None, name: Optional[str] = None) -> torch.Tensor:
    """activation(x @ weight.T + bias): x (..., in), weight (out, in) -> (..., out).

    ``name``, the activation's key in ACT2FN, lets oneDNN fuse it into the matmul."""
    fused = _NO_ACTIVATION if activation is None else _POST_OPS.get(name)
    if fused is not None and not is_tracing() and _onednn_ok(x, weight, bias):
        post_op, algorithm, _ = fused
        key = (post_op, algorithm, x.dtype)
        op = _onednn_ops[key] if key in _onednn_ops else _verified_op(fused, x.dtype)
        if op is not None:
            try:
                out = op(x.reshape(-1, x.shape[-1]), weight, bias, post_op, [], algorithm)
                return out.view(*x.shape[:-1], weight.shape[0])                  # (..., out)
            except (RuntimeError, TypeError, ValueError) as exc:
                _give_up(key, exc)
    out = F.linear(x, weight, bias)
    return out if activation is None else activation(out)


def _onednn_ok(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    if not (ENABLED and x.device.type == "cpu" and x.dtype == weight.dtype
            and x.dtype in (torch.float32, torch.bfloat16) and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        return False
    return weight.is_contiguous() and (bias is None or bias.dtype == x.dtype)


def _give_up(key: tuple, exc: Exception) -> None:
    logger.warning("oneDNN's linear failed (%s); using F.linear instead", exc)
    _onednn_ops[key] = None


def _verified_op(fused: tuple, dtype: torch.dtype) -> Optional[Callable]:
    """oneDNN's linear if this torch has it (a private op: it may go) and, on a tiny input, it
    computes what F.linear does with this activation and dtype; else None. Once per key."""
    post_op, algorithm, plain = fused
    key = (post_op, algorithm, dtype)
    mkldnn = getattr(torch.ops, "mkldnn", None)
    op = getattr(mkldnn, "_linear_pointwise", None)
    bf16_ok = getattr(mkldnn, "_is_mkldnn_bf16_supported", None)
    _onednn_ops[key] = None
    if op is None or (dtype == torch.bfloat16 and not (bf16_ok is not None and bf16_ok())):
        return None
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(shape, generator=gen, device="cpu").to(dtype)
               for shape in ((5, 16), (8, 16), (8,)))
    try:
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            want = plain(F.linear(x.float(), w.float(), b.float()))
            got = op(x, w, b, post_op, [], algorithm)
    except (RuntimeError, TypeError, ValueError) as exc:
        _give_up(key, exc)
        return None
    tolerance = 2e-2 if dtype == torch.bfloat16 else 1e-4
    if got.shape != want.shape or not torch.allclose(got.float(), want, rtol=tolerance,
                                                     atol=tolerance):
        logger.warning("oneDNN's linear (%s) does not compute what F.linear does in this torch "
                       "(%s); using F.linear instead", post_op, torch.__version__)
        return None
    _onednn_ops[key] = op
    return op


# -- query/key/value packing --------------------------------------------------------------------
def adjacent_rows(tensors: Tuple[torch.Tensor, ...]) -> Optional[torch.Tensor]:
    """The tensors as one view stacked along dim 0 when they lie back to back in one buffer."""
    first = tensors[0]
    if not first.is_contiguous() or first.is_meta:
        return None
    step = first.numel()
    storage = first.untyped_storage().data_ptr()
    for i, t in enumerate(tensors[1:], start=1):
        if (t.shape != first.shape or t.dtype != first.dtype or not t.is_contiguous()
                or t.untyped_storage().data_ptr() != storage
                or t.storage_offset() != first.storage_offset() + i * step):
            return None
    shape = (first.shape[0] * len(tensors),) + tuple(first.shape[1:])
    return first.detach().as_strided(shape, first.stride())


class PackedQKV(nn.Module):
    """Base of an attention module with ``query``, ``key`` and ``value`` linear children whose
    weights (and biases) it keeps back to back in one buffer; call ``pack_qkv()`` once they
    exist. ``.to()``, ``.half()``, ``.cuda()`` give each parameter its own new tensor: packed
    again after each."""

    def _projections(self) -> Tuple[nn.Linear, nn.Linear, nn.Linear]:
        return (self.query, self.key, self.value)

    @torch.no_grad()
    def pack_qkv(self) -> None:
        for attr in ("weight", "bias"):
            params = [getattr(m, attr, None) for m in self._projections()]
            if not all(isinstance(p, torch.Tensor) for p in params):    # e.g. int8 layers
                continue
            if adjacent_rows(tuple(params)) is not None or params[0].is_meta:
                continue
            if len({(p.dtype, p.device, p.shape) for p in params}) != 1:
                continue
            packed = torch.cat([p.detach() for p in params])          # (3H, H) or (3H,)
            rows = params[0].shape[0]
            for i, p in enumerate(params):
                p.data = packed[i * rows:(i + 1) * rows]

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self.pack_qkv()
        return result

    def project_qkv(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(query, key, value), each (B, S, H), from x (B, S, H)."""
        projections = self._projections()
        # Traced: three public matmuls (no storage checks, no per-call copy of the weights).
        if not ENABLED or is_tracing() or any(m._forward_hooks or m._forward_pre_hooks
                                              or not isinstance(m, nn.Linear)
                                              for m in projections):
            return tuple(m(x) for m in projections)
        weights = tuple(m.weight for m in projections)
        biases = tuple(m.bias for m in projections)
        weight = bias = None
        if not (torch.is_grad_enabled() and any(p.requires_grad for p in weights + biases)):
            weight, bias = adjacent_rows(weights), adjacent_rows(biases)      # zero-copy views
        if weight is None or bias is None:
            weight, bias = torch.cat(weights), torch.cat(biases)   # autograd splits the grads
        return linear(x, weight, bias).chunk(3, dim=-1)            # (B, S, 3H) -> 3 x (B, S, H)


def pack_all(model: nn.Module) -> None:
    """Pack every attention module of ``model`` (after loading replaced its parameters)."""
    for module in model.modules():
        if isinstance(module, PackedQKV):
            module.pack_qkv()


def packed_order(keys: List[str]) -> List[str]:
    """State-dict keys with each layer's query/key/value weights, then biases, back to back: the
    file order in which a memory-mapped load packs them without a copy."""
    out, seen = [], set()
    for key in keys:
        if key in seen:
            continue
        if key.endswith("attention.self.query.weight"):
            prefix = key[: -len("query.weight")]
            group = [f"{prefix}{m}.{p}" for p in ("weight", "bias")
                     for m in ("query", "key", "value")]
            if all(g in keys for g in group):
                out.extend(group)
                seen.update(group)
                continue
        out.append(key)
        seen.add(key)
    return out
