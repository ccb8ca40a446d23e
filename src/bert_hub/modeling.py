"""BERT in PyTorch: ``BertModel``, its seven task heads and ``BertPreTrainedModel``.

Op-for-op with Google's TensorFlow BERT and a drop-in for pytorch-pretrained-bert 0.6.2: the same
constructors, forward signatures, return conventions and parameter names
(``bert.encoder.layer.0.attention.self.query.weight``, ``LayerNorm.weight``), so 0.6.2 state
dicts load unchanged. This file is the network; its building blocks (activations, ``Linear``,
``BertLayerNorm``) are in ``layers``, its speed-ups in ``fast_path`` (every
``Linear`` and the query/key/value projection go through it) and ``unpadding`` (padded batches
computed on their real tokens only), loading in ``loading`` and ``weights``, input checks in
``input_checks``.

Shapes in comments: B batch, S sequence length, H hidden size, I intermediate size, nh heads,
hd head size (H / nh), C choices, V vocabulary size, T real tokens of a padded batch (packed).
"""
from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import CrossEntropyLoss

from . import fast_path, loading, unpadding, weights
from .config import BertConfig
from .errors import ConfigError, InvalidInputError
from .filenames import CONFIG_NAME, SAFE_WEIGHTS_NAME
from .input_checks import check_flag, check_inputs, check_positive
from .layers import ACT2FN, BertLayerNorm, Embedding, Linear, gelu, gelu_tanh, swish  # noqa: F401

__all__ = [
    "BertConfig", "BertLayerNorm", "BertPreTrainedModel", "BertModel", "BertForPreTraining",
    "BertForMaskedLM", "BertForNextSentencePrediction", "BertForSequenceClassification",
    "BertForMultipleChoice", "BertForTokenClassification", "BertForQuestionAnswering",
    "gelu", "swish", "ACT2FN",
]

logger = logging.getLogger(__name__)


# -- the encoder --------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = Embedding(config.vocab_size, config.hidden_size, padding_idx=0)
        self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size)
        # Not snake-cased, to keep TensorFlow's variable name.
        self.LayerNorm = BertLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: Optional[torch.Tensor] = None,
                position_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """input_ids (B, S), or (T,) packed real tokens with their position_ids (T,)."""
        words = self.word_embeddings(input_ids)                         # (B, S, H) or (T, H)
        if position_ids is None:
            positions = self.position_embeddings.weight[:input_ids.size(1)]  # (S, H): 0..S-1
        else:
            positions = self.position_embeddings(position_ids)          # (T, H)
        if token_type_ids is None:
            types = self.token_type_embeddings.weight[0]                # (H,): every id is 0
        else:
            types = self.token_type_embeddings(token_type_ids)          # (B, S, H)
        return self.dropout(self.LayerNorm(words + positions + types))  # (B, S, H) or (T, H)


