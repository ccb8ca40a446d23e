"""What every transformers-style model adds to its 0.6.2-style class (``TransformersModel``):
transformers' attributes (``config``, ``device``, ``dtype``, ``num_parameters()``), the checks of
its forward arguments, hidden states, the output convention (``return_dict``),
``from_pretrained`` / ``save_pretrained`` as transformers reads and writes them, and transformers'
losses (``-100`` = ignored, ``problem_type``). The classes themselves are in ``models``.

Shapes: B batch, C classes, S sequence length, H hidden size, T real tokens of a padded batch.
"""
from __future__ import annotations

import difflib
import inspect
import logging
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import config_files, fast_path, loading, modeling, unpadding, weights
from ..errors import InvalidArgumentError, InvalidInputError
from ..filenames import CONFIG_NAME, HF_CONFIG_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_NAME
from .configuration import AutoConfig, BertConfig, check_overrides

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100   # transformers' label for "no loss here"
# from_pretrained arguments transformers takes that change nothing here (every load is lazy and
# memory-mapped; attention is SDPA's; BERT needs no remote code).
_IGNORED_LOAD_OPTIONS = ("trust_remote_code", "low_cpu_mem_usage", "use_safetensors", "_from_auto",
                         "attn_implementation", "output_loading_info", "offload_state_dict")
_LOAD_OPTIONS = ("cache_dir", "force_download", "local_files_only", "revision", "token", "unpad")


class _NoPooler(nn.Module):
    """Where transformers' heads have no pooler (``add_pooling_layer=False``): no weights."""

    def forward(self, hidden_states: torch.Tensor) -> None:
        return None


class _HiddenStates:
    """Records the embeddings' and every layer's output during a forward (forward hooks), and
    gives them back as transformers does: (B, S, H) each, padded positions as in the outputs."""

    def __init__(self, bert: modeling.BertModel, enabled: bool):
        self.bert, self.enabled, self.recorded, self.hooks = bert, enabled, [], []

    def __enter__(self) -> "_HiddenStates":
        if self.enabled:
            for module in (self.bert.embeddings, *self.bert.encoder.layer):
                self.hooks.append(module.register_forward_hook(
                    lambda module, args, output: self.recorded.append(output)))
        return self

    def __exit__(self, *exc) -> None:
        for hook in self.hooks:
            hook.remove()

    def states(self, attention_mask: Optional[torch.Tensor], last=None) -> Optional[tuple]:
        """(embeddings, layer 1, ..., layer N); ``last``: the model's own last layer output."""
        if not self.enabled:
            return None
        packing, out = None, []
        for hidden in self.recorded:
            if hidden.dim() == 2:                       # (T, H): the batch ran on its real tokens
                packing = packing or unpadding.pack(attention_mask)
                hidden = packing.scatter(hidden)        # (B, S, H), zeros at padding
            elif self.bert.unpad:
                hidden = unpadding.zero_padding([hidden], attention_mask)[0]
            out.append(hidden)
        if last is not None:
            out[-1] = last
        return tuple(out)


