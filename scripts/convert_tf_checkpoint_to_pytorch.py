#!/usr/bin/env python
"""Convert a Google BERT TensorFlow checkpoint to a PyTorch weights file, without TensorFlow.

A drop-in for pytorch-pretrained-bert's 2018 script of the same name (same flags):

    python scripts/convert_tf_checkpoint_to_pytorch.py \\
        --tf_checkpoint_path uncased_L-12_H-768_A-12/bert_model.ckpt \\
        --bert_config_file uncased_L-12_H-768_A-12/bert_config.json \\
        --pytorch_dump_path uncased_L-12_H-768_A-12/pytorch_model.bin

The output is a ``torch.save`` state dict (as in 2018) unless the path ends in ``.safetensors``.
"""
from __future__ import annotations

import argparse
import sys

from bert_hub.convert import convert_tf_checkpoint
from bert_hub.errors import BertHubError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf_checkpoint_path", required=True,
                        help="the checkpoint prefix, e.g. .../bert_model.ckpt")
    parser.add_argument("--bert_config_file", required=True,
                        help="the bert_config.json that came with the checkpoint")
    parser.add_argument("--pytorch_dump_path", required=True,
                        help="output file (.bin: torch.save; .safetensors: safetensors)")
    args = parser.parse_args(argv)
    fmt = "safetensors" if args.pytorch_dump_path.endswith(".safetensors") else "bin"
    try:
        out = convert_tf_checkpoint(args.tf_checkpoint_path, args.bert_config_file,
                                    args.pytorch_dump_path, format=fmt)
    except (BertHubError, OSError) as e:   # OSError: an output folder we cannot write
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Saved PyTorch model to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
