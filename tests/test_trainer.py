"""The Trainer on the CPU: accumulation equals one big batch, token-level weighting, schedules,
CPU-offloaded optimizer, mixed precision, exact resume, evaluate / predict, files, errors."""
from __future__ import annotations

import json
import logging
import math
import os

import pytest
import torch
from _train_worker import (
    BertData,
    Classifier,
    DictData,
    Tagger,
    accuracy,
    sgd,
    tiny_bert_classifier,
    token_data,
)
from torch.nn import functional as F

from bert_hub.errors import TrainerError
from bert_hub.optimization import Schedule
from bert_hub.trainer import Trainer, count_labels


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _max_diff(a, b):
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _classifier(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return Classifier(dropout=dropout)


def _train(model, data, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("seed", 7)
    trainer = Trainer(model, data, **kwargs)
    return trainer, trainer.train()


def _metrics(output_dir):
    with open(os.path.join(output_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------- accumulation
@pytest.mark.parametrize("n", [32, 30])  # 30: a partial last window with unequal micro-batches
def test_accumulation_equals_one_big_batch_with_sgd(n):
    big = _classifier()
    _, result_big = _train(big, DictData(n), optimizer=sgd, batch_size=8, epochs=2)
    small = _classifier()
    _, result_small = _train(small, DictData(n), optimizer=sgd, batch_size=4,
                             gradient_accumulation_steps=2, epochs=2)
    assert result_big["global_step"] == result_small["global_step"] == 2 * math.ceil(n / 8)
    assert _max_diff(_params(big), _params(small)) < 1e-7
    assert result_small["train_loss"] == pytest.approx(result_big["train_loss"], abs=1e-6)


def test_negative_control_summing_micro_batch_means_differs():
    """What the equality above rules out: a loop that forgets to divide the loss."""
    big = _classifier()
    _train(big, DictData(32), optimizer=sgd, batch_size=8, epochs=1, max_grad_norm=None,
           schedule="none")
    naive = _classifier()
    opt = torch.optim.SGD(naive.parameters(), lr=0.5)
    order = torch.randperm(32, generator=torch.Generator().manual_seed(7)).tolist()
    data = DictData(32)
    for start in range(0, 32, 8):
        for micro in range(start, start + 8, 2):
            idx = order[micro:micro + 2]
            naive(data.x[idx], data.y[idx]).backward()  # no division by 4
        opt.step()
        opt.zero_grad()
    assert _max_diff(_params(big), _params(naive)) > 1e-3


def test_token_level_loss_weighted_by_labelled_tokens_equals_full_batch():
    data = token_data(24)
    common = {"optimizer": sgd, "epochs": 2, "max_grad_norm": None, "schedule": "none"}
    torch.manual_seed(0)
    full = Tagger()
    _train(full, data, batch_size=12, **common)
    torch.manual_seed(0)
    accum = Tagger()
    _train(accum, data, batch_size=2, gradient_accumulation_steps=6,
           loss_weight=count_labels(1, ignore_index=-1), **common)
    assert _max_diff(_params(full), _params(accum)) < 1e-6
    torch.manual_seed(0)
    mean_of_means = Tagger()  # negative control: per-example weights with unequal token counts
    _train(mean_of_means, data, batch_size=2, gradient_accumulation_steps=6, **common)
    assert _max_diff(_params(full), _params(mean_of_means)) > 1e-4


@pytest.mark.parametrize("optimizer", [None, "bertadam"])
def test_learning_rate_at_step_t_is_the_schedule_at_t_whatever_the_accumulation(
        tmp_path, optimizer):
    logged = {}
    for accum, batch in ((1, 8), (4, 2)):
        out = tmp_path / f"a{accum}"
        _train(_classifier(), DictData(40), optimizer=optimizer, batch_size=batch,
               gradient_accumulation_steps=accum, epochs=3, lr=1e-3, warmup_proportion=0.2,
               output_dir=out, log_steps=1)
        logged[accum] = [(r["step"], r["lr"]) for r in _metrics(out) if "lr" in r]
    t_total = 3 * math.ceil(40 / 8)
    schedule = Schedule("warmup_linear", 0.2, t_total)
    expected = [(t + 1, 1e-3 * schedule(t)) for t in range(t_total)]
    for accum in (1, 4):
        assert [s for s, _ in logged[accum]] == [s for s, _ in expected]
        assert [lr for _, lr in logged[accum]] == pytest.approx([lr for _, lr in expected],
                                                                rel=1e-12, abs=1e-18)


# ---------------------------------------------------------------------------- CPU offload
def test_optimize_on_cpu_is_bit_identical_to_the_plain_optimizer_after_20_steps():
    runs = {}
    for offload in (False, True):
        model = _classifier()
        trainer, result = _train(model, DictData(40), batch_size=4,
                                 gradient_accumulation_steps=2, max_steps=20, lr=1e-2,
                                 optimize_on_cpu=offload)
        assert result["global_step"] == 20
        runs[offload] = _params(model)
        if offload:
            masters = dict(zip(trainer.stepper.names, trainer.stepper.host.masters))
            assert all(torch.equal(masters[k], runs[True][k]) for k in masters)
    assert all(torch.equal(runs[False][k], runs[True][k]) for k in runs[False])


def test_optimize_on_cpu_with_bf16_model_keeps_fp32_masters_cast_on_each_step():
    model = _classifier().to(torch.bfloat16)
    trainer = Trainer(model, DictData(24), batch_size=4, max_steps=6, lr=1e-4, progress=False,
                      optimize_on_cpu=True, warmup_proportion=0.0, schedule="none",
                      precision="bf16")
    start = [m.detach().clone() for m in trainer.stepper.host.masters]
    step = trainer._optimizer_step
    checked = []

    def checking_step():
        stepped = step()
        for p, master in zip(trainer.stepper.host.params, trainer.stepper.host.masters):
            assert master.dtype == torch.float32 and p.dtype == torch.bfloat16
            assert torch.equal(p.detach(), master.detach().to(torch.bfloat16))
        checked.append(stepped)
        return stepped

    trainer._optimizer_step = checking_step
    trainer.train()
    assert checked == [True] * 6
    # lr 1e-4 moves weights by less than bf16's resolution: only the fp32 masters see it
    masters = trainer.stepper.host.masters
    assert any(not torch.equal(m, m.to(torch.bfloat16).float()) for m in masters)
    assert any(not torch.equal(a, b) for a, b in zip(start, masters))


# ---------------------------------------------------------------------------- precision
def test_bf16_autocast_run_learns():
    model = _classifier()
    trainer = Trainer(model, DictData(64), eval_data=DictData(64), batch_size=8, epochs=6,
                      lr=1e-2, precision="bf16", progress=False, seed=1)
    before = trainer.evaluate()["eval_loss"]
    trainer.train()
    after = trainer.evaluate()["eval_loss"]
    assert after < 0.6 * before


def test_fp16_overflow_skips_the_step_holds_schedule_and_recovers():
    model = _classifier()
    model.poison_calls = {3}  # the third window's loss is inf
    trainer = Trainer(model, DictData(64), batch_size=8, max_steps=6, lr=1e-2,
                      precision="fp16", progress=False, warmup_proportion=0.0)
    step = trainer._optimizer_step
    seen = []

    def spying_step():
        before = [p.detach().clone() for p in model.parameters()]
        state = (trainer.scaler.get_scale(), trainer.scheduler.last_epoch, trainer.global_step)
        stepped = step()
        same = all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
        seen.append((stepped, same, state, (trainer.scaler.get_scale(),
                                            trainer.scheduler.last_epoch, trainer.global_step)))
        return stepped

    trainer._optimizer_step = spying_step
    result = trainer.train()
    stepped, same, before, after = seen[2]
    assert not stepped and same
    assert after[0] == before[0] / 2  # scale halved
    assert after[1:] == before[1:]  # scheduler and step counter held
    assert all(s and not unchanged for s, unchanged, _, _ in seen[:2] + seen[3:])
    assert len(seen) == 7 and result["global_step"] == 6  # recovered: 6 real steps
    assert math.isfinite(result["train_loss"])


# ---------------------------------------------------------------------------- resume
class _Crash(RuntimeError):
    pass


def _crashing_collate(after):
    calls = {"n": 0}

    def collate(examples):
        calls["n"] += 1
        if calls["n"] > after:
            raise _Crash("preempted")
        return torch.utils.data.default_collate(examples)
    return collate


def test_resume_after_a_crash_equals_an_uninterrupted_run_bit_for_bit(tmp_path):
    kwargs = {"batch_size": 4, "gradient_accumulation_steps": 2, "epochs": 3, "lr": 1e-2,
                  "log_steps": 1, "save_steps": 1, "seed": 11, "progress": False}
    whole = _classifier(dropout=0.2)
    result_whole = Trainer(whole, DictData(36), output_dir=tmp_path / "whole", **kwargs).train()

    broken = _classifier(dropout=0.2)
    crashing = Trainer(broken, DictData(36), output_dir=tmp_path / "cut",
                       collate_fn=_crashing_collate(13), **kwargs)  # dies mid-epoch 2
    with pytest.raises(_Crash):
        crashing.train()
    assert crashing.global_step == 7 and crashing.epoch == 1
    resumed_model = _classifier(seed=99, dropout=0.2)  # other weights: the checkpoint wins
    resumed = Trainer(resumed_model, DictData(36), output_dir=tmp_path / "cut", **kwargs)
    result_resumed = resumed.train()

    assert result_resumed == result_whole
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), resumed_model.parameters()))
    assert _metrics(tmp_path / "whole") == _strip_time(_metrics(tmp_path / "cut"),
                                                      _metrics(tmp_path / "whole"))


def _strip_time(rows, like):
    """metrics lines with the elapsed time taken from ``like`` (the only field that may differ)."""
    return [dict(r, elapsed_s=o["elapsed_s"]) if "elapsed_s" in r else r
            for r, o in zip(rows, like)]


def test_resume_after_max_steps_equals_longer_run(tmp_path):
    kwargs = {"batch_size": 4, "lr": 1e-2, "schedule": "none", "seed": 5, "progress": False,
                  "precision": "fp16"}
    whole = _classifier()
    Trainer(whole, DictData(20), max_steps=9, **kwargs).train()
    first = _classifier()
    Trainer(first, DictData(20), max_steps=3, output_dir=tmp_path, **kwargs).train()
    second = _classifier(seed=3)
    trainer = Trainer(second, DictData(20), max_steps=9, output_dir=tmp_path, **kwargs)
    result = trainer.train(resume=True)
    assert result["global_step"] == 9
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), second.parameters()))


