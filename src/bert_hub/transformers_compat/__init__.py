"""transformers-style code on bert_hub: the same network, tokenizer and loading as the
0.6.2-style classes, with transformers' names, calls and outputs::

    from bert_hub import AutoTokenizer, AutoModel      # instead of: from transformers import ...
    tokenizer = AutoTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    model = AutoModel.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    encoded = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    out = model(**encoded)                              # out.last_hidden_state, out[0]

The ``Auto*`` names are also ``bert_hub``'s; this package adds transformers' class names
(``BertModel``, ``BertForTokenClassification``, ``BertTokenizerFast``, ``BertConfig``, ...), whose
``bert_hub`` namesakes stay the 0.6.2 ones. Names are resolved on first access
(docs/transformers.md).
"""
from importlib import import_module as _import_module

_EXPORTS = {
    "AutoConfig": "configuration",
    "BertConfig": "configuration",
    "AutoTokenizer": "auto",
    "BertTokenizerFast": "tokenizer",
    "BatchEncoding": "batch_encoding",
    "AutoModel": "auto",
    "AutoModelForPreTraining": "auto",
    "AutoModelForMaskedLM": "auto",
    "AutoModelForNextSentencePrediction": "auto",
    "AutoModelForSequenceClassification": "auto",
    "AutoModelForMultipleChoice": "auto",
    "AutoModelForTokenClassification": "auto",
    "AutoModelForQuestionAnswering": "auto",
    "BertModel": "models",
    "BertForPreTraining": "models",
    "BertForMaskedLM": "models",
    "BertForNextSentencePrediction": "models",
    "BertForSequenceClassification": "models",
    "BertForMultipleChoice": "models",
    "BertForTokenClassification": "models",
    "BertForQuestionAnswering": "models",
    "ModelOutput": "outputs",
    "pipeline": "bert_hub.pipelines",
}
_EXPORTS["BertTokenizer"] = "tokenizer"   # transformers 5's name for the same tokenizer

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bert_hub.transformers_compat' has no attribute {name!r}")
    path = module if module.startswith("bert_hub.") else f"{__name__}.{module}"
    value = getattr(_import_module(path), "BertTokenizerFast" if name == "BertTokenizer" else name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
