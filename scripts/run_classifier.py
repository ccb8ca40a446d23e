#!/usr/bin/env python
"""Fine-tune and evaluate BERT on a GLUE task (the 2018 run_classifier.py, on our Trainer).

    python scripts/run_classifier.py --task_name MRPC --do_train --do_eval \
        --data_dir $GLUE_DIR/MRPC --bert_model bert-base-uncased --max_seq_length 128 \
        --train_batch_size 32 --learning_rate 2e-5 --num_train_epochs 3 --output_dir /tmp/mrpc

Several GPUs or machines: ``torchrun --nproc_per_node=N scripts/run_classifier.py ...``.
Writes the fine-tuned model (loadable with ``from_pretrained(output_dir)``), eval_results.txt
and eval_results.json (and test_results.tsv with --do_predict) to --output_dir.
"""
from __future__ import annotations

import argparse
import logging
import os

from bert_hub.tasks import glue, script_support

logger = logging.getLogger("run_classifier")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task_name", required=True,
                        help=f"one of {', '.join(glue.GLUE_TASKS)} (case-insensitive)")
    parser.add_argument("--data_dir", required=True,
                        help="the task's folder of .tsv files (as download_glue_data.py writes)")
    parser.add_argument("--max_seq_length", type=int, default=128,
                        help="word pieces per example after truncation, [CLS]/[SEP] included")
    parser.add_argument("--do_train", action="store_true")
    parser.add_argument("--do_eval", action="store_true", help="evaluate on the dev set")
    parser.add_argument("--do_predict", action="store_true",
                        help="label the test set into test_results.tsv")
    parser.add_argument("--skip_malformed_rows", action="store_true",
                        help="skip (and log) rows with missing columns instead of stopping")
    script_support.add_common_args(parser)
    args = parser.parse_args(argv)
    script_support.check_common_args(parser, args)
    if not (args.do_train or args.do_eval or args.do_predict):
        parser.error("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    if args.max_seq_length < 4:
        parser.error(f"--max_seq_length must be at least 4, got {args.max_seq_length}")
    return parser, args


def main(argv=None):
    parser, args = parse_args(argv)
    task = glue.get_task(args.task_name)  # an unknown name fails before anything is loaded
    processor = glue.GlueProcessor(task.name, skip_malformed=args.skip_malformed_rows)
    strategy = script_support.launch(args)
    # read the data first: a bad file should not cost a model download
    train_examples = processor.get_train_examples(args.data_dir) if args.do_train else None
    eval_sets = {}
    if args.do_eval:
        eval_sets[task.name] = processor.get_dev_examples(args.data_dir)
        if task.name == "mnli":  # the 2018 script and the leaderboard report both dev sets
            eval_sets["mnli-mm"] = glue.GlueProcessor("mnli-mm", args.skip_malformed_rows) \
                .get_dev_examples(args.data_dir)
    test_examples = processor.get_test_examples(args.data_dir) if args.do_predict else None

    from bert_hub.modeling import BertForSequenceClassification

    tokenizer = script_support.load_tokenizer(args)
    model = BertForSequenceClassification.from_pretrained(
        args.bert_model, num_labels=task.num_labels, cache_dir=args.cache_dir)
    labels = processor.get_labels()

    def to_dataset(examples):
        features = glue.convert_examples_to_features(
            examples, labels, args.max_seq_length, tokenizer, task.output_mode)
        return glue.dataset(features, task.output_mode)

    train_data = to_dataset(train_examples) if args.do_train else None
    batch_size = script_support.per_device_batch_size(parser, args, strategy) if args.do_train else 1
    trainer = script_support.make_trainer(args, glue.SequenceClassifier(model, task.output_mode),
                                          train_data, batch_size,
                                          compute_metrics=glue.metrics_function(task.name))
    results = {}
    if args.do_train:
        logger.info("training on %d examples, %d optimizer steps", len(train_data),
                    trainer.total_steps)
        summary = script_support.train_and_save(trainer, model, tokenizer, args, strategy)
        results.update(global_step=summary["global_step"], loss=summary["train_loss"])

    for name, examples in eval_sets.items():
        metrics = trainer.evaluate(to_dataset(examples))
        prefix = "mm_" if name == "mnli-mm" else ""
        results.update({prefix + k: v for k, v in metrics.items()})
    if eval_sets and strategy.is_main:
        script_support.write_results(args.output_dir, results)

    if args.do_predict:
        logits = trainer.predict(to_dataset(test_examples))  # (N, num_labels)
        if strategy.is_main:
            write_test_results(os.path.join(args.output_dir, "test_results.tsv"), task, labels,
                               logits)
    strategy.barrier()


def write_test_results(path: str, task, labels, logits) -> None:
    """``index<TAB>prediction`` lines, the form the GLUE server takes."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # --do_predict alone: a new folder
    with open(path, "w", encoding="utf-8") as f:
        f.write("index\tprediction\n")
        for i, row in enumerate(logits):
            value = f"{float(row[0]):.3f}" if task.output_mode == "regression" \
                else labels[int(row.argmax())]
            f.write(f"{i}\t{value}\n")


if __name__ == "__main__":
    script_support.run_cli(main)
