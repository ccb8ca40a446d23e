"""The error tree. Every error is a ``BertHubError`` and also the builtin a caller would catch
anyway (``FileNotFoundError``, ``ValueError``, ``ConnectionError``...), and its message names the
problem and the fix."""


class BertHubError(Exception):
    """Base of every error raised on purpose by bert_hub."""


class ConfigError(BertHubError, ValueError):
    """A BertConfig field (or a config file) is invalid."""


class InvalidInputError(BertHubError, ValueError):
    """Model or tokenizer input that would fail (or silently misbehave) deep inside a kernel."""


class UnknownModelError(BertHubError, ValueError):
    """A model name that is neither in the registry, nor a path, nor a URL."""


class EntryNotFoundError(BertHubError, FileNotFoundError):
    """A file or cache entry that does not exist where it was looked for."""


class OfflineError(EntryNotFoundError):
    """Offline mode (BERT_HUB_OFFLINE=1 or local_files_only=True) and the entry is not cached."""


class DownloadError(BertHubError, ConnectionError):
    """A transfer failed after its bounded retries (HTTP status, reset, timeout)."""


class IntegrityError(BertHubError, ValueError):
    """Downloaded or cached bytes do not match their published hash, checksum or length."""


class UnsafeArchiveError(BertHubError, ValueError):
    """An archive member that would escape the target folder (absolute, '..', link, device)."""


class ArchiveLayoutError(BertHubError, ValueError):
    """An archive or folder that does not hold a BERT model in any layout we know."""


class InsufficientSpaceError(BertHubError, OSError):
    """Not enough free disk space for a download or an extraction."""


class LockTimeoutError(BertHubError, TimeoutError):
    """Another process held a cache entry's lock for longer than the timeout."""


class CheckpointError(BertHubError, ValueError):
    """A TensorFlow checkpoint that is truncated, corrupt or in a form we do not read."""


class ConversionError(BertHubError, ValueError):
    """Weights whose names or shapes do not fit the model and its config."""


class TrainerError(BertHubError, ValueError):
    """Trainer arguments or state that cannot work together."""


class DataFormatError(BertHubError, ValueError):
    """A task data file (GLUE TSV, SQuAD JSON, text corpus) with a row or field we cannot read;
    the message names the file and the line."""


class UnknownTaskError(BertHubError, ValueError):
    """A fine-tuning task name we have no processor for; the message lists close names."""


class MissingDependencyError(BertHubError, ImportError):
    """An optional extra (e.g. ``tokenizers`` for ``use_fast=True``) is not installed."""


class UnknownTokenError(InvalidInputError, KeyError):
    """A token or id that is not in the vocabulary (a ``KeyError`` too, as in 0.6.2)."""

    def __str__(self):  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class UnsupportedURLError(BertHubError, ValueError):
    """A URL whose scheme no fetcher handles (we fetch http(s)://, s3://, file://, package://
    and plain paths); the message quotes the URL."""


class RegistryError(BertHubError, ValueError):
    """A registry file or entry (package data, or the file named by BERT_HUB_REGISTRY) that is
    missing or malformed; the message names the file and the entry."""


class InvalidArgumentError(BertHubError, TypeError):
    """An argument a function or constructor does not take (a ``TypeError``, as Python's own);
    the message lists the accepted ones."""


class CacheNotWritableError(BertHubError, OSError):
    """The cache folder (``BERT_HUB_CACHE`` or ``cache_dir``) cannot be created or written."""


class AccessDeniedError(BertHubError, PermissionError):
    """A server refused access (a gated or private Hugging Face repository without an accepted
    token); the message says how to get access."""
