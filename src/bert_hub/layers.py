"""BERT's building blocks: its activations (``ACT2FN``: the names configs use) and the three
layer types every module of the network is made of, ``Linear`` (computed by the fast path, with
the activation fused where it can be), ``Embedding`` and the TensorFlow-style ``BertLayerNorm``.
Re-exported by ``modeling``, where 0.6.2's users import them from."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fast_path


# -- activations --------------------------------------------------------------------------------
def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU, x * Phi(x) with the erf (0.6.2's and Google's original ``gelu``)."""
    return F.gelu(x)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU (Hugging Face's ``gelu_new``)."""
    return F.gelu(x, approximate="tanh")


def swish(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


ACT2FN = {
    "gelu": gelu, "relu": F.relu, "swish": swish, "silu": swish, "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh, "tanh": torch.tanh, "linear": _identity,
}


# -- layers -------------------------------------------------------------------------------------
class _NoInitOnMeta:
    """Built on the meta device (``from_pretrained``), a model must not run any init op: on meta,
    torch runs them through Python decompositions that import torch._dynamo (seconds)."""

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()


class Linear(_NoInitOnMeta, nn.Linear):
    """``nn.Linear`` (same parameters, same init) computed by the fast path, then ``activation``
    (a name of ACT2FN, a callable or None), fused into the matmul where the fast path can."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation=None):
        super().__init__(in_features, out_features, bias)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.activation
        if isinstance(act, str):
            return fast_path.linear(x, self.weight, self.bias, ACT2FN[act], name=act)
        return fast_path.linear(x, self.weight, self.bias, act)

    def extra_repr(self) -> str:
        act = self.activation
        name = act if act is None or isinstance(act, str) else getattr(act, "__name__", act)
        return super().extra_repr() + ("" if act is None else f", activation={name}")


class Embedding(_NoInitOnMeta, nn.Embedding):
    pass


class BertLayerNorm(_NoInitOnMeta, nn.LayerNorm):
    """TensorFlow-style LayerNorm (epsilon inside the square root, 1e-12); params weight/bias."""

    def __init__(self, hidden_size: int, eps: float = 1e-12):
        super().__init__(hidden_size, eps=eps)
