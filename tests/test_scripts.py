"""The fine-tuning scripts run as users run them: a subprocess, a tiny model from a folder, data
in the real file formats. Tiny models learn synthetic tasks that are learnable; torchrun with 2
processes gives the metrics of one process; bad input gives one clear line."""
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys

import pytest
import torch

from bert_hub.config import BertConfig
from bert_hub.errors import DataFormatError, EntryNotFoundError, UnknownTaskError
from bert_hub.modeling import (
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertModel,
)
from bert_hub.tasks import glue
from bert_hub.tokenization import BertTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# p*: words of positive sentences, n*: of negative ones; a* / b*: answer starts / ends; f*: filler
WORDS = [f"{k}{i}" for k in "pnabf" for i in range(12)] + ["what", "is", "it", "?"]


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-layer, 32-wide BERT saved as a folder (bert_config.json, model.safetensors,
    vocab.txt); no dropout, so runs are deterministic and launch-independent."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    (folder / "vocab.txt").write_text("\n".join(SPECIAL + WORDS) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(SPECIAL + WORDS), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertForPreTraining(config).save_pretrained(folder)
    return str(folder)


def _env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", BERT_HUB_DISABLE_PROGRESS="1",
               GLOO_SOCKET_IFNAME="lo")
    return env