class TransformersModel:
    """What every transformers-style class adds to its 0.6.2-style class (the next base)."""

    config_class = BertConfig
    base_model_prefix = "bert"
    main_input_name = "input_ids"
    _keys_to_ignore_on_save = None

    def _face_init(self, config) -> BertConfig:
        return BertConfig.from_plain(config)

    def plain_forward(self, *args, **kwargs):
        """The 0.6.2-style forward (input_ids, token_type_ids, attention_mask, ...; tensors)."""
        return super().forward(*args, **kwargs)

    @property
    def _bert(self) -> modeling.BertModel:
        return self if isinstance(self, modeling.BertModel) else self.bert

    # -- transformers' model attributes ------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(p for p in self.parameters() if p.is_floating_point()).dtype

    @property
    def name_or_path(self) -> str:
        return self.config.name_or_path

    @property
    def id2label(self):
        return self.config.id2label

    @id2label.setter
    def id2label(self, value) -> None:
        self.config.id2label = value

    @property
    def label2id(self):
        return self.config.label2id

    @label2id.setter
    def label2id(self, value) -> None:
        if value:
            self.config.label2id = value

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameters (tied ones once), as transformers counts them."""
        embeddings = {f"{name}.weight" for name, module in self.named_modules()
                      if isinstance(module, nn.Embedding)} if exclude_embeddings else set()
        return sum(p.numel() for name, p in self.named_parameters()
                   if name not in embeddings and (p.requires_grad or not only_trainable))

    def get_input_embeddings(self) -> nn.Embedding:
        return self._bert.embeddings.word_embeddings

    def can_generate(self) -> bool:
        return False

    # -- forward helpers ---------------------------------------------------------------------------
    def _inputs(self, input_ids, position_ids, inputs_embeds, head_mask, output_attentions,
                unknown: dict) -> None:
        """Refuse, by name, what transformers takes and this model does not compute."""
        if unknown:
            name = sorted(unknown)[0]
            known = [p for p in inspect.signature(self.forward).parameters if p != "unknown"]
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; it takes {', '.join(known)}"
            if name in ("offset_mapping", "special_tokens_mask", "overflow_to_sample_mapping", "length"):
                hint = (f": {name!r} is a tokenizer output for your code; take it out of the "
                        "encoding (encoded.pop(...)) before model(**encoded)")
            raise InvalidArgumentError(f"{type(self).__name__}.forward() takes no argument {name!r}{hint}")
        if input_ids is None:
            raise InvalidInputError(
                "input_ids is required" + (": inputs_embeds is not supported (bert_hub computes "
                                           "from token ids); pass input_ids" if inputs_embeds is not None else ""))
        if inputs_embeds is not None:
            raise InvalidInputError("pass input_ids or inputs_embeds, not both (and bert_hub takes "
                                    "input_ids only)")
        if head_mask is not None:
            raise InvalidInputError("head_mask is not supported: bert_hub's attention kernels run "
                                    "every head; prune heads from the weights instead")
        wants_attentions = self.config.output_attentions if output_attentions is None \
            else output_attentions
        if wants_attentions:
            raise InvalidInputError("output_attentions=True is not supported: bert_hub's attention "
                                    "kernels never form the attention probabilities (set "
                                    "output_attentions=False; use transformers with "
                                    "attn_implementation='eager' to inspect them)")
        if position_ids is not None:
            length = input_ids.shape[-1]
            expected = torch.arange(length, device=position_ids.device)
            if position_ids.shape[-1] != length or not bool((position_ids == expected).all()):
                raise InvalidInputError("position_ids other than 0, 1, ..., S-1 are not supported "
                                        "(BERT's absolute positions); leave position_ids=None")

    def _recorder(self, output_hidden_states) -> _HiddenStates:
        wanted = self.config.output_hidden_states if output_hidden_states is None \
            else output_hidden_states
        return _HiddenStates(self._bert, bool(wanted))

    def _output(self, output_type, return_dict, **fields):
        out = output_type(**fields)
        return out if (self.config.use_return_dict if return_dict is None else return_dict) \
            else out.to_tuple()

    # -- loading and saving ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None,
                        torch_dtype=None, dtype=None, device_map=None, device=None,
                        state_dict=None, **kwargs):
        """As transformers: a Hub id, folder, archive, URL or registry name; keyword arguments
        that name config attributes (``num_labels=3``, ``hidden_dropout_prob=0.0``) set them;
        ``dtype`` / ``torch_dtype`` (default "auto": the file's), ``device_map`` ("cpu",
        "cuda", "auto", a device, or ``{"": device}``: one device)."""
        for name in _IGNORED_LOAD_OPTIONS:
            kwargs.pop(name, None)
        load = {k: kwargs.pop(k) for k in _LOAD_OPTIONS if k in kwargs}
        takes = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "config")]
        built = {k: kwargs.pop(k) for k in takes if k in kwargs}
        check_overrides(f"{cls.__name__}.from_pretrained", kwargs)
        if config is not None and kwargs:
            raise InvalidArgumentError(
                f"with config= given, {sorted(kwargs)[0]}= is not applied (as in transformers): "
                f"set it on the config (config.{sorted(kwargs)[0]} = ...) before loading")
        if config is not None:
            config = BertConfig.from_plain(config)
        elif kwargs:
            config = AutoConfig.from_pretrained(
                pretrained_model_name_or_path,
                **{k: v for k, v in load.items() if k != "unpad"}, **kwargs)
        model = loading.from_pretrained(
            cls, pretrained_model_name_or_path, model_args, built, config=config,
            torch_dtype=dtype if dtype is not None else (torch_dtype or "auto"),
            device=device if device is not None else device_from_map(device_map),
            state_dict=state_dict, **load)
        model.config.name_or_path = pretrained_model_name_or_path
        return model

    @classmethod
    def from_config(cls, config, torch_dtype=None, dtype=None, **kwargs):
        """A model with new weights (0.6.2's initialisation) for ``config``."""
        model = cls(config, **kwargs)
        chosen = loading.check_torch_dtype(dtype if dtype is not None else torch_dtype)
        return model.to(chosen) if isinstance(chosen, torch.dtype) else model

    _from_config = from_config

    def save_pretrained(self, save_directory, state_dict=None, safe_serialization: bool = True,
                        is_main_process: bool = True, **unused) -> Path:
        """``config.json`` and ``model.safetensors`` (``safe_serialization=False``:
        ``pytorch_model.bin``), as transformers writes them and reads them back; tied weights
        once. A ``bert_config.json`` already in the folder is rewritten too, so the two agree."""
        ignored = {k: v for k, v in unused.items() if k not in ("max_shard_size", "push_to_hub") or
                   (k == "push_to_hub" and v)}
        if ignored:
            raise InvalidArgumentError(f"save_pretrained() takes no argument {sorted(ignored)[0]!r} "
                                       "(bert_hub writes local folders only)")
        folder = Path(save_directory)
        if folder.exists() and not folder.is_dir():
            raise InvalidInputError(f"save_pretrained({str(folder)!r}): that is a file; pass a "
                                    "folder (it is created if missing)")
        if not is_main_process:
            return folder
        config_files.label_fields(self.config.id2label, self.config.label2id)   # checked before writing
        state = self.state_dict() if state_dict is None else state_dict
        folder.mkdir(parents=True, exist_ok=True)
        name, stale = (SAFE_WEIGHTS_NAME, WEIGHTS_NAME) if safe_serialization else \
            (WEIGHTS_NAME, SAFE_WEIGHTS_NAME)
        if safe_serialization:
            weights.save_safetensors(state, folder / name, order=fast_path.packed_order(list(state)))
        else:
            with weights.atomic_file(folder / name) as f:
                weights.save_bin(state, f)
        for old in (stale, stale + weights.INDEX_SUFFIX):
            (folder / old).unlink(missing_ok=True)
        self.config.architectures = [type(self).__name__]
        self.config.dtype = str(self.dtype)
        self.config.to_json_file(folder / HF_CONFIG_NAME)
        if (folder / CONFIG_NAME).exists():
            self.config.to_json_file(folder / CONFIG_NAME)
        return folder


def device_from_map(device_map) -> Optional[str]:
    """transformers' ``device_map`` on one device: "cpu", "cuda", "cuda:1", an int, a
    torch.device, "auto" (CUDA when there is one), or ``{"": device}``."""
    if device_map is None:
        return None
    if isinstance(device_map, dict):
        places = set(device_map.values())
        if len(places) != 1:
            raise InvalidInputError(f"device_map spreads the model over {sorted(map(str, places))}; "
                                    "bert_hub puts a model on one device: pass device_map='cuda' "
                                    "or 'cpu'")
        device_map = places.pop()
    if device_map == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if isinstance(device_map, bool) or device_map in ("balanced", "balanced_low_0", "sequential"):
        raise InvalidInputError(f"device_map={device_map!r} spreads a model over devices; bert_hub "
                                "puts a model on one device: pass 'auto', 'cuda' or 'cpu'")
    if isinstance(device_map, int):
        return f"cuda:{device_map}"
    return device_map


# -- losses ------------------------------------------------------------------------------------------
def _class_labels(labels, classes: int, name: str = "labels") -> torch.Tensor:
    """Integer class labels in [0, classes) or -100 (ignored), else InvalidInputError."""
    if not torch.is_tensor(labels) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise InvalidInputError(f"{name} must be an integer tensor of class ids, got "
                                f"{getattr(labels, 'dtype', type(labels).__name__)}")
    bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= classes))
    if not fast_path.is_tracing() and bool(bad.any()):
        raise InvalidInputError(f"{name} holds {int(labels[bad][0])}; class ids are 0..{classes - 1}"
                                f" (and {IGNORE_INDEX} for positions without a loss)")
    return labels


