"""The transformers-style models: ``BertModel`` and its seven heads with transformers' forward
(keywords in transformers' order, ``labels=``, ``return_dict``, ``output_hidden_states``) and
outputs (``ModelOutput``).

Each class *is* its 0.6.2-style class of ``bert_hub.modeling`` (a subclass): the same layers,
parameter names and loading; that class's forward (``plain_forward``, which ``bert_hub``'s
pipelines call) computes every output, on the real tokens of a padded batch (``unpad``). The
heads transformers builds without a pooler (masked LM, token classification, question
answering) have none here either. ``model_base`` holds what the classes share.

Padded positions (with ``unpad``, the default; docs/models.md): sequence outputs are zeros
there, question answering's logits -10000, and token-level losses count real tokens only.
Shapes: B batch, C choices or classes, S sequence length, H hidden size, V vocabulary.
"""
from __future__ import annotations

from typing import Callable

from .. import modeling, unpadding
from ..input_checks import check_inputs
from . import outputs
from .model_base import (TransformersModel, _NoPooler, class_loss, sequence_loss, span_loss,
                         token_loss)

__all__ = ["BertModel", "BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction",
           "BertForSequenceClassification", "BertForMultipleChoice", "BertForTokenClassification",
           "BertForQuestionAnswering"]


class _Head(TransformersModel):
    """The forward skeleton every class shares: check the arguments, compute the fields while
    recording hidden states if asked, return an output object or its tuple."""

    def _run(self, output_type, compute: Callable[[], dict], call: dict):
        """``call``: the forward's arguments (its ``locals()``)."""
        self._inputs(call["input_ids"], call["position_ids"], call["inputs_embeds"],
                     call["head_mask"], call["output_attentions"], call["unknown"])
        with self._recorder(call["output_hidden_states"]) as hidden:
            fields = compute()
        fields["hidden_states"] = hidden.states(fields.pop("_mask", call["attention_mask"]),
                                                fields.get("last_hidden_state"))
        return self._output(output_type, call["return_dict"], **fields)

    def _without_pooler(self) -> None:
        """As transformers builds this head: no pooler (its forward never reads one)."""
        self.bert.pooler = _NoPooler()

    def _classifier_dropout(self) -> None:
        if self.config.classifier_dropout is not None:
            self.dropout.p = float(self.config.classifier_dropout)


class BertModel(_Head, modeling.BertModel):
    """forward -> last_hidden_state (B, S, H), pooler_output (B, H) (None without a pooler)."""

    def __init__(self, config, add_pooling_layer: bool = True):
        super().__init__(self._face_init(config))
        if not add_pooling_layer:
            self.pooler = _NoPooler()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **unknown):
        def compute():
            last, pooled = self.plain_forward(input_ids, token_type_ids, attention_mask,
                                              output_all_encoded_layers=False)
            return {"last_hidden_state": last, "pooler_output": pooled}
        return self._run(outputs.BaseModelOutputWithPoolingAndCrossAttentions, compute, locals())


class BertForPreTraining(_Head, modeling.BertForPreTraining):
    """forward -> prediction_logits (B, S, V), seq_relationship_logits (B, 2); with ``labels``
    (B, S; -100 ignored) and ``next_sentence_label`` (B,): their summed loss."""

    def __init__(self, config):
        super().__init__(self._face_init(config))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, *, head_mask=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **unknown):
        def compute():
            scores, relationship = self.plain_forward(input_ids, token_type_ids, attention_mask)
            loss = None
            if labels is not None and next_sentence_label is not None:
                real = unpadding.real_tokens(self.unpad, attention_mask)
                loss = token_loss(scores, labels, real) + \
                    class_loss(relationship, next_sentence_label, "next_sentence_label")
            return {"loss": loss, "prediction_logits": scores,
                    "seq_relationship_logits": relationship}
        return self._run(outputs.BertForPreTrainingOutput, compute, locals())