def run_script(name, *args, launcher=(), check=True, timeout=240):
    cmd = [sys.executable, *launcher, os.path.join(SCRIPTS, name), *map(str, args)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def load_script(name):
    spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(SCRIPTS, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def results(folder):
    text = (folder / "eval_results.txt").read_text()
    data = json.loads((folder / "eval_results.json").read_text())
    assert sorted(text.splitlines()) == sorted(f"{k} = {v}" for k, v in data.items())
    return data


def sst2_rows(n, rng):
    """Label 1: words from p*, label 0: from n*. Learnable from the words alone."""
    rows = ["sentence\tlabel"]
    for _ in range(n):
        label = rng.randrange(2)
        prefix = "p" if label else "n"
        words = [f"{prefix}{rng.randrange(12)}" if rng.random() < 0.5 else f"f{rng.randrange(12)}"
                 for _ in range(5)] + [f"{prefix}{rng.randrange(12)}"]
        rng.shuffle(words)
        rows.append(" ".join(words) + f"\t{label}")
    return rows


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@pytest.fixture(scope="module")
def sst2_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("SST-2")
    rng = random.Random(0)
    write_lines(folder / "train.tsv", sst2_rows(256, rng))
    write_lines(folder / "dev.tsv", sst2_rows(64, rng))
    write_lines(folder / "test.tsv", ["index\tsentence", "0\tp1 p2 f3", "1\tn4 n5 f6"])
    return folder


def squad_data(n, rng, windows=False, impossible=0.0):
    """An answer "a<i> b<j>" hidden among filler words: start at a*, end at b*."""
    paragraphs = []
    for i in range(n):
        words = [f"f{rng.randrange(12)}" for _ in range(8)]
        qa = {"id": f"q{i}", "question": "what is it ?", "answers": []}
        if rng.random() >= impossible:
            k = rng.randrange(len(words) + 1)
            answer = [f"a{rng.randrange(12)}", f"b{rng.randrange(12)}"]
            words[k:k] = answer
            start = len(" ".join(words[:k])) + (1 if k else 0)
            qa["answers"] = [{"text": " ".join(answer), "answer_start": start}]
        if impossible:
            qa["is_impossible"] = not qa["answers"]
        paragraphs.append({"context": " ".join(words), "qas": [qa]})
    return {"version": "2.0" if impossible else "1.1",
            "data": [{"title": "synthetic", "paragraphs": paragraphs}]}


# ---------------------------------------------------------------------------- run_classifier
CLASSIFIER = ("--task_name", "SST-2", "--max_seq_length", "12", "--train_batch_size", "16",
              "--learning_rate", "5e-3", "--eval_batch_size", "32")


def test_classifier_learns_saves_and_reloads(tiny_model, sst2_dir, tmp_path):
    out = tmp_path / "out"
    run_script("run_classifier.py", *CLASSIFIER, "--do_train", "--do_eval", "--do_predict",
               "--data_dir", sst2_dir, "--bert_model", tiny_model, "--num_train_epochs", "2",
               "--output_dir", out)
    res = results(out)
    assert res["acc"] >= 0.9, res
    assert res["global_step"] == 2 * 256 // 16
    assert (out / "test_results.tsv").read_text().splitlines() == \
        ["index\tprediction", "0\t1", "1\t0"]

    # the saved folder is the fine-tuned model: reloaded, it scores the same on dev
    model = BertForSequenceClassification.from_pretrained(str(out), num_labels=2)
    tokenizer = BertTokenizer.from_pretrained(str(out))
    examples = glue.GlueProcessor("sst-2").get_dev_examples(str(sst2_dir))
    tensors = glue.features_to_tensors(glue.convert_examples_to_features(
        examples, ["0", "1"], 12, tokenizer))
    with torch.no_grad():
        logits = model(tensors["input_ids"], tensors["token_type_ids"], tensors["attention_mask"])
    acc = float((logits.argmax(-1) == tensors["label_ids"]).float().mean())
    assert acc == pytest.approx(res["acc"])

    # evaluation alone, from the saved folder
    again = tmp_path / "again"
    run_script("run_classifier.py", *CLASSIFIER, "--do_eval", "--data_dir", sst2_dir,
               "--bert_model", out, "--output_dir", again)
    assert results(again)["acc"] == pytest.approx(res["acc"])
    assert results(again)["eval_loss"] == pytest.approx(res["eval_loss"], rel=1e-5)

    # prediction alone, into a folder that does not exist yet
    predicted = tmp_path / "new" / "predictions"
    load_script("run_classifier.py").main(
        [*CLASSIFIER, "--do_predict", "--data_dir", str(sst2_dir), "--bert_model", str(out),
         "--output_dir", str(predicted)])
    assert (predicted / "test_results.tsv").read_text() == (out / "test_results.tsv").read_text()


def test_classifier_checkpoints_while_training_and_continues_when_started_again(
        tiny_model, sst2_dir, tmp_path, monkeypatch):
    from bert_hub.trainer import Trainer

    saved = []
    save = Trainer.save_checkpoint

    def spy(self, path=None):
        saved.append(self.global_step)
        return save(self, path)

    monkeypatch.setattr(Trainer, "save_checkpoint", spy)
    run_classifier = load_script("run_classifier.py")
    common = [*CLASSIFIER, "--do_train", "--data_dir", str(sst2_dir), "--bert_model", tiny_model,
              "--output_dir", str(tmp_path), "--save_steps", "2"]
    run_classifier.main([*common, "--max_steps", "5"])
    assert saved == [2, 4, 5]  # during training, not only at the end
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("checkpoint-")) == \
        ["checkpoint-5"]  # the newest kept
    saved.clear()
    run_classifier.main([*common, "--max_steps", "7"])  # the same run, started again
    assert saved == [6, 7]  # continued from step 5


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_match_one_process(tiny_model, sst2_dir, tmp_path):
    data = tmp_path / "SST-2"  # one test row for two processes: rank 1's shard is empty
    data.mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (data / name).write_bytes((sst2_dir / name).read_bytes())
    write_lines(data / "test.tsv", ["index\tsentence", "0\tp1 p2 f3"])
    common = (*CLASSIFIER[:4], "--train_batch_size", "8", "--learning_rate", "1e-3",
              "--eval_batch_size", "8", "--do_train", "--do_eval", "--do_predict",
              "--data_dir", data,
              "--bert_model", tiny_model, "--max_steps", "12", "--gradient_accumulation_steps",
              "2")
    run_script("run_classifier.py", *common, "--output_dir", tmp_path / "one")
    for attempt in range(2):  # the free port may be taken before torchrun binds it: once more
        torchrun = ("-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
                    "--master_addr", "127.0.0.1", "--master_port", str(_free_port()))
        proc = run_script("run_classifier.py", *common, "--output_dir", tmp_path / "two",
                          launcher=torchrun, check=False)
        if proc.returncode == 0 or "address already in use" not in proc.stderr.lower():
            break
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    one, two = results(tmp_path / "one"), results(tmp_path / "two")
    assert one["global_step"] == two["global_step"] == 12
    assert two["acc"] == one["acc"]
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-6)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-6)
    predictions = (tmp_path / "two" / "test_results.tsv").read_text()
    assert predictions == (tmp_path / "one" / "test_results.tsv").read_text()
    assert predictions.splitlines()[0] == "index\tprediction" and len(predictions.splitlines()) == 2
    # the same weights (up to the order of float sums), written once by rank 0, loadable
    a = BertForSequenceClassification.from_pretrained(str(tmp_path / "one"), num_labels=2)
    b = BertForSequenceClassification.from_pretrained(str(tmp_path / "two"), num_labels=2)
    base = BertForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
    b_state, base_state = b.state_dict(), base.state_dict()
    moved = max(float((v - base_state[k]).abs().max()) for k, v in a.state_dict().items()
                if k.startswith("bert."))
    assert moved > 1e-3  # it did train
    assert max(float((v - b_state[k]).abs().max()) for k, v in a.state_dict().items()) <= 1e-5


