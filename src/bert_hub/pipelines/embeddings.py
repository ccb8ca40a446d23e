"""``feature-extraction`` (the last layer's vector for every token, as transformers returns it)
and ``sentence-embedding`` (one vector per text: mean or [CLS] pooling, optionally normalised,
as sentence-transformers computes it)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..errors import InvalidInputError
from ..json_files import read_json
from ..modeling import BertModel, BertPreTrainedModel
from .base import Pipeline, as_list, plain_forward

POOLINGS = ("mean", "cls")
_ST_POOLINGS = {"mean_tokens": "mean", "cls_token": "cls"}   # sentence-transformers' flag names


class FeatureExtractionPipeline(Pipeline):
    """``pipe(text)`` -> the last layer as a nested list of shape (1, tokens, hidden) per text
    ([CLS] and [SEP] included), or tensors with ``return_tensors=True``. ``pooling="mean"`` or
    ``"cls"`` gives one vector per text instead; ``normalize=True`` scales it to unit length."""

    task = "feature-extraction"
    heads = (BertPreTrainedModel,)

    def __init__(self, model, tokenizer, *, pooling: Optional[str] = None, normalize: bool = False,
                 max_length: Optional[int] = None, **options):
        super().__init__(model, tokenizer, **options)
        self.encoder = model if isinstance(model, BertModel) else getattr(model, "bert", None)
        if not isinstance(self.encoder, BertModel):
            raise InvalidInputError(f"{type(model).__name__} has no BERT encoder to take features from")
        self.pooling = _check_pooling(pooling)
        self.normalize = bool(normalize)
        if max_length is not None:
            self.max_length = min(self.max_length, max_length)

    def __call__(self, inputs: Union[str, Sequence[str]], return_tensors: bool = False,
                 pooling: Optional[str] = "default", normalize: Optional[bool] = None):
        texts, single = as_list(inputs, str, "a text")
        vectors = self.embed(texts, self.pooling if pooling == "default" else _check_pooling(pooling),
                             self.normalize if normalize is None else bool(normalize))
        if not return_tensors:
            vectors = [v.unsqueeze(0).tolist() if v.dim() == 2 else v.tolist() for v in vectors]
        elif vectors and vectors[0].dim() == 2:
            vectors = [v.unsqueeze(0) for v in vectors]                       # (1, S, H)
        return vectors[0] if single else vectors

    def embed(self, texts: Sequence[str], pooling: Optional[str], normalize: bool):
        """Per text: (S, H) token vectors, or an (H,) pooled vector; float32 on the CPU."""
        rows = self.encode_texts(texts)
        return self.run(rows, self.forward,
                        lambda layers, row, length: self.read_vector(layers, row, length, pooling, normalize))

    def forward(self, batch):
        layers, _ = plain_forward(self.encoder)(batch["input_ids"], batch["token_type_ids"],
                                                batch["attention_mask"], output_all_encoded_layers=False)
        return layers                                                          # (B, S, H)

    @staticmethod
    def read_vector(layers: torch.Tensor, row: int, length: int, pooling: Optional[str],
                    normalize: bool) -> torch.Tensor:
        """One row's (S, H) token vectors, or its (H,) pooled vector; float32 on the CPU."""
        tokens = layers[row, :length].float()                                 # (S, H): real tokens
        if pooling is None:
            return tokens.cpu()
        vector = tokens.mean(dim=0) if pooling == "mean" else tokens[0]        # (H,)
        if normalize:
            vector = torch.nn.functional.normalize(vector, dim=-1)
        return vector.cpu()


class SentenceEmbeddingPipeline(FeatureExtractionPipeline):
    """``pipe(texts)`` -> a float32 tensor (texts, hidden); one text -> (hidden,).

    Defaults come from a sentence-transformers model's own files when present (pooling mode,
    a Normalize module, max_seq_length); otherwise mean pooling, not normalised."""

    task = "sentence-embedding"

    def __init__(self, model, tokenizer, *, pooling: Optional[str] = "mean", **options):
        super().__init__(model, tokenizer, pooling=pooling or "mean", **options)

    def __call__(self, inputs: Union[str, Sequence[str]], pooling: Optional[str] = None,
                 normalize: Optional[bool] = None) -> torch.Tensor:
        texts, single = as_list(inputs, str, "a text")
        pooling = self.pooling if pooling is None else _check_pooling(pooling)
        if pooling is None:
            raise InvalidInputError("sentence-embedding pools: pooling must be 'mean' or 'cls'")
        vectors = torch.stack(self.embed(texts, pooling, self.normalize if normalize is None
                                         else bool(normalize)))                # (N, H)
        return vectors[0] if single else vectors


def sentence_transformers_settings(folder: Optional[Path]) -> dict:
    """pooling / normalize / max_length from a sentence-transformers folder's files
    (modules.json, its Pooling config, sentence_bert_config.json); {} when it has none."""
    if folder is None or not (Path(folder) / "modules.json").is_file():
        return {}
    folder = Path(folder)
    settings = {}
    try:
        modules = _read(folder / "modules.json")
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Normalize"):
                settings["normalize"] = True
            if kind.endswith("Pooling"):
                pool = _read(folder / module.get("path", "") / "config.json")
                modes = sorted(k[len("pooling_mode_"):] for k, v in pool.items()
                               if k.startswith("pooling_mode_") and v)
                if len(modes) != 1 or modes[0] not in _ST_POOLINGS:
                    raise InvalidInputError(
                        f"{folder} pools with {modes}; the sentence-embedding pipeline does mean "
                        "or CLS pooling alone")
                settings["pooling"] = _ST_POOLINGS[modes[0]]
        st_config = folder / "sentence_bert_config.json"
        if st_config.is_file():
            length = _read(st_config).get("max_seq_length")
            if isinstance(length, int) and length > 1:
                settings["max_length"] = length
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise InvalidInputError(f"cannot read the sentence-transformers files in {folder}: {exc}") from None
    return settings


def _read(path: Path):
    return read_json(path, InvalidInputError, "sentence-transformers file")


def _check_pooling(pooling: Optional[str]) -> Optional[str]:
    if pooling is None:
        return None
    if str(pooling).lower() not in POOLINGS:
        raise InvalidInputError(f"pooling must be one of {POOLINGS} (or None for every token), got {pooling!r}")
    return str(pooling).lower()