def token_loss(logits: torch.Tensor, labels, real: Optional[torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of (B, S, C) logits over labelled real tokens (-100 and padding ignored)."""
    labels = _class_labels(labels, logits.shape[-1])
    if labels.shape != logits.shape[:-1]:
        raise InvalidInputError(f"labels have shape {tuple(labels.shape)}; they need one per token, "
                                f"{tuple(logits.shape[:-1])}")
    if real is not None:
        labels = labels.masked_fill(~real, IGNORE_INDEX)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def class_loss(logits: torch.Tensor, labels, name: str = "labels") -> torch.Tensor:
    """Cross-entropy of (B, C) logits against (B,) labels."""
    labels = _class_labels(labels, logits.shape[-1], name)
    return F.cross_entropy(logits, labels.reshape(-1), ignore_index=IGNORE_INDEX)


def span_loss(start_logits, end_logits, start_positions, end_positions) -> torch.Tensor:
    """transformers' (and 0.6.2's) question-answering loss: the mean of the start and end
    cross-entropies; positions outside the sequence are clamped to it and ignored."""
    ignored = start_logits.shape[1]
    losses = []
    for logits, positions in ((start_logits, start_positions), (end_logits, end_positions)):
        if not torch.is_tensor(positions) or positions.is_floating_point():
            raise InvalidInputError("start_positions and end_positions must be integer tensors (B,)")
        positions = positions.squeeze(-1) if positions.dim() > 1 else positions
        losses.append(F.cross_entropy(logits, positions.clamp(0, ignored), ignore_index=ignored))
    return (losses[0] + losses[1]) / 2


def sequence_loss(config: BertConfig, logits: torch.Tensor, labels) -> torch.Tensor:
    """transformers' sequence-classification loss: ``config.problem_type`` (set from the labels
    on first use, as transformers does): regression (MSE), single-label (cross-entropy) or
    multi-label (binary cross-entropy on float labels)."""
    if not torch.is_tensor(labels):
        raise InvalidInputError(f"labels must be a tensor, got {type(labels).__name__}")
    classes = logits.shape[-1]
    if config.problem_type is None:
        config.problem_type = "regression" if classes == 1 else (
            "single_label_classification" if labels.dtype in (torch.long, torch.int)
            else "multi_label_classification")
    if config.problem_type == "regression":
        labels = labels.to(logits.dtype)
        return F.mse_loss(logits.squeeze(), labels.squeeze()) if classes == 1 \
            else F.mse_loss(logits, labels)
    if config.problem_type == "single_label_classification":
        return class_loss(logits, labels)
    if labels.shape != logits.shape:
        raise InvalidInputError(f"multi-label labels must have the logits' shape "
                                f"{tuple(logits.shape)} (one 0/1 per class), got {tuple(labels.shape)}")
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