def test_checkpoint_layout_and_weights_only_loading(tmp_path, caplog):
    model = _classifier()
    with caplog.at_level(logging.INFO, logger="bert_hub.trainer"):
        _trainer, _ = _train(model, DictData(24), batch_size=4, epochs=2, save_steps=2,
                            keep_checkpoints=2, output_dir=tmp_path, log_steps=3)
    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if n.startswith("checkpoint-")] == ["checkpoint-10", "checkpoint-12"]
    files = sorted(os.listdir(tmp_path / "checkpoint-12"))
    assert files == ["model.safetensors", "optimizer.pt", "rng_state_0.pt", "trainer_state.json"]
    saved = torch.load(tmp_path / "checkpoint-12" / "optimizer.pt", weights_only=True)
    assert set(saved) == {"optimizer", "scheduler", "scaler"}
    torch.load(tmp_path / "checkpoint-12" / "rng_state_0.pt", weights_only=True)
    state = json.loads((tmp_path / "checkpoint-12" / "trainer_state.json").read_text())
    assert (state["global_step"], state["epoch"], state["micro_in_epoch"]) == (12, 2, 0)
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == [3, 6, 9, 12]
    assert all({"loss", "lr", "grad_norm", "epoch"} <= set(r) for r in rows)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in caplog.text
        assert "training_curves.png" not in names
    else:
        assert "training_curves.png" in names


