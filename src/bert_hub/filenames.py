"""The names of the files a model folder, a cache entry and a checkpoint hold, and of the temp
files they are written under: defined here once, used everywhere (nothing of bert_hub
imported, so every module may use them)."""
import re
import uuid
from pathlib import Path

CONFIG_NAME = "bert_config.json"              # Google's, 0.6.2's and ours
HF_CONFIG_NAME = "config.json"                # Hugging Face's
VOCAB_NAME = "vocab.txt"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"  # same name and keys as Hugging Face folders
SAFE_WEIGHTS_NAME = "model.safetensors"       # ours and Hugging Face's
WEIGHTS_NAME = "pytorch_model.bin"            # 0.6.2's and Hugging Face's pickled state dict
TF_CHECKPOINT_NAME = "bert_model.ckpt"        # the prefix of Google's TensorFlow checkpoints
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"   # a sharded checkpoint's index
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"         # (Hugging Face's; shards beside it)

# A file being written lives beside what it becomes under one temp name, ".<name>.<32 hex>.tmp"
# (single-file records in the cache: "<name>.json.<32 hex>.tmp"), made by the one writer that
# moves it into place; a process killed midway leaves it, and `bert-hub cache prune` or the
# next conversion removes it. The second form is what earlier versions' conversions left: a
# writer's temp name added to a temp name.
TEMP_SUFFIX = re.compile(r"\.[0-9a-f]{32}\.tmp(?:\.[0-9a-f]{12}\.tmp)?$")


def temp_path(final) -> Path:
    """A unique temp file beside ``final``, named as TEMP_SUFFIX knows (and a leading dot: no
    archive member or model file is named so)."""
    final = Path(final)
    return final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
