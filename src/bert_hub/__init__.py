"""bert_hub: Google's BERT checkpoints in PyTorch in one line.

The public names are those of pytorch-pretrained-bert 0.6.2 (plus ``Trainer``, ``pipeline`` and
transformers' ``Auto*`` names, whose classes are in ``bert_hub.transformers_compat``). They are
resolved on first access, so ``bert-hub download`` and ``import bert_hub.registry`` never pay
for importing torch.
"""
import logging as _logging
from importlib import import_module as _import_module

# A library stays quiet unless the application configures logging.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__version__ = "0.1.0"

_EXPORTS = {
    "BertConfig": "config",
    "BertPreTrainedModel": "modeling",
    "BertModel": "modeling",
    "BertForPreTraining": "modeling",
    "BertForMaskedLM": "modeling",
    "BertForNextSentencePrediction": "modeling",
    "BertForSequenceClassification": "modeling",
    "BertForMultipleChoice": "modeling",
    "BertForTokenClassification": "modeling",
    "BertForQuestionAnswering": "modeling",
    "load_tf_weights_in_bert": "convert",
    "BasicTokenizer": "tokenization",
    "WordpieceTokenizer": "tokenization",
    "BertTokenizer": "tokenization",
    "BertAdam": "optimization",
    "Trainer": "trainer",
    "cached_path": "hub",
    "PYTORCH_PRETRAINED_BERT_CACHE": "hub",
    "WEIGHTS_NAME": "hub",
    "CONFIG_NAME": "hub",
    "BertHubError": "errors",
    "pipeline": "pipelines",
    # transformers-style code (docs/transformers.md): `from bert_hub import AutoTokenizer, AutoModel`
    "AutoConfig": "transformers_compat",
    "AutoTokenizer": "transformers_compat",
    "AutoModel": "transformers_compat",
    "AutoModelForPreTraining": "transformers_compat",
    "AutoModelForMaskedLM": "transformers_compat",
    "AutoModelForNextSentencePrediction": "transformers_compat",
    "AutoModelForSequenceClassification": "transformers_compat",
    "AutoModelForMultipleChoice": "transformers_compat",
    "AutoModelForTokenClassification": "transformers_compat",
    "AutoModelForQuestionAnswering": "transformers_compat",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bert_hub' has no attribute {name!r}")
    value = getattr(_import_module(f"bert_hub.{module}"), name)
    if name != "PYTORCH_PRETRAINED_BERT_CACHE":  # follows BERT_HUB_CACHE at each access
        globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