class BertSelfAttention(fast_path.PackedQKV):
    """Multi-head self-attention; ``query``/``key``/``value`` keep 0.6.2's names (the fast path
    keeps them in one buffer and projects with one matmul)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if config.hidden_size % config.num_attention_heads != 0:
            raise ConfigError(
                f"hidden_size ({config.hidden_size}) is not a multiple of num_attention_heads "
                f"({config.num_attention_heads})")
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = config.hidden_size
        self.query = Linear(config.hidden_size, self.all_head_size)
        self.key = Linear(config.hidden_size, self.all_head_size)
        self.value = Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.pack_qkv()

    def forward(self, hidden_states: torch.Tensor, attention_mask) -> torch.Tensor:
        """hidden_states (B, S, H) and attention_mask additive, (B, 1, 1, S), or None; or packed
        real tokens (T, H) and their ``unpadding.Packing``."""
        p = self.dropout.p if self.training else 0.0
        if isinstance(attention_mask, unpadding.Packing):  # each sequence over its own keys
            return attention_mask.attend(*self.project_qkv(hidden_states),
                                         self.num_attention_heads, p)  # (T, H)
        batch, seq, _ = hidden_states.shape
        heads = (batch, seq, self.num_attention_heads, self.attention_head_size)
        query, key, value = (t.view(heads).transpose(1, 2)             # each (B, nh, S, hd)
                             for t in self.project_qkv(hidden_states))  # each (B, S, H)
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                 dropout_p=p)           # (B, nh, S, hd)
        return context.transpose(1, 2).reshape(batch, seq, self.all_head_size)  # (B, S, H)


class BertSelfOutput(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual), from ``in_features`` (default: hidden) to
    hidden; :class:`BertOutput` is the same after the feed-forward layer."""

    def __init__(self, config: BertConfig, in_features: Optional[int] = None):
        super().__init__()
        self.dense = Linear(in_features or config.hidden_size, config.hidden_size)
        self.LayerNorm = BertLayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(self.dense(hidden_states))        # (B, S, H)
        return self.LayerNorm(hidden_states + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, input_tensor: torch.Tensor,
                attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
        return self.output(self.self(input_tensor, attention_mask), input_tensor)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.intermediate_size,
                            activation=config.hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dense(hidden_states)                                # (B, S, I)


class BertOutput(BertSelfOutput):
    def __init__(self, config: BertConfig):
        super().__init__(config, config.intermediate_size)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states: torch.Tensor,
                attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_mask)       # (B, S, H)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor],
                output_all_encoded_layers: bool = True) -> List[torch.Tensor]:
        all_encoder_layers = []
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask)        # (B, S, H)
            if output_all_encoded_layers:
                all_encoder_layers.append(hidden_states)
        if not output_all_encoded_layers:
            all_encoder_layers.append(hidden_states)
        return all_encoder_layers


