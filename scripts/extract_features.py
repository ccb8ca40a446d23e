#!/usr/bin/env python
"""Write BERT's hidden states for every token of every input line, in Google's JSON-lines
format (the 2018 extract_features.py).

    python scripts/extract_features.py --input_file input.txt --output_file output.jsonl \
        --bert_model bert-base-uncased --layers -1,-2,-3,-4 --max_seq_length 128 --batch_size 8

Each input line is one sentence, or a pair as ``text_a ||| text_b``. Each output line is
``{"linex_index": i, "features": [{"token": "[CLS]", "layers": [{"index": -1, "values":
[...]}, ...]}, ...]}`` (the key ``linex_index`` is spelled as Google's tool spells it).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys

import torch

from bert_hub.errors import EntryNotFoundError
from bert_hub.tasks import glue, script_support

logger = logging.getLogger("extract_features")
_PAIR = re.compile(r"^(.*) \|\|\| (.*)$")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--input_file", required=True, help="one text (or 'text_a ||| text_b') per line")
    add("--output_file", required=True, help="JSON lines, one per input line")
    add("--bert_model", required=True, help="a registry name, a model folder, or a URL")
    add("--layers", default="-1,-2,-3,-4", help="comma-separated encoder layer indexes")
    add("--max_seq_length", type=int, default=128, help="word pieces per line after truncation")
    add("--batch_size", type=int, default=32)
    add("--do_lower_case", dest="do_lower_case", action="store_const", const=True, default=None)
    add("--no_lower_case", dest="do_lower_case", action="store_const", const=False)
    add("--cache_dir", default=None)
    add("--no_cuda", action="store_true")
    add("--local_rank", type=int, default=-1, help="accepted for compatibility; one process")
    args = parser.parse_args(_join_layers(sys.argv[1:] if argv is None else list(argv)))
    try:
        args.layer_indexes = [int(x) for x in args.layers.split(",")]
    except ValueError:
        parser.error(f"--layers must be comma-separated integers like -1,-2,-3,-4, got "
                     f"{args.layers!r}")
    if args.max_seq_length < 3 or args.batch_size < 1:
        parser.error("--max_seq_length must be >= 3 and --batch_size >= 1")
    return parser, args


def _join_layers(argv):
    """``--layers -1,-2`` as ``--layers=-1,-2``: argparse would take ``-1,-2`` for an option."""
    out = []
    for arg in argv:
        if out and out[-1] == "--layers":
            out[-1] = f"--layers={arg}"
        else:
            out.append(arg)
    return out


def read_examples(path: str):
    """``(text_a, text_b or None)`` per line, as Google's reader splits them."""
    if not os.path.isfile(path):
        raise EntryNotFoundError(f"input file {path} does not exist; check --input_file")
    examples = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = _PAIR.match(line.strip())
            examples.append((match.group(1), match.group(2)) if match else (line.strip(), None))
    return examples


# Examples encoded, sorted by length and run per window of this many batches: batches of similar
# length carry little padding (the model computes real tokens only), and memory stays bounded.
SORT_WINDOW_BATCHES = 64


def batches(items, size):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def length_sorted_batches(encoded: list, size: int):
    """Batches of ``(index, encoding)`` over one window of encodings, longest first, each
    trimmed to its longest sequence by the caller; indexes give the input order back."""
    order = sorted(range(len(encoded)), key=lambda i: -sum(encoded[i][2]))
    return batches([(i, encoded[i]) for i in order], size)


def main(argv=None):
    parser, args = parse_args(argv)
    from bert_hub.modeling import BertModel

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", level=logging.INFO)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
    examples = read_examples(args.input_file)
    tokenizer = script_support.load_tokenizer(args)
    model = BertModel.from_pretrained(args.bert_model, cache_dir=args.cache_dir, device=device)
    n_layers = model.config.num_hidden_layers
    bad = [i for i in args.layer_indexes if not -n_layers <= i < n_layers]
    if bad:
        parser.error(f"--layers {bad} out of range: the model has {n_layers} layers "
                     f"(indexes -{n_layers}..{n_layers - 1})")
    model.eval()
    os.makedirs(os.path.dirname(os.path.abspath(args.output_file)), exist_ok=True)
    line_index = 0
    with open(args.output_file, "w", encoding="utf-8") as out, torch.no_grad():
        for window in batches(examples, args.batch_size * SORT_WINDOW_BATCHES):
            encoded = [glue.encode_pair(tokenizer, a, b, args.max_seq_length, cut_empty_as_pair=False)
                       for a, b in window]
            lines = [None] * len(encoded)
            for batch in length_sorted_batches(encoded, args.batch_size):
                longest = max(sum(e[2]) for _, e in batch)    # trimmed: no all-padding columns
                input_ids, input_mask, segment_ids = (
                    torch.tensor([e[k][:longest] for _, e in batch], device=device)
                    for k in (1, 2, 3))                           # each (B, T)
                all_layers, _ = model(input_ids, segment_ids, input_mask)  # L x (B, T, H)
                chosen = {i: all_layers[i].float().cpu() for i in args.layer_indexes}
                for b, (index, (tokens, *_rest)) in enumerate(batch):
                    features = [{"token": token, "layers": [
                        {"index": i,
                         "values": [round(float(x), 6) for x in chosen[i][b, t].tolist()]}
                        for i in args.layer_indexes]} for t, token in enumerate(tokens)]
                    lines[index] = json.dumps({"linex_index": line_index + index,
                                               "features": features})
            out.writelines(line + "\n" for line in lines)
            line_index += len(lines)
    logger.info("wrote %d lines to %s", line_index, args.output_file)


if __name__ == "__main__":
    script_support.run_cli(main)