def test_tied_weights_are_saved_once_and_restored(tmp_path):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(5, 4)
            self.decoder = torch.nn.Linear(4, 5, bias=False)
            self.decoder.weight = self.embed.weight

        def forward(self, ids, labels=None):
            return F.cross_entropy(self.decoder(self.embed(ids)), labels)

    data = torch.utils.data.TensorDataset(torch.arange(5).repeat(4), torch.arange(5).repeat(4))
    torch.manual_seed(0)
    model = Tied()
    trainer, _ = _train(model, data, batch_size=5, epochs=1, output_dir=tmp_path, lr=0.1)
    other = Tied()
    fresh = Trainer(other, data, batch_size=5, epochs=1, progress=False, seed=7)
    fresh.load_checkpoint(trainer.checkpoints()[-1])
    assert other.decoder.weight is other.embed.weight
    assert torch.equal(other.embed.weight, model.embed.weight)


# ---------------------------------------------------------------------------- evaluate / predict
def test_evaluate_and_predict_in_dataset_order():
    model = _classifier()
    seen = {}

    def metrics(predictions, labels):
        seen["p"], seen["y"] = predictions, labels
        return accuracy(predictions, labels)

    eval_data = DictData(11, seed=4)
    trainer = Trainer(model, eval_data=eval_data, batch_size=4, compute_metrics=metrics,
                      progress=False)
    result = trainer.evaluate()
    with torch.no_grad():
        logits = model(eval_data.x)
        loss = float(model(eval_data.x, eval_data.y))
    assert result["eval_loss"] == pytest.approx(loss, rel=1e-6)
    assert seen["p"].shape == (11, 3) and torch.allclose(torch.from_numpy(seen["p"]), logits)
    assert seen["y"].tolist() == eval_data.y.tolist()
    assert result["accuracy"] == pytest.approx(float((logits.argmax(-1) == eval_data.y).float().mean()))
    predictions = trainer.predict(DictData(11, seed=4, labelled=False))
    assert torch.allclose(predictions, logits)