class BertPooler(nn.Module):
    """tanh(dense(hidden state of the first token))."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))         # (B, H)


def _extended_mask(attention_mask: Optional[torch.Tensor],
                   dtype: torch.dtype) -> Optional[torch.Tensor]:
    """(B, S) 1/0 mask -> additive (B, 1, 1, S): 0 to attend, -10000 not (as Google and 0.6.2).
    An all-ones mask changes nothing, so in eager mode it becomes None (lets SDPA skip the mask).
    Under a tracer the mask is always applied: a traced graph must not depend on its values."""
    if attention_mask is None:
        return None
    if not fast_path.is_tracing() and bool((attention_mask == 1).all()):
        return None
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * -10000.0


# -- heads --------------------------------------------------------------------------------------
class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, activation=config.hidden_act)
        self.LayerNorm = BertLayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden_states))                # (B, S, H)


class BertLMPredictionHead(nn.Module):
    """Transform, then logits against the word-embedding matrix (shared) plus a per-token bias."""

    def __init__(self, config: BertConfig, bert_model_embedding_weights: nn.Parameter):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        vocab, hidden = bert_model_embedding_weights.shape
        self.decoder = Linear(hidden, vocab, bias=False)
        self.decoder.weight = bert_model_embedding_weights              # tied: (V, H)
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # The decoder's bias is this head's own parameter (0.6.2's name): added in the matmul.
        return fast_path.linear(self.transform(hidden_states), self.decoder.weight,
                                self.bias)                              # (B, S, V)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig, bert_model_embedding_weights: nn.Parameter):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, bert_model_embedding_weights)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


class BertOnlyNSPHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.seq_relationship = Linear(config.hidden_size, 2)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.seq_relationship(pooled_output)                     # (B, 2)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig, bert_model_embedding_weights: nn.Parameter):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, bert_model_embedding_weights)
        self.seq_relationship = Linear(config.hidden_size, 2)

    def forward(self, sequence_output: torch.Tensor, pooled_output: torch.Tensor):
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


# -- base class: init, load, save ---------------------------------------------------------------
class BertPreTrainedModel(nn.Module):
    """Weight initialisation, ``from_pretrained`` and ``save_pretrained`` for every BERT model."""

    def __init__(self, config: BertConfig, *inputs, **kwargs):
        super().__init__()
        if not isinstance(config, BertConfig):
            if hasattr(config, "to_dict") and hasattr(config, "vocab_size"):
                config = BertConfig.from_dict(config.to_dict())   # e.g. 0.6.2's BertConfig
            else:
                raise ConfigError(
                    f"config in `{type(self).__name__}(config)` must be a BertConfig, got "
                    f"{type(config).__name__}. To load a pretrained model use "
                    f"`{type(self).__name__}.from_pretrained(name_or_path)`")
        config.validate()   # a config holds any values (as in 0.6.2) until a model is built
        self.config = config

    def init_bert_weights(self, module: nn.Module) -> None:
        """0.6.2's init of a Linear, Embedding or LayerNorm (see ``init_tensor``). Skipped on the
        meta device (from_pretrained builds there; loading fills the values)."""
        if isinstance(module, (nn.Linear, nn.Embedding, nn.LayerNorm)) and not module.weight.is_meta:
            for name, param in module.named_parameters(recurse=False):
                self.init_tensor(module, name, param.data)

    @torch.no_grad()
    def init_tensor(self, module: nn.Module, name: str, tensor: torch.Tensor) -> None:
        """Write 0.6.2's initial value of ``module.<name>`` into ``tensor``: normal(0,
        initializer_range) for Linear and Embedding weights, LayerNorm 1 / 0, zero biases."""
        if isinstance(module, nn.LayerNorm):
            tensor.fill_(1.0 if name == "weight" else 0.0)
        elif name == "weight" and isinstance(module, (nn.Linear, nn.Embedding)):
            tensor.normal_(mean=0.0, std=self.config.initializer_range)
        else:
            tensor.zero_()

    def _init_head(self) -> None:
        """Initialise what a head adds on top of ``self.bert`` (which initialised itself)."""
        for name, child in self.named_children():
            if name != "bert":
                child.apply(self.init_bert_weights)

    def tie_weights(self) -> None:
        """Point tied weights at their source after loading replaced it (the MLM heads)."""

    @property
    def unpad(self) -> bool:
        """True (the default): when attention_mask marks padding, compute only the real tokens;
        outputs at padded positions are zeros and token-level losses count real tokens only.
        False: every position, as 0.6.2 does. A head's is its ``bert``'s (docs/models.md)."""
        return self.bert.unpad

    @unpad.setter
    def unpad(self, value: bool) -> None:
        self.bert.unpad = value

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, os.PathLike], *inputs,
                        cache_dir=None, force_download: bool = False,
                        local_files_only: bool = False, torch_dtype=None, device=None,
                        state_dict: Optional[Dict[str, torch.Tensor]] = None,
                        revision: Optional[str] = None, token=None, unpad: bool = True,
                        **kwargs):
        """Build ``cls`` from a model folder, archive, URL or registry name (``hub.resolve_model``).

        Extra ``*inputs`` / ``**kwargs`` go to the constructor (e.g. ``num_labels=3``).
        ``torch_dtype``: dtype of floating weights (default float32; "auto" keeps the file's).
        ``device``: where the weights go (default cpu). ``state_dict``: weights to use instead
        of the folder's. Weights missing from the checkpoint are initialised and reported once.
        ``revision`` (branch, tag or commit) and ``token``: for Hugging Face Hub ids (org/name).
        ``unpad=False``: compute every position of padded batches (see ``unpad``).
        A config's ``id2label`` / ``label2id`` become ``model.id2label`` / ``model.label2id``
        (and ``num_labels`` when not given). Returns the model in eval mode.
        """
        return loading.from_pretrained(
            cls, pretrained_model_name_or_path, inputs, kwargs, cache_dir=cache_dir,
            force_download=force_download, local_files_only=local_files_only,
            torch_dtype=torch_dtype, device=device, state_dict=state_dict, revision=revision,
            token=token, unpad=unpad)

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> Path:
        """Write ``bert_config.json`` and ``model.safetensors``: tied weights once, each layer's
        query/key/value back to back (a load packs them without a copy). The weights file
        appears whole or not at all."""
        folder = Path(save_directory)
        if folder.exists() and not folder.is_dir():
            raise InvalidInputError(
                f"save_pretrained({str(folder)!r}): that is a file; pass a folder (it is created "
                "if missing)")
        labels = loading.label_fields(self)   # id2label / label2id, checked before writing
        folder.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        weights.save_safetensors(state, folder / SAFE_WEIGHTS_NAME,
                                 order=fast_path.packed_order(list(state)))
        # The head, as Hugging Face's config.json names it (`bert-hub serve --task auto` reads
        # it): the nearest class of this module, so a user's subclass reloads as BERT too.
        head = next((c.__name__ for c in type(self).__mro__
                     if c.__module__ == __name__ and c is not BertPreTrainedModel), None)
        self.config.to_json_file(folder / CONFIG_NAME,
                                 extra={**labels, **({"architectures": [head]} if head else {})})
        return folder


# -- models -------------------------------------------------------------------------------------
class BertModel(BertPreTrainedModel):
    """BERT: embeddings, ``num_hidden_layers`` Transformer blocks and the pooler.

    forward(input_ids (B, S) long, token_type_ids (B, S) or None, attention_mask (B, S) 1/0 or
    None, output_all_encoded_layers=True) -> (encoded_layers, pooled_output (B, H)), where
    encoded_layers is a list of every layer's (B, S, H) output, or only the last one's (a
    tensor) when output_all_encoded_layers=False. With ``unpad`` (the default), a batch with
    padding is computed on its real tokens only and its outputs are zeros at padded positions.
    """

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self._unpad = True
        self.embeddings = BertEmbeddings(self.config)
        self.encoder = BertEncoder(self.config)
        self.pooler = BertPooler(self.config)
        self.apply(self.init_bert_weights)

    @property
    def unpad(self) -> bool:
        return self._unpad

    @unpad.setter
    def unpad(self, value: bool) -> None:
        self._unpad = check_flag("unpad", value)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_all_encoded_layers=True):
        check_inputs(self.config, input_ids, token_type_ids, attention_mask)
        if self.unpad and attention_mask is not None:    # real tokens only, when worth it
            packed = unpadding.forward(self, input_ids, token_type_ids, attention_mask,
                                       output_all_encoded_layers)
            if packed is not None:
                return packed
        dtype = self.embeddings.word_embeddings.weight.dtype
        extended_attention_mask = _extended_mask(attention_mask, dtype)  # (B, 1, 1, S) or None
        embedding_output = self.embeddings(input_ids, token_type_ids)    # (B, S, H)
        encoded_layers = self.encoder(embedding_output, extended_attention_mask,
                                      output_all_encoded_layers=output_all_encoded_layers)
        pooled_output = self.pooler(encoded_layers[-1])                  # (B, H)
        if self.unpad:                                   # zeros at padded positions
            encoded_layers = unpadding.zero_padding(encoded_layers, attention_mask)
        if not output_all_encoded_layers:
            encoded_layers = encoded_layers[-1]
        return encoded_layers, pooled_output


class BertForPreTraining(BertPreTrainedModel):
    """BERT + masked-LM and next-sentence heads.

    With masked_lm_labels (B, S; -1 = ignored) and next_sentence_label (B,): the summed loss.
    Otherwise (prediction_scores (B, S, V), seq_relationship_score (B, 2)). With ``unpad``,
    scores are computed on real tokens only (zeros at padded positions) and the MLM loss counts
    real tokens only, its vocabulary projection computed at labelled positions only.
    """

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(self.config)
        self.cls = BertPreTrainingHeads(self.config, self.bert.embeddings.word_embeddings.weight)
        self._init_head()

    def tie_weights(self) -> None:
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, masked_lm_labels=None,
                next_sentence_label=None):
        sequence_output, pooled_output = self.bert(input_ids, token_type_ids, attention_mask,
                                                   output_all_encoded_layers=False)
        real = unpadding.real_tokens(self.unpad, attention_mask)  # (B, S) bool or None: all
        seq_relationship_score = self.cls.seq_relationship(pooled_output)  # (B, 2)
        if masked_lm_labels is not None and next_sentence_label is not None:
            masked_lm_loss = _masked_lm_loss(self.cls.predictions, sequence_output,
                                             masked_lm_labels, real)
            next_sentence_loss = CrossEntropyLoss(ignore_index=-1)(
                seq_relationship_score.view(-1, 2), next_sentence_label.view(-1))
            return masked_lm_loss + next_sentence_loss
        prediction_scores = unpadding.per_token(self.cls.predictions, sequence_output,
                                                real)                   # (B, S, V)
        return prediction_scores, seq_relationship_score


class BertForMaskedLM(BertPreTrainedModel):
    """BERT + masked-LM head. With masked_lm_labels (B, S; -1 = ignored): the loss; otherwise
    prediction_scores (B, S, V). ``unpad``: as in :class:`BertForPreTraining`."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(self.config)
        self.cls = BertOnlyMLMHead(self.config, self.bert.embeddings.word_embeddings.weight)
        self._init_head()

    def tie_weights(self) -> None:
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, masked_lm_labels=None):
        sequence_output, _ = self.bert(input_ids, token_type_ids, attention_mask,
                                       output_all_encoded_layers=False)
        real = unpadding.real_tokens(self.unpad, attention_mask)  # (B, S) bool or None: all
        if masked_lm_labels is not None:
            return _masked_lm_loss(self.cls, sequence_output, masked_lm_labels, real)
        return unpadding.per_token(self.cls, sequence_output, real)    # (B, S, V)


