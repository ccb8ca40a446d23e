#!/usr/bin/env python
"""Write a Google-layout BERT checkpoint with real TensorFlow (``tf.compat.v1.train.Saver``).

The test suite and the conversion benchmark use it to get checkpoints that TensorFlow itself
wrote, with the variable names of Google's ``modeling.py`` / ``run_pretraining.py``: the model
weights, the ``adam_m`` / ``adam_v`` slots of ``AdamWeightDecayOptimizer`` and ``global_step``.
Optionally writes ``bert_config.json`` and ``vocab.txt`` so that the output folder looks like a
Google release (``uncased_L-12_H-768_A-12/``).

    python scripts/make_tf_checkpoint.py OUT_DIR --layers 2 --hidden 16 --heads 2 \\
        --intermediate 32 --vocab 30 --max-position 16 --with-config --with-vocab

Needs TensorFlow; the library itself never does.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from bert_hub.filenames import CONFIG_NAME, TF_CHECKPOINT_NAME, VOCAB_NAME

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# Extra variables (outside the BERT name table) for reader tests of every dtype we support.
EXTRA_DTYPES = ["float32", "float16", "bfloat16", "float64", "int32", "int64"]


def bert_variables(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    """(Google name, TF shape) of every weight of BertForPreTraining, in Google's order."""
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    out = [
        ("bert/embeddings/word_embeddings", (v, h)),
        ("bert/embeddings/token_type_embeddings", (cfg["type_vocab_size"], h)),
        ("bert/embeddings/position_embeddings", (cfg["max_position_embeddings"], h)),
        ("bert/embeddings/LayerNorm/beta", (h,)),
        ("bert/embeddings/LayerNorm/gamma", (h,)),
    ]
    for n in range(cfg["num_hidden_layers"]):
        p = f"bert/encoder/layer_{n}"
        for part in ("query", "key", "value"):
            out += [(f"{p}/attention/self/{part}/kernel", (h, h)),
                    (f"{p}/attention/self/{part}/bias", (h,))]
        out += [
            (f"{p}/attention/output/dense/kernel", (h, h)),
            (f"{p}/attention/output/dense/bias", (h,)),
            (f"{p}/attention/output/LayerNorm/beta", (h,)),
            (f"{p}/attention/output/LayerNorm/gamma", (h,)),
            (f"{p}/intermediate/dense/kernel", (h, i)),
            (f"{p}/intermediate/dense/bias", (i,)),
            (f"{p}/output/dense/kernel", (i, h)),
            (f"{p}/output/dense/bias", (h,)),
            (f"{p}/output/LayerNorm/beta", (h,)),
            (f"{p}/output/LayerNorm/gamma", (h,)),
        ]
    out += [
        ("bert/pooler/dense/kernel", (h, h)),
        ("bert/pooler/dense/bias", (h,)),
        ("cls/predictions/transform/dense/kernel", (h, h)),
        ("cls/predictions/transform/dense/bias", (h,)),
        ("cls/predictions/transform/LayerNorm/beta", (h,)),
        ("cls/predictions/transform/LayerNorm/gamma", (h,)),
        ("cls/predictions/output_bias", (v,)),
        ("cls/seq_relationship/output_weights", (2, h)),
        ("cls/seq_relationship/output_bias", (2,)),
    ]
    return out


def _values(rng: np.random.Generator, name: str, shape, dtype: str) -> np.ndarray:
    """Random values of the right flavour: gammas near 1, weights ~ N(0, 0.02)-ish but large
    enough that a transposed or swapped tensor changes model outputs."""
    if dtype.startswith("int"):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    base = rng.standard_normal(shape).astype(np.float64)
    if name.endswith("gamma"):
        base = 1.0 + 0.1 * base
    elif not name.startswith("extra/"):
        base = 0.05 * base
    return base


