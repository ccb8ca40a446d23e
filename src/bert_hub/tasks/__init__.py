"""Fine-tuning tasks, usable from a notebook as well as from ``scripts/``:

- :mod:`bert_hub.tasks.glue`: GLUE processors, features, metrics, the classifier wrapper.
- :mod:`bert_hub.tasks.squad`: SQuAD v1.1/v2.0 reading, features, post-processing, official eval.
- :mod:`bert_hub.tasks.pretraining`: masked-LM + next-sentence data from a text corpus.
- :mod:`bert_hub.tasks.script_support`: what the scripts share (flags, launch, saving, results).

The names below are re-exported from where they live, for code written against this package.
"""
from bert_hub.sequence_pairs import input_tensors
from bert_hub.tasks.script_support import (
    add_common_args,
    check_common_args,
    launch,
    load_tokenizer,
    make_trainer,
    per_device_batch_size,
    precision,
    run_cli,
    train_and_save,
    write_results,
)

__all__ = ["add_common_args", "check_common_args", "input_tensors", "launch", "load_tokenizer",
           "make_trainer", "per_device_batch_size", "precision", "run_cli", "train_and_save",
           "write_results"]