class BertForNextSentencePrediction(BertPreTrainedModel):
    """BERT + next-sentence head. With next_sentence_label (B,): the loss; otherwise (B, 2)."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(self.config)
        self.cls = BertOnlyNSPHead(self.config)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                next_sentence_label=None):
        _, pooled_output = self.bert(input_ids, token_type_ids, attention_mask,
                                     output_all_encoded_layers=False)
        seq_relationship_score = self.cls(pooled_output)                # (B, 2)
        if next_sentence_label is not None:
            loss_fct = CrossEntropyLoss(ignore_index=-1)
            return loss_fct(seq_relationship_score.view(-1, 2), next_sentence_label.view(-1))
        return seq_relationship_score


class BertForSequenceClassification(BertPreTrainedModel):
    """BERT + a linear classifier on the pooled output. With labels (B,): the cross-entropy
    loss; otherwise logits (B, num_labels)."""

    def __init__(self, config: BertConfig, num_labels: int = 2):
        super().__init__(config)
        self.num_labels = check_positive("num_labels", num_labels)
        self.bert = BertModel(self.config)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.classifier = Linear(self.config.hidden_size, num_labels)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        _, pooled_output = self.bert(input_ids, token_type_ids, attention_mask,
                                     output_all_encoded_layers=False)
        logits = self.classifier(self.dropout(pooled_output))           # (B, num_labels)
        if labels is not None:
            return CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        return logits


class BertForMultipleChoice(BertPreTrainedModel):
    """BERT scoring each of C choices with a linear layer on its pooled output.

    input_ids, token_type_ids, attention_mask: (B, C, S). With labels (B,): the loss;
    otherwise logits (B, C).
    """

    def __init__(self, config: BertConfig, num_choices: int = 2):
        super().__init__(config)
        self.num_choices = check_positive("num_choices", num_choices)
        self.bert = BertModel(self.config)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.classifier = Linear(self.config.hidden_size, 1)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        check_inputs(self.config, input_ids, token_type_ids, attention_mask, dims=3)
        if input_ids.shape[1] != self.num_choices:
            raise InvalidInputError(
                f"input_ids has {input_ids.shape[1]} choices (shape {tuple(input_ids.shape)}) but "
                f"the model was built with num_choices={self.num_choices}")
        seq_length = input_ids.size(-1)
        flat_input_ids = input_ids.reshape(-1, seq_length)              # (B*C, S)
        flat_token_type_ids = None if token_type_ids is None else \
            token_type_ids.reshape(-1, seq_length)
        flat_attention_mask = None if attention_mask is None else \
            attention_mask.reshape(-1, seq_length)
        _, pooled_output = self.bert(flat_input_ids, flat_token_type_ids, flat_attention_mask,
                                     output_all_encoded_layers=False)
        logits = self.classifier(self.dropout(pooled_output))           # (B*C, 1)
        reshaped_logits = logits.view(-1, self.num_choices)             # (B, C)
        if labels is not None:
            return CrossEntropyLoss()(reshaped_logits, labels)
        return reshaped_logits


class BertForTokenClassification(BertPreTrainedModel):
    """BERT + a linear classifier on every token. With labels (B, S): the loss over tokens whose
    attention_mask is 1; otherwise logits (B, S, num_labels) (with ``unpad``: computed on real
    tokens only, zeros at padded positions)."""

    def __init__(self, config: BertConfig, num_labels: int = 2):
        super().__init__(config)
        self.num_labels = check_positive("num_labels", num_labels)
        self.bert = BertModel(self.config)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.classifier = Linear(self.config.hidden_size, num_labels)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        sequence_output, _ = self.bert(input_ids, token_type_ids, attention_mask,
                                       output_all_encoded_layers=False)
        real = unpadding.real_tokens(self.unpad, attention_mask)  # (B, S) bool or None: all
        logits = unpadding.per_token(self.classifier, self.dropout(sequence_output),
                                     real)                              # (B, S, num_labels)
        if labels is None:
            return logits
        loss_fct = CrossEntropyLoss()
        flat_logits, flat_labels = logits.view(-1, self.num_labels), labels.view(-1)
        if attention_mask is not None:
            active = attention_mask.view(-1) == 1                       # only real tokens
            flat_logits, flat_labels = flat_logits[active], flat_labels[active]
        return loss_fct(flat_logits, flat_labels)


class BertForQuestionAnswering(BertPreTrainedModel):
    """BERT + span start/end logits. With start_positions and end_positions (B,): the mean of
    the two losses (positions outside the sequence are ignored); otherwise
    (start_logits (B, S), end_logits (B, S)). With ``unpad``, logits at padded positions are
    -10000 (``unpadding.MASKED_LOGIT``), so the softmax of the loss covers real tokens only."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(self.config)
        self.qa_outputs = Linear(self.config.hidden_size, 2)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, start_positions=None,
                end_positions=None):
        sequence_output, _ = self.bert(input_ids, token_type_ids, attention_mask,
                                       output_all_encoded_layers=False)
        real = unpadding.real_tokens(self.unpad, attention_mask)  # (B, S) bool or None: all
        logits = unpadding.per_token(self.qa_outputs, sequence_output, real,
                                     fill=unpadding.MASKED_LOGIT)       # (B, S, 2)
        start_logits, end_logits = (t.squeeze(-1) for t in logits.split(1, dim=-1))
        if start_positions is None or end_positions is None:
            return start_logits, end_logits
        if start_positions.dim() > 1:
            start_positions = start_positions.squeeze(-1)
        if end_positions.dim() > 1:
            end_positions = end_positions.squeeze(-1)
        ignored_index = start_logits.size(1)
        # 0.6.2 clamps the caller's tensors in place; the loss is the same without that.
        start_positions = start_positions.clamp(0, ignored_index)
        end_positions = end_positions.clamp(0, ignored_index)
        loss_fct = CrossEntropyLoss(ignore_index=ignored_index)
        return (loss_fct(start_logits, start_positions) + loss_fct(end_logits, end_positions)) / 2


def _masked_lm_loss(predictions: nn.Module, sequence_output: torch.Tensor, labels: torch.Tensor,
                    real: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy over labelled positions (label -1: ignored); with ``real`` (B, S) over
    labelled real tokens, the vocabulary projection computed there only."""
    loss_fct = CrossEntropyLoss(ignore_index=-1)
    if real is None:
        scores = predictions(sequence_output)                           # (B, S, V)
        return loss_fct(scores.view(-1, scores.shape[-1]), labels.view(-1))
    hidden, labels = unpadding.labelled_rows(sequence_output, labels, real, ignore_index=-1)
    return loss_fct(predictions(hidden), labels)                        # (N, V), (N,)


class _Module(types.ModuleType):
    """``modeling.USE_ONEDNN``, where the fast-path switch used to live, reads and sets
    ``fast_path.ENABLED``."""

    @property
    def USE_ONEDNN(self) -> bool:
        return fast_path.ENABLED

    @USE_ONEDNN.setter
    def USE_ONEDNN(self, value: bool) -> None:
        fast_path.ENABLED = value


sys.modules[__name__].__class__ = _Module
