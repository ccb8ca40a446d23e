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
