"""The served model: one pipeline of ``bert_hub.pipelines`` loaded for the task, its inputs
turned into rows (with text-embeddings-inference's truncation rules), batches of rows run for
the scheduler, and results put together by the pipeline's own code (pooling, label mapping,
entity aggregation, fill-mask candidates, question-answering spans): no second copy of any."""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..config_files import read_config
from ..errors import ArchiveLayoutError, InvalidInputError
from ..json_files import read_json
from ..pipelines import Pipeline, task_class
from ..pipelines.base import Features
from ..pipelines.embeddings import sentence_transformers_settings
from ..sequence_pairs import assemble, truncate_seq_pair
from .settings import ServeSettings

logger = logging.getLogger(__name__)

# Served task -> the pipeline task that computes it.
PIPELINE_TASKS = {"embed": "sentence-embedding", "classify": "text-classification",
                  "rerank": "text-classification", "token-classify": "token-classification",
                  "fill-mask": "fill-mask", "qa": "question-answering"}
# A Hugging Face config's architecture -> the task it serves.
ARCHITECTURES = {"BertModel": "embed", "BertForSequenceClassification": "classify",
                 "BertForTokenClassification": "token-classify", "BertForQuestionAnswering": "qa",
                 "BertForMaskedLM": "fill-mask", "BertForPreTraining": "fill-mask"}
_PIPELINE_CLASSES = {"SentenceEmbeddingPipeline": "embed", "TextClassificationPipeline": "classify",
                     "TokenClassificationPipeline": "token-classify", "FillMaskPipeline": "fill-mask",
                     "QuestionAnsweringPipeline": "qa"}
# Served task -> the pipeline method that reads one row of a batch's outputs.
_READERS = {"classify": "read_logits", "rerank": "read_logits", "token-classify": "read_scores",
            "fill-mask": "read_masks", "qa": "read_logits"}
_WARMUP_TEXT = "the server warms up [MASK] before it says ready"


def detect_task(name: str, settings: ServeSettings) -> Tuple[str, str]:
    """``(task, why)`` for ``--task auto``: a sentence-transformers folder embeds; otherwise the
    config's ``architectures`` (a one-label classifier is a cross-encoder: rerank); otherwise
    the head weights the folder holds."""
    from ..hub import resolve_model
    files = resolve_model(name, cache_dir=settings.cache_dir, revision=settings.revision)
    if (files.folder / "modules.json").is_file():
        return "embed", "a sentence-transformers folder (modules.json)"
    config = read_config(files.config_file, source=name) if files.config_file else None
    labels = len((config.extra.get("id2label") or {}) if config else {})
    for arch in (config.extra.get("architectures") or []) if config else []:
        if arch in ARCHITECTURES:
            task = ARCHITECTURES[arch]
            if task == "classify" and labels == 1:
                return "rerank", f"{arch} with one label (a cross-encoder)"
            return task, f"architectures: {arch}"
    keys = _weight_names(files.weights_file)
    if any(k.startswith("qa_outputs.") for k in keys):
        return "qa", "question-answering weights (qa_outputs)"
    if any(k.startswith("classifier.") for k in keys):
        raise InvalidInputError(
            f"{name!r} has a classifier head but its config names no architecture, so it may "
            "classify texts or tokens: pass --task classify (or rerank) or --task token-classify")
    return "embed", "a BERT encoder without a task head (--task fill-mask serves a masked-LM head)"


def _weight_names(path: Optional[Path]) -> List[str]:
    if path is None:
        return []
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())
    if path.name.endswith(".index.json"):
        index = read_json(path, ArchiveLayoutError, "weights index")
        return list(index.get("weight_map", {})) if isinstance(index, dict) else []
    from ..weights import load_weights
    return list(load_weights(path))


