"""``from_pretrained``'s steps for every BERT model: check the arguments (before any download),
find the files (``hub``), read the weights (``weights``), build the model on the meta device (no
init work for weights about to be overwritten), map and check the keys, assign, initialise what
the checkpoint lacks (reported once), tie and pack."""
from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Mapping
from typing import List, Optional

import torch
from torch import nn

from . import config_files, fast_path, hub, weights
from .errors import ConfigError, ConversionError, InvalidArgumentError, InvalidInputError
from .filenames import CONFIG_NAME
from .input_checks import check_flag

logger = logging.getLogger(__name__)

# Heads whose forward never reads the pooled output: a checkpoint saved without the pooler (as
# transformers saves these heads) leaves nothing they use uninitialised, so they are not warned
# about it. Class names, since modeling imports this module.
_POOLER_UNUSED_BY = ("BertForMaskedLM", "BertForTokenClassification", "BertForQuestionAnswering")
_POOLER = "bert.pooler."
LOAD_OPTIONS = ("cache_dir", "force_download", "local_files_only", "torch_dtype", "device",
                "state_dict", "revision", "token", "unpad")
_ARGUMENT = "the state_dict argument"


def from_pretrained(cls, name_or_path, inputs: tuple, kwargs: dict, *, cache_dir=None,
                    force_download: bool = False, local_files_only: bool = False,
                    torch_dtype=None, device=None,
                    state_dict: Optional[Mapping[str, torch.Tensor]] = None,
                    revision: Optional[str] = None, token=None, unpad: bool = True,
                    config=None) -> nn.Module:
    """``cls(config, *inputs, **kwargs)`` with the weights of ``name_or_path``, in eval mode;
    the config's ``id2label`` / ``label2id`` on the model (and ``num_labels`` when not given);
    ``model.unpad = unpad``. ``config``: a config to use instead of the folder's."""
    kwargs.pop("from_tf", None)   # 0.6.2's flag: a TensorFlow folder is found by its layout
    # Argument mistakes fail here, before a download or a conversion.
    check_constructor_args(cls, inputs, kwargs)
    torch_dtype = check_torch_dtype(torch_dtype)
    device = check_device(device)
    check_flag("unpad", unpad)
    if state_dict is not None:
        check_state_dict(state_dict)

    given_config = config

    def read(files):   # retried by the hub if a cache entry is replaced meanwhile
        if given_config is not None:
            config = given_config
        elif files.config_file is None:
            raise ConfigError(f"{str(files.folder)!r} has no {CONFIG_NAME}")
        else:
            config = config_files.read_config(files.config_file)
        if state_dict is not None:
            return config, state_dict, _ARGUMENT
        if files.weights_file is None and files.tf_checkpoint is not None:
            from .convert import tf_to_state_dict   # a read-only Google folder: in memory
            return config, tf_to_state_dict(files.tf_checkpoint, config), str(files.tf_checkpoint)
        state = weights.load_weights(files.weights_file)
        return config, state, str(files.weights_file)

    config, state_dict, source = hub.read_model(
        name_or_path, read, cache_dir=cache_dir, force_download=force_download,
        local_files_only=local_files_only, need_weights=state_dict is None, revision=revision,
        token=token)
    kwargs, id2label, label2id = config_files.label_arguments(cls, config, inputs, kwargs)
    with torch.device("meta"):
        model = cls(config, *inputs, **kwargs)
    load_checkpoint(model, state_dict, source, torch_dtype=torch_dtype, device=device,
                    copy=source == _ARGUMENT)
    model.id2label, model.label2id = id2label, label2id
    model.unpad = unpad
    return model.eval()


def load_checkpoint(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str,
                    torch_dtype=None, device=None, copy: bool = False) -> None:
    """Assign the checkpoint's tensors to a model built on the meta device, every shape checked
    first; initialise the rest; tie and pack."""
    device = torch.device(device if device is not None else "cpu")
    expected = {k: v for k, v in model.state_dict(keep_vars=True).items()
                if k not in weights.TIED_WEIGHTS}            # tied: never read, re-tied below
    mapping = weights.map_keys(state_dict, expected)
    unexpected = sorted(k for k, new in mapping.items() if new not in expected)
    mismatched, loaded = [], {}
    for key, new in mapping.items():
        if new not in expected:
            continue
        tensor, target = state_dict[key], expected[new]
        if tensor.shape != target.shape:
            shard = (f" in {weights.tensor_file(source, key)}"
                     if source.endswith(weights.INDEX_SUFFIX) else "")
            mismatched.append(f"{new}: checkpoint {tuple(tensor.shape)}{shard}, model "
                              f"{tuple(target.shape)} ({_shape_fix(new, tensor.shape)})")
            continue
        dtype = target.dtype if torch_dtype is None else torch_dtype
        if dtype == "auto" or not tensor.is_floating_point():
            dtype = tensor.dtype
        moved = tensor.to(device=device, dtype=dtype)
        # Never alias a caller's tensors (state_dict=...); a file's tensors are ours.
        loaded[new] = moved.clone() if copy and moved is tensor else moved
    name = type(model).__name__
    if mismatched:
        raise ConversionError(f"weights in {source} do not fit {name}:\n  " + "\n  ".join(mismatched))
    model.load_state_dict(loaded, strict=False, assign=True)
    missing = sorted(k for k in expected if k not in loaded)
    if missing:
        init_missing(model, missing, device, torch_dtype)
        unused = unused_in_forward(model)
        matter = [k for k in missing if not k.startswith(unused)]
        if matter:
            logger.warning("%s: weights not in %s, initialised randomly (train them before use): "
                           "%s", name, source, ", ".join(matter))
        if len(matter) < len(missing):
            logger.info("%s: weights not in %s that its forward never uses, initialised: %s",
                        name, source, ", ".join(k for k in missing if k.startswith(unused)))
    if unexpected:
        logger.info("%s: weights in %s not used: %s", name, source, ", ".join(unexpected))
    model.tie_weights()
    fast_path.pack_all(model)


