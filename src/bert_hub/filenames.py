"""The names of the files a model folder, a cache entry and a checkpoint hold: defined here
once, used everywhere (no imports, so every module may use them)."""

CONFIG_NAME = "bert_config.json"              # Google's, 0.6.2's and ours
HF_CONFIG_NAME = "config.json"                # Hugging Face's
VOCAB_NAME = "vocab.txt"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"  # same name and keys as Hugging Face folders
SAFE_WEIGHTS_NAME = "model.safetensors"       # ours and Hugging Face's
WEIGHTS_NAME = "pytorch_model.bin"            # 0.6.2's and Hugging Face's pickled state dict
TF_CHECKPOINT_NAME = "bert_model.ckpt"        # the prefix of Google's TensorFlow checkpoints
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"   # a sharded checkpoint's index
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"         # (Hugging Face's; shards beside it)
