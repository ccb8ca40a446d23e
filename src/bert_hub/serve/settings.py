"""``ServeSettings``: every option of ``bert-hub serve`` (and of ``create_app``), typed and
checked once, when the server is built; each message names the option and the fix."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from ..errors import InvalidInputError

TASKS = ("auto", "embed", "classify", "token-classify", "rerank", "fill-mask", "qa")
POOLINGS = ("cls", "mean")
DTYPES = ("float32", "bfloat16", "int8")
DEVICES = ("cpu", "cuda")
TRUNCATION_DIRECTIONS = ("right", "left")

# Tokens per batch when --max-batch-tokens is not given: text-embeddings-inference's default,
# and a quarter of it for fill-mask, whose output is a whole vocabulary per token (30k floats).
DEFAULT_MAX_BATCH_TOKENS = 16384
FILL_MASK_MAX_BATCH_TOKENS = 4096


@dataclass(frozen=True)
class ServeSettings:
    """What to serve and within which limits (the defaults are text-embeddings-inference's)."""

    model: str = ""                          # anything from_pretrained takes (set by the caller)
    task: str = "auto"                       # auto: read from the model's files
    served_model_name: Optional[str] = None  # the name /info and OpenAI's `model` show (default: MODEL)
    api_key: Optional[str] = None            # required as `Authorization: Bearer KEY` when set
    max_batch_tokens: Optional[int] = None   # real tokens per forward (None: per-task default)
    max_client_batch_size: int = 32          # inputs one request may send
    max_concurrent_requests: int = 512       # requests in flight; more get 429
    auto_truncate: bool = True               # cut inputs longer than the model takes (else 422)
    pooling: Optional[str] = None            # embed: cls or mean (None: the model's own, else mean)
    dtype: str = "float32"
    device: str = "cpu"
    payload_limit: int = 2_000_000           # bytes of one request body; more get 413
    threads: Optional[int] = None            # torch's intra-op threads (None: torch's default)
    cache_dir: Optional[str] = None
    revision: Optional[str] = None           # Hugging Face Hub ids: branch, tag or commit
    warmup: bool = True                      # one forward before /health says ready

    def __post_init__(self):
        for name in ("max_client_batch_size", "max_concurrent_requests", "payload_limit"):
            _positive(name, getattr(self, name))
        if self.max_batch_tokens is not None:
            _positive("max_batch_tokens", self.max_batch_tokens)
        if self.threads is not None:
            _positive("threads", self.threads)
        for name, choices in (("task", TASKS), ("dtype", DTYPES)):
            if getattr(self, name) not in choices:
                raise InvalidInputError(f"--{name} must be one of {', '.join(choices)}, got "
                                        f"{getattr(self, name)!r}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise InvalidInputError(f"--pooling must be cls or mean, got {self.pooling!r}")
        if self.device.split(":")[0] not in DEVICES:
            raise InvalidInputError(f"--device must be cpu, cuda or cuda:N, got {self.device!r}")
        if self.dtype == "int8" and self.device != "cpu":
            raise InvalidInputError("--dtype int8 runs on the CPU (dynamic quantisation); use "
                                    "--dtype bfloat16 on cuda")
        if self.pooling is not None and self.task not in ("auto", "embed"):
            raise InvalidInputError(f"--pooling applies to --task embed, not {self.task}")
        if self.api_key is not None and not self.api_key.strip():
            raise InvalidInputError("--api-key is empty; give a key or leave the option out")
        for name in ("auto_truncate", "warmup"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @classmethod
    def options(cls) -> tuple:
        return tuple(f.name for f in fields(cls))

    def batch_tokens(self, task: str) -> int:
        if self.max_batch_tokens is not None:
            return self.max_batch_tokens
        return FILL_MASK_MAX_BATCH_TOKENS if task == "fill-mask" else DEFAULT_MAX_BATCH_TOKENS


def _positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