def test_regression_task_sts_b(tiny_model, tmp_path):
    sts = tmp_path / "STS-B"
    sts.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
    rng = random.Random(1)
    rows = [f"{i}\tg\tf\ty\to\ts\ts\tp{i % 12} f1\tp{(i * 5) % 12} f2\t{rng.uniform(0, 5):.3f}"
            for i in range(32)]
    write_lines(sts / "train.tsv", [header + "\tscore"] + rows)
    write_lines(sts / "dev.tsv", [header + "\tscore"] + rows[:16])
    write_lines(sts / "test.tsv", [header, "0\tg\tf\ty\to\ts\ts\tp1\tp2"])
    run_script("run_classifier.py", "--task_name", "sts-b", "--do_train", "--do_eval",
               "--do_predict", "--data_dir", sts, "--bert_model", tiny_model, "--max_seq_length",
               "10", "--train_batch_size", "8", "--max_steps", "4", "--output_dir", tmp_path / "o")
    res = results(tmp_path / "o")
    assert {"pearson", "spearmanr", "corr", "eval_loss"} <= set(res)
    assert -1 <= res["pearson"] <= 1 and res["corr"] == pytest.approx(
        (res["pearson"] + res["spearmanr"]) / 2)
    (line,) = (tmp_path / "o" / "test_results.tsv").read_text().splitlines()[1:]
    float(line.split("\t")[1])  # a score, not a label


def test_mnli_evaluates_matched_and_mismatched(tiny_model, tmp_path):
    mnli = tmp_path / "MNLI"
    mnli.mkdir()
    header = ("index\tpromptID\tpairID\tgenre\ts1_binary_parse\ts2_binary_parse\ts1_parse\t"
              "s2_parse\tsentence1\tsentence2")
    labels = ["contradiction", "entailment", "neutral"]

    def rows(n, extra_labels):
        return [f"{i}\t1\t1n\tg\t(x)\t(y)\t(X)\t(Y)\tp{i % 12} f1\tn{i % 5}"
                + "\t" + "\t".join([labels[i % 3]] * (extra_labels + 1)) for i in range(n)]

    write_lines(mnli / "train.tsv", [header + "\tlabel1\tgold_label"] + rows(12, 1))
    dev_header = header + "".join(f"\tlabel{k}" for k in range(1, 6)) + "\tgold_label"
    write_lines(mnli / "dev_matched.tsv", [dev_header] + rows(6, 5))
    write_lines(mnli / "dev_mismatched.tsv", [dev_header] + rows(9, 5)[3:])
    load_script("run_classifier.py").main([
        "--task_name", "MNLI", "--do_train", "--do_eval", "--data_dir", str(mnli),
        "--bert_model", tiny_model, "--max_seq_length", "10", "--train_batch_size", "4",
        "--max_steps", "2", "--output_dir", str(tmp_path / "o")])
    res = results(tmp_path / "o")
    assert {"acc", "eval_loss", "mm_acc", "mm_eval_loss", "global_step", "loss"} == set(res)
    assert res["eval_loss"] != res["mm_eval_loss"]  # two different dev sets


