#!/usr/bin/env python
"""Fine-tune BERT on SQuAD v1.1 or v2.0 and predict, with the official evaluation built in
(the 2018 run_squad.py, on our Trainer).

    python scripts/run_squad.py --bert_model bert-base-uncased --do_train --do_predict \
        --train_file $SQUAD_DIR/train-v1.1.json --predict_file $SQUAD_DIR/dev-v1.1.json \
        --train_batch_size 12 --learning_rate 3e-5 --num_train_epochs 2 \
        --max_seq_length 384 --doc_stride 128 --output_dir /tmp/squad

Writes predictions.json, nbest_predictions.json (and null_odds.json with
--version_2_with_negative), the fine-tuned model, and, when the predict file has answers,
eval_results.txt / eval_results.json with the official metric.
"""
from __future__ import annotations

import argparse
import logging

from bert_hub.tasks import squad, script_support

logger = logging.getLogger("run_squad")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--train_file", default=None, help="SQuAD JSON for training, e.g. train-v1.1.json")
    add("--predict_file", default=None, help="SQuAD JSON to predict, e.g. dev-v1.1.json")
    add("--max_seq_length", type=int, default=384,
        help="word pieces per window: [CLS] question [SEP] document span [SEP]")
    add("--doc_stride", type=int, default=128, help="tokens between the starts of two windows")
    add("--max_query_length", type=int, default=64, help="question word pieces kept")
    add("--do_train", action="store_true")
    add("--do_predict", action="store_true", help="predict (and score) --predict_file")
    add("--predict_batch_size", dest="eval_batch_size", type=int, default=8,
        help="windows per device for prediction")
    add("--n_best_size", type=int, default=20, help="answers kept per question in nbest")
    add("--max_answer_length", type=int, default=30, help="longest answer in word pieces")
    add("--verbose_logging", action="store_true", help="log alignment failures of answers")
    add("--version_2_with_negative", action="store_true",
        help="SQuAD 2.0: questions may have no answer")
    add("--null_score_diff_threshold", type=float, default=0.0,
        help="predict no answer when null score - best span score exceeds this")
    script_support.add_common_args(parser, train_batch_size=32, learning_rate=5e-5, num_train_epochs=3.0)
    args = parser.parse_args(argv)
    script_support.check_common_args(parser, args)
    if not (args.do_train or args.do_predict):
        parser.error("nothing to do: pass --do_train and/or --do_predict")
    if args.do_train and not args.train_file:
        parser.error("--do_train needs --train_file")
    if args.do_predict and not args.predict_file:
        parser.error("--do_predict needs --predict_file")
    if args.doc_stride < 1 or args.max_query_length < 1:
        parser.error("--doc_stride and --max_query_length must be >= 1")
    if args.max_seq_length <= args.max_query_length + 3:
        parser.error(f"--max_seq_length ({args.max_seq_length}) must exceed --max_query_length "
                     f"({args.max_query_length}) + 3 to leave room for the document")
    return parser, args


def main(argv=None):
    parser, args = parse_args(argv)
    strategy = script_support.launch(args)
    if args.verbose_logging:
        logging.getLogger("bert_hub.tasks.squad").setLevel(logging.DEBUG)
    # read the data first: a bad file should not cost a model download
    train_examples = squad.read_squad_examples(
        args.train_file, True, args.version_2_with_negative) if args.do_train else None
    predict_examples = squad.read_squad_examples(
        args.predict_file, False, args.version_2_with_negative) if args.do_predict else None

    from bert_hub.modeling import BertForQuestionAnswering

    tokenizer = script_support.load_tokenizer(args)
    model = BertForQuestionAnswering.from_pretrained(args.bert_model, cache_dir=args.cache_dir)

    def features(examples, is_training):
        return squad.convert_examples_to_features(
            examples, tokenizer, args.max_seq_length, args.doc_stride, args.max_query_length,
            is_training)

    train_data = squad.dataset(features(train_examples, True), True) if args.do_train else None
    batch_size = script_support.per_device_batch_size(parser, args, strategy) if args.do_train else 1
    trainer = script_support.make_trainer(args, model, train_data, batch_size)

    if args.do_train:
        logger.info("training on %d examples (%d windows), %d optimizer steps",
                    len(train_examples), len(train_data), trainer.total_steps)
        script_support.train_and_save(trainer, model, tokenizer, args, strategy)

    if args.do_predict:
        predict_features = features(predict_examples, False)
        start_logits, end_logits = trainer.predict(squad.dataset(predict_features, False))
        if strategy.is_main:
            write_and_score(args, tokenizer, predict_examples, predict_features,
                            squad.raw_results(predict_features, start_logits, end_logits))
    strategy.barrier()


def write_and_score(args, tokenizer, examples, features, results) -> None:
    do_lower_case = tokenizer.basic_tokenizer.do_lower_case
    predictions, nbest, null_odds = squad.compute_predictions(
        examples, features, results, args.n_best_size, args.max_answer_length, do_lower_case,
        args.version_2_with_negative, args.null_score_diff_threshold)
    paths = squad.write_predictions(args.output_dir, predictions, nbest, null_odds)
    logger.info("predictions written to %s", paths["predictions"])
    dataset = squad.load_squad_json(args.predict_file)
    has_answers = any(qa.get("answers") or qa.get("is_impossible")
                      for article in dataset for p in article["paragraphs"] for qa in p["qas"])
    if not has_answers:
        logger.info("%s has no answers: nothing to score", args.predict_file)
        return
    results = squad.evaluate(dataset, predictions, args.version_2_with_negative,
                             null_odds or None)
    script_support.write_results(args.output_dir, results)


if __name__ == "__main__":
    script_support.run_cli(main)