def test_evaluate_with_a_model_returning_loss_and_logits_uses_one_forward():
    data = token_data(10)
    model = Tagger()
    trainer = Trainer(model, eval_data=data, batch_size=3, progress=False,
                      loss_weight=count_labels(1, -1),
                      compute_metrics=lambda p, y: {"shape": list(p.shape), "ny": int(y.size)})
    result = trainer.evaluate()
    with torch.no_grad():
        expected, _ = model(data.tensors[0], data.tensors[1])
    assert result["eval_loss"] == pytest.approx(float(expected), rel=1e-6)  # token-weighted
    assert result["shape"] == [10, 6, 4] and result["ny"] == 60


# ---------------------------------------------------------------------------- tiny BERT
bert_missing = pytest.mark.skipif(tiny_bert_classifier() is None,
                                  reason="bert_hub.modeling is not available")


@bert_missing
def test_tiny_bert_accumulation_equals_big_batch():
    big, small = tiny_bert_classifier(), tiny_bert_classifier()
    _train(big, BertData(24), optimizer=sgd, batch_size=8, epochs=1)
    _train(small, BertData(24), optimizer=sgd, batch_size=2, gradient_accumulation_steps=4,
           epochs=1)
    assert _max_diff(_params(big), _params(small)) < 1e-6


@bert_missing
def test_tiny_bert_resume_is_exact(tmp_path):
    kwargs = {"batch_size": 4, "epochs": 2, "lr": 1e-3, "save_steps": 1, "progress": False}
    whole = tiny_bert_classifier()
    Trainer(whole, BertData(20), **kwargs, output_dir=tmp_path / "w").train()
    cut = tiny_bert_classifier()
    with pytest.raises(_Crash):
        Trainer(cut, BertData(20), collate_fn=_crashing_collate(7), output_dir=tmp_path / "c",
                **kwargs).train()
    resumed = tiny_bert_classifier(seed=1)
    Trainer(resumed, BertData(20), output_dir=tmp_path / "c", **kwargs).train()
    assert all(torch.equal(a, b) for a, b in zip(whole.parameters(), resumed.parameters()))


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,message", [
    ({"model": "bert"}, "model is a str, not an nn.Module"),
    ({"train_data": torch.utils.data.DataLoader(DictData(4))},
     "pass a map-style dataset .* not a DataLoader"),
    ({"train_data": []}, "train_data is empty"),
    ({"epochs": None}, "pass epochs=N or max_steps=N"),
    ({"epochs": 1.5}, "epochs=1.5: use a whole number"),
    ({"max_steps": 0}, "max_steps=0: use an integer >= 1"),
    ({"batch_size": 0}, "batch_size=0: use an integer >= 1"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps=0"),
    ({"lr": 0.0}, "lr=0.0: the learning rate must be > 0"),
    ({"warmup_proportion": 1.0}, "warmup_proportion=1.0: use a fraction"),
    ({"schedule": "cosine"}, "schedule='cosine': use 'warmup_linear'"),
    ({"precision": "fp8"}, "precision='fp8': use one of 'fp32', 'bf16', 'fp16'"),
    ({"optimizer": "lamb"}, "optimizer='lamb': use 'adamw', 'bertadam'"),
    ({"save_steps": 5}, "save_steps is set but output_dir is not"),
    ({"keep_checkpoints": 0}, "keep_checkpoints=0: use an integer >= 1, or None"),
    ({"find_unused_parameters": "auto"}, "find_unused_parameters='auto': use True .* or False"),
    ({"ddp_timeout": 0}, "ddp_timeout=0: use a number of seconds > 0"),
])
def test_bad_arguments_name_the_fix(kwargs, message):
    args = {"model": _classifier(), "train_data": DictData(8), "epochs": 1}
    args.update(kwargs)
    with pytest.raises(TrainerError, match=message):
        Trainer(args.pop("model"), args.pop("train_data"), **args)