# ---------------------------------------------------------------------------- run_squad
def test_squad_learns_spans_across_windows(tiny_model, tmp_path):
    rng = random.Random(0)
    (tmp_path / "train.json").write_text(json.dumps(squad_data(256, rng)), encoding="utf-8")
    dev = squad_data(48, rng)
    (tmp_path / "dev.json").write_text(json.dumps(dev), encoding="utf-8")
    out = tmp_path / "out"
    # 10 context words in windows of 16 - 4 - 3 = 9 tokens: two windows per question
    run_script("run_squad.py", "--bert_model", tiny_model, "--do_train", "--do_predict",
               "--train_file", tmp_path / "train.json", "--predict_file", tmp_path / "dev.json",
               "--max_seq_length", "16", "--doc_stride", "4", "--max_query_length", "4",
               "--train_batch_size", "16", "--learning_rate", "2e-3", "--num_train_epochs", "3",
               "--n_best_size", "5", "--output_dir", out)
    res = results(out)
    assert res["f1"] >= 90.0, res
    predictions = json.loads((out / "predictions.json").read_text())
    nbest = json.loads((out / "nbest_predictions.json").read_text())
    assert set(predictions) == set(nbest) == {f"q{i}" for i in range(48)}
    assert all(len(v) <= 5 and v[0]["text"] == predictions[k] for k, v in nbest.items())
    assert not (out / "null_odds.json").exists()
    BertForQuestionAnswering.from_pretrained(str(out))


def test_squad_v2_writes_null_odds_and_split_metrics(tiny_model, tmp_path):
    rng = random.Random(2)
    for name, n in (("train", 48), ("dev", 16)):
        data = squad_data(n, rng, impossible=0.3)
        (tmp_path / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "out"
    run_script("run_squad.py", "--bert_model", tiny_model, "--do_train", "--do_predict",
               "--version_2_with_negative", "--null_score_diff_threshold", "0.5",
               "--train_file", tmp_path / "train.json", "--predict_file", tmp_path / "dev.json",
               "--max_seq_length", "24", "--max_query_length", "4", "--train_batch_size", "16",
               "--max_steps", "3", "--output_dir", out)
    res = results(out)
    assert {"exact", "f1", "total", "HasAns_exact", "NoAns_exact", "best_f1",
            "best_f1_thresh"} <= set(res)
    assert res["total"] == 16 and res["HasAns_total"] + res["NoAns_total"] == 16
    null_odds = json.loads((out / "null_odds.json").read_text())
    predictions = json.loads((out / "predictions.json").read_text())
    assert set(null_odds) == set(predictions)
    for qid, diff in null_odds.items():  # the threshold decides between "" and the best span
        assert (predictions[qid] == "") == (diff > 0.5)


# ---------------------------------------------------------------------------- extract_features
def test_extract_features_matches_the_model(tiny_model, tmp_path):
    (tmp_path / "in.txt").write_text("p1 p2 f3\nA1 b2 ||| f4 unknownword\n", encoding="utf-8")
    out = tmp_path / "feat.jsonl"
    run_script("extract_features.py", "--input_file", tmp_path / "in.txt", "--output_file", out,
               "--bert_model", tiny_model, "--layers", "-1,0", "--max_seq_length", "8",
               "--batch_size", "1")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["linex_index"] for line in lines] == [0, 1]
    tokens = [[f["token"] for f in line["features"]] for line in lines]
    assert tokens == [["[CLS]", "p1", "p2", "f3", "[SEP]"],
                      ["[CLS]", "a1", "b2", "[SEP]", "f4", "[UNK]", "[SEP]"]]
    model = BertModel.from_pretrained(tiny_model)
    tok = BertTokenizer.from_pretrained(tiny_model)
    ids = torch.tensor([tok.convert_tokens_to_ids(tokens[1])])
    segments = torch.tensor([[0, 0, 0, 0, 1, 1, 1]])
    with torch.no_grad():
        layers, _ = model(ids, segments)
    for t, feature in enumerate(lines[1]["features"]):
        assert [layer["index"] for layer in feature["layers"]] == [-1, 0]
        for layer in feature["layers"]:
            expected = layers[layer["index"]][0, t]
            assert len(layer["values"]) == 32
            assert torch.allclose(torch.tensor(layer["values"]), expected, atol=2e-6)