class Engine:
    """A loaded pipeline and what the routes and the scheduler ask of it."""

    def __init__(self, pipe: Pipeline, task: str, model_id: str, settings: ServeSettings):
        if task not in PIPELINE_TASKS:
            raise InvalidInputError(f"unknown task {task!r}; tasks: {', '.join(PIPELINE_TASKS)}")
        expected = task_class(PIPELINE_TASKS[task])
        if not isinstance(pipe, expected):
            raise InvalidInputError(f"task {task} runs a {expected.__name__}, got {type(pipe).__name__}")
        self.pipe, self.task, self.model_id, self.settings = pipe, task, model_id, settings
        if task == "rerank" and pipe.model.num_labels != 1:
            raise InvalidInputError(
                f"rerank needs a one-label classifier (a cross-encoder); this one has "
                f"{pipe.model.num_labels} labels: serve it with --task classify")
        self.max_length = pipe.max_length
        self.max_batch_tokens = settings.batch_tokens(task)
        if self.max_batch_tokens < self.max_length:
            raise InvalidInputError(
                f"--max-batch-tokens ({self.max_batch_tokens}) is below the longest input the model "
                f"takes ({self.max_length}): one input would never fit a batch; raise it to at "
                f"least {self.max_length}")
        self.vocab_size = len(pipe.tokenizer.vocab)
        self._read = (partial(pipe.read_vector, pooling=pipe.pooling, normalize=False)
                      if task == "embed" else getattr(pipe, _READERS[task]))

    # -- building ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, settings: ServeSettings) -> "Engine":
        """Load ``settings.model`` for its task (detected with ``--task auto``)."""
        name = settings.model
        task = settings.task
        if task == "auto":
            task, why = detect_task(name, settings)
            logger.info("serving %s as %s: %s (--task overrides)", name, task, why)
        pipe_cls = task_class(PIPELINE_TASKS[task])
        from ..pipelines import model_class_for
        from ..tokenization import BertTokenizer
        load = dict(cache_dir=settings.cache_dir, revision=settings.revision)
        dtype = torch.bfloat16 if settings.dtype == "bfloat16" else None
        model = model_class_for(pipe_cls).from_pretrained(name, device=settings.device,
                                                          torch_dtype=dtype, **load)
        if settings.dtype == "int8":
            from ..quantization import quantize_dynamic
            model = quantize_dynamic(model)
        tokenizer = BertTokenizer.from_pretrained(name, use_fast=rust_tokenizer_installed(), **load)
        options = {}
        if task == "embed":
            from ..hub import resolve_model
            folder = resolve_model(name, need_weights=False, **load).folder
            options = sentence_transformers_settings(folder)
            if settings.pooling is not None:
                options["pooling"] = settings.pooling
        return cls(pipe_cls(model, tokenizer, **options), task, name, settings)

    @classmethod
    def from_pipeline(cls, pipe: Pipeline, settings: ServeSettings, model_id: str = "pipeline") -> "Engine":
        """Serve a pipeline built in Python (``settings.task`` auto: from its class)."""
        task = settings.task
        if task == "auto":
            task = _PIPELINE_CLASSES.get(type(pipe).__name__)
            if task is None:
                raise InvalidInputError(f"cannot serve a {type(pipe).__name__}; serve one of "
                                        f"{', '.join(_PIPELINE_CLASSES)}")
            if task == "classify" and pipe.model.num_labels == 1:
                task = "rerank"
        return cls(pipe, task, model_id, settings)

    def warm_up(self) -> None:
        """One short and one full-length forward: the first request pays no first-call costs."""
        tok = self.pipe.tokenizer
        ids = tok.convert_tokens_to_ids(tok.tokenize(_WARMUP_TEXT.replace("[MASK]", "")))
        mask = self.pipe.tokenizer.vocab.get("[MASK]", ids[0] if ids else self.pipe.cls_id)
        short = self.pipe.features(ids[:4] + [mask])
        long = self.pipe.features(((ids + [mask]) * self.max_length)[: self.max_length - 2])
        for rows in ([short], [short, long]):
            self.compute(rows, self.pad(rows))

    # -- what the scheduler runs -------------------------------------------------------------------
    def pad(self, rows: List[Features]) -> Dict[str, torch.Tensor]:
        return self.pipe.pad(rows)

    def compute(self, rows: List[Features], batch: Dict[str, torch.Tensor]) -> list:
        return self.pipe.run_batch(rows, self.pipe.forward, self._read, batch=batch)

    # -- inputs ------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], pairs: Optional[Sequence[Optional[str]]] = None,
               truncate: Optional[bool] = None, direction: str = "right") -> List[Features]:
        """Rows of texts (or pairs): longer than the model takes is cut from ``direction``
        (pairs longest first), or, with truncation off, a 422 naming the input."""
        truncate = self.settings.auto_truncate if truncate is None else truncate
        pairs = list(pairs) if pairs is not None else [None] * len(texts)
        rows: List[Optional[Features]] = [None] * len(texts)
        for with_pair in (False, True):
            chosen = [i for i, p in enumerate(pairs) if (p is not None) == with_pair]
            if not chosen:
                continue
            encoded = self.pipe.tokenizer.encode_batch(
                [texts[i] for i in chosen], [pairs[i] for i in chosen] if with_pair else None,
                max_length=1 << 30, truncation=False, padding=False, return_tensors=None)
            for i, ids, types in zip(chosen, encoded["input_ids"], encoded["token_type_ids"]):
                rows[i] = self._fit(ids, types, truncate, direction, i)
        return rows

    def _fit(self, ids: List[int], types: List[int], truncate: bool, direction: str,
             number: int) -> Features:
        limit = self.max_length
        if len(ids) <= limit:
            return Features(ids, types)
        if not truncate:
            raise InvalidInputError(
                f"input {number} has {len(ids)} tokens, more than the model takes ({limit}); "
                "shorten it or send \"truncate\": true")
        second = sum(types)                                  # b and its [SEP]
        a = ids[1:len(ids) - second - 1]
        b = ids[len(ids) - second:-1] if second else None
        left = direction == "left"
        if left:
            a, b = a[::-1], (b[::-1] if b is not None else None)
        if b is None:
            del a[limit - 2:]
        else:
            truncate_seq_pair(a, b, limit - 3)
        if left:
            a, b = a[::-1], (b[::-1] if b is not None else None)
        ids, types = assemble(a, b, self.pipe.cls_id, self.pipe.sep_id)
        return Features(ids, types)

    def encode_ids(self, sequences: Sequence[Sequence[int]]) -> List[Features]:
        """Rows of token ids as /tokenize gives them ([CLS] and [SEP] included)."""
        rows = []
        for number, ids in enumerate(sequences):
            bad = [i for i in ids if not 0 <= i < self.vocab_size]
            if bad:
                raise InvalidInputError(f"input {number}: token id {bad[0]} is outside the vocabulary "
                                        f"(0..{self.vocab_size - 1})")
            if len(ids) > self.max_length:
                raise InvalidInputError(f"input {number} has {len(ids)} token ids, more than the model "
                                        f"takes ({self.max_length})")
            rows.append(Features(list(ids), [0] * len(ids)))
        return rows

    def tokens(self, text: str, add_special_tokens: bool = True) -> List[dict]:
        """Each token of ``text``: id, text, whether special, and its characters [start, stop)."""
        spans = self.pipe.tokenizer.tokenize_with_offsets(text)
        vocab = self.pipe.tokenizer.vocab
        out = [{"id": vocab[s.token], "text": s.token, "special": False, "start": s.start, "stop": s.end}
               for s in spans]
        if add_special_tokens:
            out = ([{"id": self.pipe.cls_id, "text": "[CLS]", "special": True, "start": None, "stop": None}]
                   + out + [{"id": self.pipe.sep_id, "text": "[SEP]", "special": True, "start": None,
                             "stop": None}])
        return out

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        self.encode_ids([ids[: self.max_length]])          # ids checked against the vocabulary
        return self.pipe.decode(list(ids), skip_special_tokens=skip_special_tokens)

    # -- results -----------------------------------------------------------------------------------
    def vectors(self, pooled: List[torch.Tensor], normalize: bool, dimensions: Optional[int]) -> torch.Tensor:
        """(N, D) embeddings: cut to ``dimensions`` (Matryoshka), then unit length if asked."""
        vectors = torch.stack(pooled)                                          # (N, H)
        if dimensions is not None:
            if not 1 <= dimensions <= vectors.shape[1]:
                raise InvalidInputError(f"dimensions must be between 1 and {vectors.shape[1]} (the "
                                        f"model's size), got {dimensions}")
            vectors = vectors[:, :dimensions]
        return torch.nn.functional.normalize(vectors, dim=-1) if normalize else vectors

    def labels(self, logits: torch.Tensor, raw_scores: bool = False, top_k: Optional[int] = None,
               function: Optional[str] = None) -> List[dict]:
        """Every label (or the ``top_k`` best), best first; raw logits with ``raw_scores``."""
        name = "none" if raw_scores else self.pipe.function(function)
        return self.pipe.labels_of(logits, name, top_k)

    def relevance(self, logits: torch.Tensor, raw_scores: bool = False) -> float:
        value = logits[0]
        return float(value if raw_scores else torch.sigmoid(value))

    def info(self) -> dict:
        model = self.pipe.model
        info = {"model_id": self.settings.served_model_name or self.model_id, "task": self.task,
                "model_dtype": self.settings.dtype, "device": str(self.pipe.device),
                "max_input_length": self.max_length, "max_batch_tokens": self.max_batch_tokens,
                "max_client_batch_size": self.settings.max_client_batch_size,
                "max_concurrent_requests": self.settings.max_concurrent_requests,
                "auto_truncate": self.settings.auto_truncate,
                "payload_limit": self.settings.payload_limit,
                "hidden_size": model.config.hidden_size}
        if self.task == "embed":
            info.update(pooling=self.pipe.pooling, normalize=self.pipe.normalize)
        if self.task in ("classify", "rerank", "token-classify"):
            info["id2label"] = {str(k): v for k, v in self.pipe.id2label.items()}
        return info


def rust_tokenizer_installed() -> bool:
    """The Rust tokenizer (identical output, faster) when `tokenizers` is installed."""
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True