def test_optimizer_instance_rules():
    model = _classifier()
    with pytest.raises(TrainerError, match="optimize_on_cpu=True builds its optimizer"):
        Trainer(model, DictData(8), epochs=1, optimize_on_cpu=True,
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TrainerError, match="parameters that are not the model's"):
        Trainer(model, DictData(8), epochs=1,
                optimizer=torch.optim.SGD(_classifier().parameters(), lr=0.1))
    with pytest.raises(TrainerError, match="the optimizer callable returned dict"):
        Trainer(model, DictData(8), epochs=1, optimizer=lambda groups: {})
    with pytest.raises(TrainerError, match="precision='fp16' with fp16 weights"):
        Trainer(_classifier().half(), DictData(8), epochs=1, precision="fp16")


def test_gradients_outside_the_optimizer_are_cleared_each_step():
    # an Optimizer over a subset: the other trainable parameters' gradients must not pile up
    model = _classifier()
    opt = torch.optim.SGD(model.classifier.parameters(), lr=0.1)
    dense_before = model.dense.weight.detach().clone()
    Trainer(model, DictData(8), optimizer=opt, batch_size=4, epochs=1, progress=False).train()
    assert model.dense.weight.grad is None and model.classifier.weight.grad is None
    assert torch.equal(model.dense.weight, dense_before)

    class Counting(torch.optim.SGD):
        calls = 0

        def zero_grad(self, set_to_none=True):
            Counting.calls += 1
            super().zero_grad(set_to_none)
    Trainer(_classifier(), DictData(8), optimizer=lambda g: Counting(g, lr=0.1), batch_size=4,
            epochs=1, progress=False).train()
    assert Counting.calls == 2  # an overridden zero_grad still runs once per step


def test_runtime_errors_name_the_fix(tmp_path):
    with pytest.raises(TrainerError, match="train\\(\\) needs data"):
        Trainer(_classifier(), progress=False).train()
    with pytest.raises(TrainerError, match="evaluate\\(\\) has no data"):
        Trainer(_classifier(), progress=False).evaluate()
    with pytest.raises(TrainerError, match="save_checkpoint\\(\\) has nowhere to write"):
        Trainer(_classifier(), DictData(8), epochs=1, progress=False).save_checkpoint()
    trainer = Trainer(_classifier(), DictData(8), epochs=1, output_dir=tmp_path, progress=False)
    with pytest.raises(TrainerError, match="holds no checkpoint: pass resume='auto'"):
        trainer.train(resume=True)
    with pytest.raises(TrainerError, match="is not a complete checkpoint"):
        trainer.load_checkpoint(tmp_path)
    trainer.train()
    other = Trainer(_classifier(), DictData(8), epochs=1, output_dir=tmp_path, batch_size=4,
                    progress=False)
    with pytest.raises(TrainerError, match="written with batch_size=32, this run has batch_size=4"):
        other.train()
    no_loss = Trainer(_classifier(), DictData(8, labelled=False), epochs=1, progress=False)
    with pytest.raises(TrainerError, match="forward must return a scalar loss tensor"):
        no_loss.train()


