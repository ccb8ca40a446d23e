#!/usr/bin/env python
"""Continue BERT's pre-training (masked LM + next sentence) on your own corpus, with Google's
data recipe (the 2018 run_lm_finetuning.py, on our Trainer).

    python scripts/run_lm_finetuning.py --bert_model bert-base-uncased --do_train \
        --train_corpus corpus.txt --output_dir /tmp/lm --num_train_epochs 3

The corpus has one sentence per line and a blank line between documents. The model saved in
--output_dir loads with ``BertForPreTraining.from_pretrained`` or, to fine-tune it further,
with any head's ``from_pretrained``.
"""
from __future__ import annotations

import argparse
import logging
import random

from bert_hub.tasks import pretraining, script_support

logger = logging.getLogger("run_lm_finetuning")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--train_corpus", default=None, help="text, one sentence per line, blank line between "
                                             "documents")
    add("--eval_corpus", default=None, help="held-out text in the same form (--do_eval)")
    add("--do_train", action="store_true")
    add("--do_eval", action="store_true",
        help="masked-LM and next-sentence accuracy on --eval_corpus")
    add("--max_seq_length", type=int, default=128)
    add("--masked_lm_prob", type=float, default=0.15, help="share of word pieces predicted")
    add("--max_predictions_per_seq", type=int, default=20)
    add("--short_seq_prob", type=float, default=0.1,
        help="share of sequences packed to a random shorter length")
    add("--dupe_factor", type=int, default=1,
        help="passes over the corpus with different masks (Google uses 10 for pre-training)")
    add("--whole_word_mask", action="store_true", help="mask all pieces of a word together")
    add("--on_memory", action="store_true", help="accepted for compatibility: data is in memory")
    script_support.add_common_args(parser, train_batch_size=32, learning_rate=3e-5, num_train_epochs=3.0)
    args = parser.parse_args(argv)
    script_support.check_common_args(parser, args)
    if not (args.do_train or args.do_eval):
        parser.error("nothing to do: pass --do_train and/or --do_eval")
    if args.do_train and not args.train_corpus:
        parser.error("--do_train needs --train_corpus")
    if args.do_eval and not args.eval_corpus:
        parser.error("--do_eval needs --eval_corpus")
    if not 0 < args.masked_lm_prob < 1:
        parser.error(f"--masked_lm_prob must be between 0 and 1, got {args.masked_lm_prob}")
    if args.max_seq_length < 5:
        parser.error(f"--max_seq_length must be at least 5, got {args.max_seq_length}")
    return parser, args


def main(argv=None):
    parser, args = parse_args(argv)
    strategy = script_support.launch(args)

    from bert_hub.modeling import BertForPreTraining

    tokenizer = script_support.load_tokenizer(args)

    def build(path, seed):
        # the same seed on every rank: every process builds the same instances
        return pretraining.build_pretraining_data(
            path, tokenizer, args.max_seq_length, dupe_factor=args.dupe_factor,
            short_seq_prob=args.short_seq_prob, masked_lm_prob=args.masked_lm_prob,
            max_predictions_per_seq=args.max_predictions_per_seq,
            whole_word_mask=args.whole_word_mask, rng=random.Random(seed))

    train_data = build(args.train_corpus, args.seed) if args.do_train else None
    eval_data = build(args.eval_corpus, args.seed + 1) if args.do_eval else None
    model = BertForPreTraining.from_pretrained(args.bert_model, cache_dir=args.cache_dir)
    batch_size = script_support.per_device_batch_size(parser, args, strategy) if args.do_train else 1
    trainer = script_support.make_trainer(args, pretraining.PreTrainingObjective(model), train_data,
                                          batch_size, compute_metrics=pretraining.pretraining_metrics)
    results = {}
    if args.do_train:
        logger.info("training on %d sequence pairs, %d optimizer steps", len(train_data),
                    trainer.total_steps)
        summary = script_support.train_and_save(trainer, model, tokenizer, args, strategy)
        results.update(global_step=summary["global_step"], loss=summary["train_loss"])
    if args.do_eval:
        results.update(trainer.evaluate(eval_data))
    if results and strategy.is_main:
        script_support.write_results(args.output_dir, results)
    strategy.barrier()


if __name__ == "__main__":
    script_support.run_cli(main)
