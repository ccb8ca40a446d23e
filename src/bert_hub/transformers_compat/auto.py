"""The ``Auto*`` names of transformers for BERT checkpoints: each ``from_pretrained`` loads the
transformers-style class it names (``AutoModelForTokenClassification`` ->
``BertForTokenClassification``), whatever head the checkpoint was saved with, as transformers
does. A config whose ``model_type`` is not BERT fails naming it before any weights are
fetched (``config_files.read_config``)."""
from __future__ import annotations

from ..errors import InvalidArgumentError
from . import models
from .configuration import AutoConfig  # noqa: F401  (an Auto name, re-exported)
from .tokenizer import BertTokenizerFast


class _Auto:
    """``from_pretrained(name, ...)`` and ``from_config(config)`` of one model class."""

    model_class: type = models.BertModel

    def __init__(self, *args, **kwargs):
        raise InvalidArgumentError(
            f"{type(self).__name__} is not built directly: use "
            f"{type(self).__name__}.from_pretrained(name) or .from_config(config)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """``model_class.from_pretrained`` (see ``TransformersModel.from_pretrained``)."""
        return cls.model_class.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @classmethod
    def from_config(cls, config, **kwargs):
        """A ``model_class`` with new weights for ``config``."""
        return cls.model_class.from_config(config, **kwargs)


class AutoModel(_Auto):
    model_class = models.BertModel


class AutoModelForPreTraining(_Auto):
    model_class = models.BertForPreTraining


class AutoModelForMaskedLM(_Auto):
    model_class = models.BertForMaskedLM


class AutoModelForNextSentencePrediction(_Auto):
    model_class = models.BertForNextSentencePrediction


class AutoModelForSequenceClassification(_Auto):
    model_class = models.BertForSequenceClassification


class AutoModelForMultipleChoice(_Auto):
    model_class = models.BertForMultipleChoice


class AutoModelForTokenClassification(_Auto):
    model_class = models.BertForTokenClassification


class AutoModelForQuestionAnswering(_Auto):
    model_class = models.BertForQuestionAnswering


class AutoTokenizer:
    """``AutoTokenizer.from_pretrained(name, **settings)``: a ``BertTokenizerFast``."""

    def __init__(self, *args, **kwargs):
        raise InvalidArgumentError("AutoTokenizer is not built directly: use "
                                   "AutoTokenizer.from_pretrained(name)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *inputs, **kwargs) -> BertTokenizerFast:
        if inputs:
            raise InvalidArgumentError("AutoTokenizer.from_pretrained takes the name and keyword "
                                       "settings only (e.g. do_lower_case=False)")
        return BertTokenizerFast.from_pretrained(pretrained_model_name_or_path, **kwargs)