def test_resuming_into_a_model_the_checkpoint_does_not_fit_names_tensor_shapes_and_file(tmp_path):
    """A checkpoint's weights that disagree with the model (another config: one layer's output
    projection of another size) are a TrainerError naming the tensor, both shapes and the file,
    before load_state_dict; so are its unreadable trainer state and missing entries."""
    trainer = Trainer(_classifier(), DictData(8), epochs=1, output_dir=tmp_path, batch_size=4,
                      progress=False, seed=7)
    trainer.train()
    checkpoint = trainer.checkpoints()[-1]
    torch.manual_seed(0)
    wider = Classifier(hidden=20)
    resumed = Trainer(wider, DictData(8), epochs=1, output_dir=tmp_path, batch_size=4,
                      progress=False, seed=7)
    with pytest.raises(TrainerError) as info:
        resumed.load_checkpoint(checkpoint)
    text = str(info.value)
    assert "classifier.weight: checkpoint (3, 16), model (3, 20)" in text
    assert "dense.weight: checkpoint (16, 8), model (20, 8)" in text
    assert os.path.join(checkpoint, "model.safetensors") in text and "resume with the model" in text
    torch.manual_seed(0)
    fresh = Trainer(_classifier(), DictData(8), epochs=1, output_dir=tmp_path, batch_size=4,
                    progress=False, seed=7)
    state = os.path.join(checkpoint, "trainer_state.json")
    for text, message in (("[" * 5000 + "]" * 5000, "nests too deeply"),
                          ('{"global_step": 1', "is not valid JSON"),
                          ("[]", "lacks world_size, batch_size")):
        with open(state, "w") as f:
            f.write(text)
        with pytest.raises(TrainerError, match=message):
            fresh.load_checkpoint(checkpoint)


def test_tensorboard_without_the_package_names_the_fix(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorboard is installed here: the missing-package message cannot show")
    trainer = Trainer(_classifier(), DictData(8), epochs=1, output_dir=tmp_path,
                      tensorboard=True, progress=False)
    with pytest.raises(TrainerError, match="tensorboard=True needs the tensorboard package"):
        trainer.train()


def test_predict_with_ragged_outputs_names_the_fix():
    class Ragged(torch.nn.Module):
        def forward(self, x):
            return x[:, : x.shape[0]]
    data = torch.utils.data.TensorDataset(torch.randn(5, 8))
    trainer = Trainer(Ragged(), batch_size=3, progress=False)
    with pytest.raises(TrainerError, match="pad every example to the same length"):
        trainer.predict(data)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DataParallel needs 2 CUDA GPUs")
def test_dataparallel_matches_single_device():
    single = _classifier()
    Trainer(single, DictData(32), optimizer=sgd, batch_size=8, epochs=1, progress=False,
            device="cuda:0").train()
    multi = _classifier()
    trainer = Trainer(multi, DictData(32), optimizer=sgd, batch_size=4, epochs=1,
                      progress=False)
    assert trainer.strategy.kind == "dp"
    trainer.train()
    assert _max_diff(_params(single), _params(multi)) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="offload memory needs a CUDA GPU")
def test_optimize_on_cpu_keeps_optimizer_state_off_the_gpu():
    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(8)])

        def forward(self, x, labels=None):
            return self.body(x).pow(2).mean()

    data = torch.utils.data.TensorDataset(torch.randn(16, 1024), torch.zeros(16))
    peaks = {}
    for offload in (False, True):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        Trainer(Wrap(), data, batch_size=8, max_steps=2, progress=False, device="cuda",
                optimize_on_cpu=offload).train()
        peaks[offload] = torch.cuda.max_memory_allocated()
    assert peaks[True] < 0.6 * peaks[False]


# ---------------------------------------------------------------------------- runs in one folder
@bert_missing
def test_a_checkpoint_of_a_bert_model_loads_with_from_pretrained(tmp_path):
    from bert_hub.filenames import CONFIG_NAME
    from bert_hub.modeling import BertForSequenceClassification

    model = tiny_bert_classifier()
    start = _params(model)
    trainer, _ = _train(model, BertData(16), batch_size=4, max_steps=3, lr=1e-2,
                        output_dir=tmp_path)
    checkpoint = trainer.checkpoints()[-1]
    with open(os.path.join(checkpoint, CONFIG_NAME), encoding="utf-8") as f:
        assert json.load(f) == json.loads(model.config.to_json_string())
    loaded = BertForSequenceClassification.from_pretrained(checkpoint, num_labels=3)
    state, trained = loaded.state_dict(), model.state_dict()
    assert set(state) == set(trained)
    assert all(torch.equal(state[k], trained[k]) for k in trained)
    assert _max_diff(start, _params(model)) > 1e-3  # it did train: not the initial weights