# ---------------------------------------------------------------------------- run_lm_finetuning
def test_lm_finetuning_lowers_the_held_out_loss(tiny_model, tmp_path):
    rng = random.Random(0)

    def corpus(n_docs):  # runs of consecutive f-words: a masked word follows from its neighbours
        docs = []
        for _ in range(n_docs):
            sentences = []
            for _ in range(4):
                start = rng.randrange(6)
                sentences.append(" ".join(f"f{i}" for i in range(start, start + 6)))
            docs.append("\n".join(sentences))
        return "\n\n".join(docs) + "\n"

    (tmp_path / "train.txt").write_text(corpus(40), encoding="utf-8")
    (tmp_path / "eval.txt").write_text(corpus(10), encoding="utf-8")
    common = ("--bert_model", tiny_model, "--eval_corpus", tmp_path / "eval.txt",
              "--max_seq_length", "24", "--train_batch_size", "16", "--learning_rate", "2e-3")
    run_script("run_lm_finetuning.py", *common, "--do_eval", "--output_dir", tmp_path / "before")
    run_script("run_lm_finetuning.py", *common, "--do_train", "--do_eval", "--train_corpus",
               tmp_path / "train.txt", "--num_train_epochs", "4", "--dupe_factor", "2",
               "--output_dir", tmp_path / "after")
    before, after = results(tmp_path / "before"), results(tmp_path / "after")
    assert after["eval_loss"] < 0.7 * before["eval_loss"], (before, after)
    assert after["mlm_accuracy"] > before["mlm_accuracy"] + 0.1
    reloaded = BertForPreTraining.from_pretrained(str(tmp_path / "after"))
    assert reloaded.config.hidden_size == 32