def build(out_dir: str, cfg: dict, *, dtype: str = "float32", adam: bool = True,
          extra_dtypes: bool = False, partitioned: bool = False, seed: int = 0, with_config: bool = False,
          with_vocab: bool = False, prefix_name: str = TF_CHECKPOINT_NAME,
          global_step: int = 1000) -> str:
    """Write the checkpoint (and optionally config/vocab) into ``out_dir``; return the prefix."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf1 = tf.compat.v1
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    tf_dtype = getattr(tf, dtype)

    specs = []  # (name, shape, numpy values as float64/int, tf dtype)
    for name, shape in bert_variables(cfg):
        specs.append((name, shape, _values(rng, name, shape, dtype), tf_dtype))
        if adam:  # AdamWeightDecayOptimizer's slots, named as in Google's optimization.py
            specs.append((name + "/adam_m", shape, _values(rng, name, shape, "float32"), tf.float32))
            specs.append((name + "/adam_v", shape, np.abs(_values(rng, name, shape, "float32")),
                          tf.float32))
    if extra_dtypes:
        for dt in EXTRA_DTYPES:
            for shape in ((3, 5), (7,), ()):
                name = f"extra/{dt}_{len(shape)}d"
                specs.append((name, shape, _values(rng, name, shape, dt), getattr(tf, dt)))

    graph = tf.Graph()
    with graph.as_default():
        variables, values_of = [], {}
        for name, shape, values, vdtype in specs:
            # Zero initializer, real values fed in through Variable.load: the values never
            # become graph constants, so the .meta file stays small.
            var = tf1.Variable(tf.zeros(shape, dtype=vdtype), name=name, dtype=vdtype)
            variables.append(var)
            values_of[name] = values.astype(vdtype.as_numpy_dtype)
        if partitioned:  # saved as one full name plus slices: readers must refuse or join them
            parts = tf1.get_variable("extra/partitioned", shape=(6, 4), dtype=tf.float32,
                                     partitioner=tf1.fixed_size_partitioner(2))
            variables.extend(parts)
        step = tf1.Variable(tf.constant(global_step, dtype=tf.int64), name="global_step")
        variables.append(step)
        saver = tf1.train.Saver(variables)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            for var in variables:
                if var.op.name in values_of:
                    var.load(values_of[var.op.name], sess)
            prefix = saver.save(sess, os.path.join(out_dir, prefix_name), strip_default_attrs=True)
    # A Google release folder has no `checkpoint` state file.
    state = os.path.join(out_dir, "checkpoint")
    if os.path.exists(state):
        os.remove(state)

    if with_config:
        google_config = {
            "attention_probs_dropout_prob": 0.1,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "hidden_size": cfg["hidden_size"],
            "initializer_range": 0.02,
            "intermediate_size": cfg["intermediate_size"],
            "max_position_embeddings": cfg["max_position_embeddings"],
            "num_attention_heads": cfg["num_attention_heads"],
            "num_hidden_layers": cfg["num_hidden_layers"],
            "type_vocab_size": cfg["type_vocab_size"],
            "vocab_size": cfg["vocab_size"],
        }
        with open(os.path.join(out_dir, CONFIG_NAME), "w") as f:
            json.dump(google_config, f, indent=2, sort_keys=True)
            f.write("\n")
    if with_vocab:
        words = SPECIAL_TOKENS + [f"w{k}" for k in range(cfg["vocab_size"] - len(SPECIAL_TOKENS))]
        with open(os.path.join(out_dir, VOCAB_NAME), "w") as f:
            f.write("\n".join(words[: cfg["vocab_size"]]) + "\n")
    return prefix


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=30)
    ap.add_argument("--max-position", type=int, default=16)
    ap.add_argument("--type-vocab", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16",
                                                           "float64"])
    ap.add_argument("--no-adam", action="store_true", help="omit the adam_m / adam_v slots")
    ap.add_argument("--extra-dtypes", action="store_true",
                    help="add extra/<dtype>_<n>d variables of every supported dtype")
    ap.add_argument("--partitioned", action="store_true",
                    help="add extra/partitioned, a variable saved in two slices")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--with-config", action="store_true", help="also write bert_config.json")
    ap.add_argument("--with-vocab", action="store_true", help="also write vocab.txt")
    ap.add_argument("--prefix-name", default=TF_CHECKPOINT_NAME)
    args = ap.parse_args(argv)
    cfg = {
        "num_hidden_layers": args.layers, "hidden_size": args.hidden,
        "num_attention_heads": args.heads, "intermediate_size": args.intermediate,
        "vocab_size": args.vocab, "max_position_embeddings": args.max_position,
        "type_vocab_size": args.type_vocab,
    }
    prefix = build(args.out_dir, cfg, dtype=args.dtype, adam=not args.no_adam,
                   extra_dtypes=args.extra_dtypes, partitioned=args.partitioned, seed=args.seed,
                   with_config=args.with_config, with_vocab=args.with_vocab,
                   prefix_name=args.prefix_name)
    print(prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