def test_a_checkpoint_of_a_model_without_config_has_no_config_file(tmp_path):
    trainer, _ = _train(_classifier(), DictData(8), batch_size=4, max_steps=1,
                        output_dir=tmp_path)
    assert "bert_config.json" not in os.listdir(trainer.checkpoints()[-1])


def test_a_fresh_run_in_a_used_output_dir_keeps_nothing_of_the_earlier_run(tmp_path):
    _train(_classifier(), DictData(24), batch_size=4, max_steps=6, save_steps=3, log_steps=3,
           keep_checkpoints=None, output_dir=tmp_path)
    assert [r["step"] for r in _metrics(tmp_path)] == [3, 6]
    trainer = Trainer(_classifier(seed=1), DictData(24), batch_size=4, max_steps=2, log_steps=1,
                      keep_checkpoints=None, output_dir=tmp_path, progress=False)
    trainer.train(resume=False)
    # one run's curve, and only its checkpoints: a later resume cannot pick the old step 6
    assert [r["step"] for r in _metrics(tmp_path)] == [1, 2]
    assert [os.path.basename(p) for p in trainer.checkpoints()] == ["checkpoint-2"]


def test_evaluate_and_predict_of_an_empty_dataset_name_the_fix():
    trainer = Trainer(_classifier(), DictData(8), batch_size=4, epochs=1, progress=False)
    empty = DictData(0)
    with pytest.raises(TrainerError, match="evaluate\\(\\) got an empty dataset"):
        trainer.evaluate(empty)
    with pytest.raises(TrainerError, match="predict\\(\\) got an empty dataset"):
        trainer.predict(empty)


# ---------------------------------------------------------------------------- fp16 with offload
def test_fp16_with_optimize_on_cpu_decides_step_or_skip_from_host_values():
    """The offloaded step reads its overflow flag on the host: a CUDA run's fp16 part keeps its
    scaler there, so no flag crosses a non-blocking device copy before the CPU Adam reads it."""
    from bert_hub.training.optimizer_step import OffloadedOptimizerStep, build_optimizer
    from bert_hub.training.precision import precision_for

    model = _classifier()
    named = list(model.named_parameters())
    with pytest.raises(TrainerError, match="host_step=True"):
        OffloadedOptimizerStep(named, precision_for("fp16", torch.device("cpu")))
    precision = precision_for("fp16", torch.device("cuda"), host_step=True)  # a CUDA run's part
    assert precision.scaler._scale.device.type == "cpu"
    stepper = OffloadedOptimizerStep(named, precision)
    stepper.attach(*build_optimizer("adamw", model, stepper, lr=1e-2, schedule="none",
                                    warmup=0.0, weight_decay=0.0, max_grad_norm=1.0,
                                    t_total=4), 1.0)
    stepper.scheduler = None  # a constant rate: only step-or-skip matters here
    flags = []
    step = stepper.optimizer.step

    def spying_step(*args, **kwargs):  # GradScaler hands the fused Adam its flag here
        flags.append(stepper.optimizer.found_inf)
        return step(*args, **kwargs)

    stepper.optimizer.step = spying_step
    data = DictData(8)
    for poison, expect_step in ((False, True), (True, False), (False, True)):
        before = [m.detach().clone() for m in stepper.params]
        scale = precision.scaler.get_scale()
        stepper.before_backward(final=True)
        loss = model(data.x, data.y)
        precision.backward(loss * float("inf") if poison else loss)
        assert stepper.step() is expect_step
        moved = any(not torch.equal(a, b) for a, b in zip(before, stepper.params))
        assert moved is expect_step
        assert (precision.scaler.get_scale() < scale) is poison
    assert [f.device.type for f in flags] == ["cpu"] * 3
    assert [float(f) for f in flags] == [0.0, 1.0, 0.0]
    assert precision.scaler._scale.device.type == "cpu"