# ---------------------------------------------------------------------------- bad input
def test_cli_errors_are_one_line(tiny_model, tmp_path):
    proc = run_script("run_classifier.py", "--task_name", "mrcp", "--do_train", "--data_dir",
                      tmp_path, "--bert_model", tiny_model, "--output_dir", tmp_path / "o",
                      check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: unknown GLUE task 'mrcp'. Did you mean 'mrpc'? Known "
                                   "tasks: " + ", ".join(glue.GLUE_TASKS) + ".")
    proc = run_script("run_squad.py", "--do_train", "--bert_model", tiny_model,
                      "--output_dir", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "--do_train needs --train_file" in proc.stderr


def test_script_bad_input_errors(tiny_model, tmp_path):
    run_classifier = load_script("run_classifier.py")
    base = ["--bert_model", tiny_model, "--output_dir", str(tmp_path / "o"), "--do_train"]
    with pytest.raises(EntryNotFoundError, match=r"data file .*train\.tsv does not exist"):
        run_classifier.main(["--task_name", "rte", "--data_dir", str(tmp_path)] + base)
    write_lines(tmp_path / "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb"])
    with pytest.raises(DataFormatError, match=r"train\.tsv, line 2: expected 4 tab-separated"):
        run_classifier.main(["--task_name", "rte", "--data_dir", str(tmp_path)] + base)
    with pytest.raises(UnknownTaskError, match="Did you mean 'sst2', 'sst-2'"):
        run_classifier.main(["--task_name", "sst", "--data_dir", str(tmp_path)] + base)

    run_squad = load_script("run_squad.py")
    (tmp_path / "bad.json").write_text('{"data": [\n{"paragraphs": [}]}', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.json, line 2 column \d+: not valid JSON"):
        run_squad.main(["--train_file", str(tmp_path / "bad.json")] + base)

    run_lm = load_script("run_lm_finetuning.py")
    with pytest.raises(EntryNotFoundError, match=r"corpus file .*none\.txt does not exist"):
        run_lm.main(["--train_corpus", str(tmp_path / "none.txt")] + base)

    extract = load_script("extract_features.py")
    with pytest.raises(EntryNotFoundError, match=r"input file .*none\.txt does not exist"):
        extract.main(["--input_file", str(tmp_path / "none.txt"), "--output_file",
                      str(tmp_path / "x.jsonl"), "--bert_model", tiny_model])
    (tmp_path / "in.txt").write_text("p1\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        extract.main(["--input_file", str(tmp_path / "in.txt"), "--output_file",
                      str(tmp_path / "x.jsonl"), "--bert_model", tiny_model, "--layers", "-5"])


def test_batch_size_must_split_over_accumulation(tiny_model, sst2_dir, tmp_path, capsys):
    run_classifier = load_script("run_classifier.py")
    with pytest.raises(SystemExit):
        run_classifier.main([*CLASSIFIER[:4], "--train_batch_size", "10",
                             "--gradient_accumulation_steps", "4", "--do_train",
                             "--data_dir", str(sst2_dir), "--bert_model", tiny_model,
                             "--output_dir", str(tmp_path / "o")])
    assert "--train_batch_size 10 does not split evenly over 4 accumulation steps" in \
        capsys.readouterr().err


def test_script_plumbing_lives_in_its_module_and_the_package_only_reexports():
    """tasks/__init__.py holds no code: the scripts' shared plumbing is tasks/script_support.py,
    and the package re-exports it for code written against ``bert_hub.tasks``."""
    import ast

    from bert_hub import sequence_pairs, tasks
    from bert_hub.tasks import script_support

    with open(tasks.__file__, encoding="utf-8") as f:
        body = ast.parse(f.read()).body
    assert all(isinstance(node, (ast.Expr, ast.Import, ast.ImportFrom, ast.Assign)) for node in body)
    for name in tasks.__all__:
        home = sequence_pairs if name == "input_tensors" else script_support
        assert getattr(tasks, name) is getattr(home, name), name
    for script in ("run_classifier.py", "run_squad.py", "run_lm_finetuning.py", "extract_features.py"):
        with open(os.path.join(SCRIPTS, script), encoding="utf-8") as f:
            assert "script_support.run_cli(main)" in f.read(), script



def test_first_process_of_each_machine_logs_progress_and_the_others_only_errors():
    """Rank 0 and LOCAL_RANK 0 of every other machine at INFO, each line naming its rank; the
    rest at ERROR (so a machine shows the loading warnings once, not once per process)."""
    code = """if True:
        import logging, torch
        from bert_hub.distributed import Strategy
        from bert_hub.tasks.script_support import configure_logging
        for rank, local_rank in ((0, 0), (2, 0), (3, 1)):
            root = logging.getLogger()
            for handler in list(root.handlers):
                root.removeHandler(handler)
            configure_logging(Strategy(torch.device("cpu"), rank=rank, local_rank=local_rank,
                                       world_size=4))
            print(logging.getLevelName(root.level), root.handlers[0].formatter._fmt)
    """
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                          text=True, timeout=120, check=True)
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["INFO", "INFO", "ERROR"]
    assert ["[rank 0]" in lines[0], "[rank 2]" in lines[1], "[rank 3]" in lines[2]] == [True] * 3