def unused_in_forward(model: nn.Module) -> tuple:
    """Key prefixes of the weights ``model`` holds but its forward never reads."""
    names = {cls.__name__ for cls in type(model).__mro__}
    return (_POOLER,) if names.intersection(_POOLER_UNUSED_BY) else ()


def label_fields(model: nn.Module) -> dict:
    """What ``save_pretrained`` adds to bert_config.json: the model's ``id2label`` /
    ``label2id`` (from ``from_pretrained`` or set by hand), else its config's when they fit the
    head's ``num_labels``; ``{}`` for a model without labels."""
    id2label = getattr(model, "id2label", None)
    if id2label is None:   # built from a config, never loaded
        id2label, label2id = config_files.label_maps(model.config)
        if len(id2label) != getattr(model, "num_labels", len(id2label)):
            return {}
    else:
        label2id = getattr(model, "label2id", None)
        heads = getattr(model, "num_labels", None)
        if id2label and heads is not None and len(id2label) != heads:
            raise ConfigError(f"{type(model).__name__} has {heads} labels but id2label names "
                              f"{len(id2label)}; set model.id2label to one name per label")
    return config_files.label_fields(id2label, label2id)


@torch.no_grad()
def init_missing(model: nn.Module, names: List[str], device: torch.device, torch_dtype) -> None:
    """Materialise each missing (meta) parameter and initialise it as 0.6.2 does, in the dtype
    of the loaded weights (float32 when none loaded) unless torch_dtype says otherwise."""
    reference = getattr(model, "bert", model).embeddings.word_embeddings.weight  # head or bare
    dtype = torch.float32 if reference.is_meta else reference.dtype
    if torch_dtype not in (None, "auto"):
        dtype = torch_dtype
    for name in names:
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        old = getattr(module, attr)
        tensor = torch.empty(old.shape, dtype=dtype, device=device)
        model.init_tensor(module, attr, tensor)
        module._parameters[attr] = nn.Parameter(tensor, requires_grad=old.requires_grad)


def _shape_fix(key: str, saved: torch.Size) -> str:
    if key.endswith(("classifier.weight", "classifier.bias")):
        return (f"the checkpoint's classifier has {saved[0]} outputs: pass num_labels="
                f"{saved[0]} (or num_choices) to from_pretrained")
    return "the config does not describe this checkpoint; use the checkpoint's own config"


# -- argument checks ----------------------------------------------------------------------------
def check_constructor_args(cls, inputs: tuple, kwargs: dict) -> None:
    """``from_pretrained``'s extra arguments must fit ``cls(config, ...)``."""
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name not in ("self", "config") and p.kind is not p.VAR_KEYWORD]
    try:
        inspect.signature(cls.__init__).bind(None, None, *inputs, **kwargs)
    except TypeError as exc:
        takes = ", ".join(p.name for p in params) or "no arguments besides the config"
        unknown = [k for k in kwargs if k not in {p.name for p in params}]
        close = difflib.get_close_matches(unknown[0], [p.name for p in params] +
                                          list(LOAD_OPTIONS), n=1) if unknown else []
        hint = f" Did you mean {close[0]!r}?" if close else ""
        if "num_labels" in unknown or "num_choices" in unknown:
            hint += (" num_labels belongs to BertForSequenceClassification and "
                     "BertForTokenClassification, num_choices to BertForMultipleChoice.")
        raise InvalidArgumentError(
            f"{cls.__name__}.from_pretrained(): {exc}. {cls.__name__} takes {takes}; the "
            f"loading options are {', '.join(LOAD_OPTIONS)}.{hint}") from None


def check_torch_dtype(value):
    """None, "auto", a floating torch.dtype or its name ("float16", "torch.bfloat16")."""
    if value is None or value == "auto":
        return value
    dtype = getattr(torch, value.replace("torch.", "", 1), None) if isinstance(value, str) \
        else value
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    raise InvalidInputError(
        f"torch_dtype must be a floating dtype (torch.float32, torch.float16, torch.bfloat16), "
        f"its name ('float16'), or 'auto' to keep the file's; got {value!r}")


def check_device(value) -> Optional[torch.device]:
    if value is None:
        return None
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(
            f"device={value!r} is not a torch device ({exc}); pass e.g. 'cpu', 'cuda' or "
            "'cuda:1'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            f"device={value!r}, but CUDA is not available to this torch ({torch.__version__}); "
            "pass device='cpu', or install a CUDA build of torch")
    return device


def check_state_dict(state_dict) -> None:
    if not isinstance(state_dict, Mapping):
        raise InvalidInputError(
            f"state_dict must be a mapping of names to tensors (model.state_dict()), got "
            f"{type(state_dict).__name__}")
    bad = [k for k, v in state_dict.items() if not torch.is_tensor(v)]
    if bad:
        raise InvalidInputError(
            f"state_dict values must be tensors; {bad[0]!r} holds a "
            f"{type(state_dict[bad[0]]).__name__} ({len(bad)} such keys). Pass "
            "model.state_dict() or torch.load(path, weights_only=True)")