class BertForMaskedLM(_Head, modeling.BertForMaskedLM):
    """forward -> logits (B, S, V); with ``labels`` (B, S; -100 ignored): the loss."""

    def __init__(self, config):
        super().__init__(self._face_init(config))
        self._without_pooler()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **unknown):
        def compute():
            logits = self.plain_forward(input_ids, token_type_ids, attention_mask)
            real = unpadding.real_tokens(self.unpad, attention_mask)
            return {"loss": None if labels is None else token_loss(logits, labels, real),
                    "logits": logits}
        return self._run(outputs.MaskedLMOutput, compute, locals())


class BertForNextSentencePrediction(_Head, modeling.BertForNextSentencePrediction):
    """forward -> logits (B, 2); with ``labels`` (B,): the loss."""

    def __init__(self, config):
        super().__init__(self._face_init(config))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **unknown):
        def compute():
            logits = self.plain_forward(input_ids, token_type_ids, attention_mask)
            return {"loss": None if labels is None else class_loss(logits, labels),
                    "logits": logits}
        return self._run(outputs.NextSentencePredictorOutput, compute, locals())


class BertForSequenceClassification(_Head, modeling.BertForSequenceClassification):
    """forward -> logits (B, num_labels); with ``labels``: the loss of ``config.problem_type``
    (regression for one label, else single- or multi-label classification by the labels'
    dtype), as transformers computes it."""

    def __init__(self, config):
        config = self._face_init(config)
        super().__init__(config, num_labels=config.num_labels)
        self._classifier_dropout()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **unknown):
        def compute():
            logits = self.plain_forward(input_ids, token_type_ids, attention_mask)
            return {"loss": None if labels is None else sequence_loss(self.config, logits, labels),
                    "logits": logits}
        return self._run(outputs.SequenceClassifierOutput, compute, locals())


class BertForMultipleChoice(_Head, modeling.BertForMultipleChoice):
    """input_ids (B, C, S), any number of choices C -> logits (B, C); with ``labels`` (B,)."""

    def __init__(self, config):
        super().__init__(self._face_init(config))
        self._classifier_dropout()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **unknown):
        def flat(t):                                          # (B, C, S) -> (B*C, S)
            return None if t is None else t.reshape(-1, t.shape[-1])

        def compute():
            check_inputs(self.config, input_ids, token_type_ids, attention_mask, dims=3)
            _, pooled = self.bert(flat(input_ids), flat(token_type_ids), flat(attention_mask),
                                  output_all_encoded_layers=False)
            logits = self.classifier(self.dropout(pooled)).view(-1, input_ids.shape[1])  # (B, C)
            return {"loss": None if labels is None else class_loss(logits, labels),
                    "logits": logits, "_mask": flat(attention_mask)}
        return self._run(outputs.MultipleChoiceModelOutput, compute, locals())


class BertForTokenClassification(_Head, modeling.BertForTokenClassification):
    """forward -> logits (B, S, num_labels); with ``labels`` (B, S; -100 ignored): the loss."""

    def __init__(self, config):
        config = self._face_init(config)
        super().__init__(config, num_labels=config.num_labels)
        self._without_pooler()
        self._classifier_dropout()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, *, head_mask=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **unknown):
        def compute():
            logits = self.plain_forward(input_ids, token_type_ids, attention_mask)
            real = unpadding.real_tokens(self.unpad, attention_mask)
            return {"loss": None if labels is None else token_loss(logits, labels, real),
                    "logits": logits}
        return self._run(outputs.TokenClassifierOutput, compute, locals())


class BertForQuestionAnswering(_Head, modeling.BertForQuestionAnswering):
    """forward -> start_logits, end_logits (B, S); with ``start_positions`` and
    ``end_positions`` (B,): the mean of their losses."""

    def __init__(self, config):
        super().__init__(self._face_init(config))
        self._without_pooler()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, start_positions=None, end_positions=None, *, head_mask=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **unknown):
        def compute():
            start, end = self.plain_forward(input_ids, token_type_ids, attention_mask)
            loss = None
            if start_positions is not None and end_positions is not None:
                loss = span_loss(start, end, start_positions, end_positions)
            return {"loss": loss, "start_logits": start, "end_logits": end}
        return self._run(outputs.QuestionAnsweringModelOutput, compute, locals())
