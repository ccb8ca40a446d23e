"""Work only on the real tokens of a padded batch (the fast path's unpadding).

When ``attention_mask`` marks padding, ``BertModel`` gathers the real tokens once into a packed
(T, H) tensor (ids, token types and position ids are gathered, so the embeddings too run on real
tokens only), every per-token op (projections, feed-forward, LayerNorm, GELU, dropout) runs on
it, and one scatter at the end puts each layer back at (B, S, H) with zeros at padded positions.
Attention is the one op that needs sequence boundaries: it runs
``F.scaled_dot_product_attention`` per sequence over that sequence's own keys (see ``ATTENTION``).
FlashAttention's varlen kernels and ModernBERT work the same way (``cu_seqlens``).

Sequences are packed shortest first, so those of one length are one contiguous slice: attention
over them is a zero-copy (n, nh, L, hd) view with no mask.

The dense path stays the reference: outputs on real tokens, the pooled output, every head's
logits on real tokens and every loss equal it. Under ``fast_path.is_tracing()`` (torch.compile,
torch.export, ONNX export) nothing here changes shapes: the dense path runs and padded positions
are zeroed with ops that do not depend on the mask's values.

Shapes: B batch, S sequence length, T real tokens in the batch, H hidden size, nh heads,
hd head size, L one sequence's length.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F

from . import fast_path
from .errors import InvalidInputError

# How attention runs over packed tokens: "groups" (one SDPA call per distinct length on a view
# of the packed tensor, no mask, no copy), "padded" (one SDPA call over the real tokens re-padded
# to the batch's longest sequence, with a key mask), "nested" (one SDPA call on jagged nested
# tensors: FlashAttention's varlen kernel on CUDA). "auto": groups on the CPU (fastest measured,
# docs/benchmarks.md), padded elsewhere (the same SDPA call as the dense path's, masked).
ATTENTION = "auto"
ATTENTION_CHOICES = ("auto", "groups", "padded", "nested")
# A batch whose padding is below this share of its positions runs dense: gathering and
# scattering would cost more than the padding does.
MIN_PADDING = 0.0

# Mask value of logits at padded positions where a softmax runs over positions (question
# answering's start / end): Google's attention-mask value, exact zero weight after softmax.
MASKED_LOGIT = -10000.0


@dataclass
class Packing:
    """Where a padded batch's real tokens are: gathered in packed order (sequences shortest
    first, each sequence's tokens in order), T rows in all."""

    batch: int
    seq: int
    indices: torch.Tensor     # (T,) flat position b * S + s of each packed token
    positions: torch.Tensor   # (T,) s: each token's position id
    first: torch.Tensor       # (B,) packed row of each sequence's first token, in batch order
    offsets: torch.Tensor     # (B + 1,) packed row where each sequence starts (cu_seqlens)
    lengths: Tuple[int, ...]  # each packed sequence's length, shortest first

    @cached_property
    def groups(self) -> List[Tuple[int, int, int]]:
        """(first packed row, sequences, length) for each distinct length."""
        out, row = [], 0
        for length, same in itertools.groupby(self.lengths):
            n = len(list(same))
            out.append((row, n, length))
            row += n * length
        return out

    @cached_property
    def repadded_rows(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Each packed token's row in a (B * longest) re-padded batch (T,), and that batch's key
        mask (B, 1, 1, longest), True at real tokens."""
        device, longest = self.offsets.device, self.lengths[-1]
        lengths = torch.tensor(self.lengths, device=device)                       # (B,)
        sequence = torch.repeat_interleave(torch.arange(self.batch, device=device), lengths)
        rows = sequence * longest + (torch.arange(int(self.offsets[-1]), device=device)
                                     - self.offsets[sequence])                     # (T,)
        keys = torch.arange(longest, device=device) < lengths[:, None]            # (B, L)
        return rows, keys[:, None, None, :]

    def scatter(self, packed: torch.Tensor) -> torch.Tensor:
        """(T, ...) in packed order -> (B, S, ...), zeros at padded positions."""
        full = packed.new_zeros((self.batch * self.seq,) + tuple(packed.shape[1:]))
        return full.index_copy(0, self.indices, packed).view(self.batch, self.seq,
                                                            *packed.shape[1:])

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: int,
               dropout_p: float) -> torch.Tensor:
        """Each sequence's queries over its own keys: query, key, value (T, H) -> (T, H)."""
        choice = ATTENTION
        if choice == "auto":
            choice = "groups" if query.device.type == "cpu" else "padded"
        attention = {"groups": _grouped_attention, "padded": _padded_attention,
                     "nested": _nested_attention}.get(choice)
        if attention is None:
            raise InvalidInputError(f"unpadding.ATTENTION is {ATTENTION!r}; set it to one of "
                                    f"{', '.join(ATTENTION_CHOICES)}")
        return attention(self, query, key, value, heads, dropout_p)


def _heads(x: torch.Tensor, n: int, length: int, heads: int) -> torch.Tensor:
    """(n * L, H) rows, possibly strided -> (n, nh, L, hd) view."""
    return x.view(n, length, heads, x.shape[-1] // heads).transpose(1, 2)


def _grouped_attention(packing: Packing, query, key, value, heads: int,
                       dropout_p: float) -> torch.Tensor:
    outs = []
    for row, n, length in packing.groups:
        rows = slice(row, row + n * length)
        q, k, v = (_heads(t[rows], n, length, heads) for t in (query, key, value))
        context = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)  # (n, nh, L, hd)
        outs.append(context.transpose(1, 2).reshape(n * length, query.shape[-1]))  # (n * L, H)
    return outs[0] if len(outs) == 1 else torch.cat(outs)                          # (T, H)


def _padded_attention(packing: Packing, query, key, value, heads: int,
                      dropout_p: float) -> torch.Tensor:
    batch, longest, hidden = packing.batch, packing.lengths[-1], query.shape[-1]
    rows, keys = packing.repadded_rows

    def repad(x):                                                  # (T, H) -> (B, nh, L, hd)
        return _heads(x.new_zeros(batch * longest, hidden).index_copy(0, rows, x), batch,
                      longest, heads)

    context = F.scaled_dot_product_attention(repad(query), repad(key), repad(value),
                                             attn_mask=keys, dropout_p=dropout_p)  # (B, nh, L, hd)
    return context.transpose(1, 2).reshape(batch * longest, hidden).index_select(0, rows)


def _nested_attention(packing: Packing, query, key, value, heads: int,
                      dropout_p: float) -> torch.Tensor:
    tokens, hidden = query.shape
    offsets = packing.offsets.to(torch.int64)

    def nested(x):                                                 # (T, H) -> (B, nh, j, hd)
        values = x.contiguous().view(tokens, heads, hidden // heads)
        return torch.nested.nested_tensor_from_jagged(
            values, offsets, max_seqlen=packing.lengths[-1]).transpose(1, 2)

    context = F.scaled_dot_product_attention(nested(query), nested(key), nested(value),
                                             dropout_p=dropout_p)               # (B, nh, j, hd)
    return context.transpose(1, 2).values().reshape(tokens, hidden)


# -- planning -----------------------------------------------------------------------------------
def pack(attention_mask: torch.Tensor) -> Optional[Packing]:
    """The packing of a (B, S) 1/0 mask's real tokens, or None when the dense path should run:
    under tracing, without padding, with values other than 0 and 1, when some sequence's first
    position is padding (the pooled output reads it), or below ``MIN_PADDING``."""
    if fast_path.is_tracing() or attention_mask.dim() != 2:
        return None
    batch, seq = attention_mask.shape
    real = attention_mask == 1                                                  # (B, S)
    lengths = real.sum(dim=1)                                                   # (B,)
    binary = (real | (attention_mask == 0)).all()
    checks = torch.stack([binary.long(), real[:, 0].all().long(), lengths.sum()]).tolist()
    is_binary, first_real, tokens = checks                    # one read from the device
    if not (is_binary and first_real) or tokens == batch * seq:
        return None
    if batch * seq - tokens < MIN_PADDING * batch * seq:
        return None
    sorted_lengths, order = torch.sort(lengths, stable=True)                    # shortest first
    flat = real[order].reshape(-1).nonzero().squeeze(1)          # (T,) in the sorted batch
    rows, positions = order[flat // seq], flat % seq
    offsets = F.pad(sorted_lengths.cumsum(0), (1, 0))                           # (B + 1,)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(batch, device=order.device)
    return Packing(batch=batch, seq=seq, indices=rows * seq + positions, positions=positions,
                   first=offsets[rank], offsets=offsets,
                   lengths=tuple(sorted_lengths.tolist()))


def forward(model, input_ids: torch.Tensor, token_type_ids: Optional[torch.Tensor],
            attention_mask: torch.Tensor, output_all_encoded_layers: bool):
    """``BertModel.forward`` on the real tokens only: (encoded_layers, pooled_output) as the dense
    path returns them, with zeros at padded positions; None when the dense path should run."""
    packing = pack(attention_mask)
    if packing is None:
        return None
    ids = input_ids.reshape(-1).index_select(0, packing.indices)                # (T,)
    types = None if token_type_ids is None else \
        token_type_ids.reshape(-1).index_select(0, packing.indices)             # (T,)
    hidden = model.embeddings(ids, types, position_ids=packing.positions)       # (T, H)
    layers = model.encoder(hidden, packing,
                           output_all_encoded_layers=output_all_encoded_layers)  # each (T, H)
    pooled = model.pooler(layers[-1].index_select(0, packing.first)[:, None])   # (B, H)
    encoded = [packing.scatter(layer) for layer in layers]                      # each (B, S, H)
    return (encoded if output_all_encoded_layers else encoded[-1]), pooled


def zero_padding(layers: List[torch.Tensor], attention_mask: Optional[torch.Tensor]):
    """The dense path's (B, S, H) layers with zeros where ``attention_mask`` is 0, as the
    unpadded path returns them (as they are when nothing is padded)."""
    if attention_mask is None:
        return layers
    padded = attention_mask == 0                                                # (B, S)
    if not fast_path.is_tracing() and not bool(padded.any()):
        return layers
    return [layer.masked_fill(padded[..., None], 0.0) for layer in layers]


# -- heads --------------------------------------------------------------------------------------
def real_tokens(unpad: bool, attention_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """(B, S) bool, True at real tokens: where a head computes its per-token outputs; None to
    compute every position (unpadding off, no mask, or nothing padded)."""
    if not unpad or attention_mask is None:
        return None
    real = attention_mask != 0
    if not fast_path.is_tracing() and bool(real.all()):
        return None
    return real


def per_token(fn: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor,
              real: Optional[torch.Tensor], fill: float = 0.0) -> torch.Tensor:
    """fn on the real rows of hidden (B, S, H) only -> (B, S, out), ``fill`` at padded
    positions (every row when ``real`` is None)."""
    if real is None:
        return fn(hidden)
    if fast_path.is_tracing():
        return fn(hidden).masked_fill(~real[..., None], fill)
    rows = real.reshape(-1).nonzero().squeeze(1)                                # (N,)
    out = fn(hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows))        # (N, out)
    full = out.new_full((real.numel(), out.shape[-1]), fill)
    return full.index_copy(0, rows, out).view(*real.shape, out.shape[-1])       # (B, S, out)


def labelled_rows(hidden: torch.Tensor, labels: torch.Tensor, real: torch.Tensor,
                  ignore_index: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The rows a token-level loss counts: hidden (B, S, H), labels (B, S) -> (N, H), (N,) at
    real tokens whose label is not ``ignore_index`` (under tracing every row, padded ones'
    labels set to ``ignore_index``)."""
    hidden = hidden.reshape(-1, hidden.shape[-1])                               # (B*S, H)
    labels = labels.masked_fill(~real, ignore_index).reshape(-1)                # (B*S,)
    if fast_path.is_tracing():
        return hidden, labels
    rows = (labels != ignore_index).nonzero().squeeze(1)                        # (N,)
    return hidden.index_select(0, rows), labels.index_select(0, rows)
