"""int8 inference in PyTorch: dynamic quantisation of a model's linear layers.

``torch.ao.quantization.quantize_dynamic`` swaps modules by exact type, so it leaves our
``modeling.Linear`` (an ``nn.Linear`` subclass with a fused activation and packed Q/K/V weights)
unchanged. ``quantize_dynamic`` here swaps each of them for :class:`Int8Linear`: weights int8 per
output channel, activations quantised per batch at run time over the full 8 bits (torch's x86 /
fbgemm dynamic linear), the activation applied after. The layers that quantise worst stay fp32
(``FP32_LAYERS``, measured on real weights: docs/deploy.md). Inference on the CPU only.
"""
from __future__ import annotations

import re
import warnings
from typing import Sequence

import torch
from torch import nn

from . import modeling
from .errors import InvalidInputError

# Module-name patterns kept in fp32: the feed-forward layers of the first layer and the FFN output
# of the second (the largest int8 error on all-MiniLM-L6-v2, measured layer by layer:
# docs/deploy.md) and the pooler (one small layer, the classifiers' input).
FP32_LAYERS = (r"encoder\.layer\.0\.(intermediate|output)\.dense$",
               r"encoder\.layer\.1\.output\.dense$", r"pooler\.dense$")


def fp32_modules(names: Sequence[str], patterns: Sequence[str] = FP32_LAYERS) -> set:
    """Those of ``names`` (module paths) that ``patterns`` keep in fp32."""
    return {name for name in names if any(re.search(p, name) for p in patterns)}


class Int8Linear(nn.Module):
    """A ``modeling.Linear`` with int8 per-channel weights; ``activation`` applied after."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig
        plain = nn.Linear(linear.in_features, linear.out_features, linear.bias is not None)
        with torch.no_grad():
            plain.weight.copy_(linear.weight.detach().float())
            if linear.bias is not None:
                plain.bias.copy_(linear.bias.detach().float())
        plain.qconfig = per_channel_dynamic_qconfig
        with warnings.catch_warnings():     # torch marks quantized tensors for a later removal
            warnings.simplefilter("ignore", UserWarning)
            self.inner = DynamicLinear.from_float(plain)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.activation = getattr(linear, "activation", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Activations over the full 8 bits: the module's own forward uses 7 (reduce_range), which
        # costs all-MiniLM-L6-v2 0.01 of mean cosine (0.984 -> 0.994) and 0.05 on its worst
        # sentence.
        out = torch.ops.quantized.linear_dynamic(x, self.inner._packed_params._packed_params,
                                                 reduce_range=False)      # (..., out)
        act = self.activation
        if isinstance(act, str):
            return modeling.ACT2FN[act](out)
        return out if act is None else act(out)


def quantize_dynamic(model: nn.Module, keep_fp32: Sequence[str] = FP32_LAYERS) -> nn.Module:
    """``model`` (fp32, CPU) with its linear layers int8, in place; returns it, in eval mode.

    Tied layers (the masked-LM decoder shares the word embeddings) stay fp32, as do the module
    names ``keep_fp32`` matches (``FP32_LAYERS``). For inference only: no gradients flow through
    int8 layers."""
    params = list(model.parameters())
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in params):
        raise InvalidInputError(
            "int8 dynamic quantisation needs an fp32 model on the CPU; call model.float().cpu() "
            "first")
    engines = torch.backends.quantized.supported_engines
    if torch.backends.quantized.engine not in ("x86", "fbgemm", "onednn"):
        for engine in ("x86", "fbgemm", "onednn"):
            if engine in engines:
                torch.backends.quantized.engine = engine
                break
    named = {name: m for name, m in model.named_modules() if isinstance(m, modeling.Linear)}
    kept = fp32_modules(list(named), keep_fp32)
    for name, module in named.items():
        if name in kept or name.endswith("decoder"):
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, Int8Linear(module))
    return model.eval()
