"""The parts the Trainer's loop calls, each on its own: the arguments object, the precisions, the
plain and CPU-offloaded optimizer steps, the strategies, the progress switch."""
from __future__ import annotations

import contextlib
import dataclasses
import math

import pytest
import torch
from _train_worker import Classifier, DictData
from torch import nn

from bert_hub.distributed import DataParallelStrategy, DDPStrategy, SingleDeviceStrategy
from bert_hub.errors import InvalidArgumentError, InvalidInputError, TrainerError
from bert_hub.trainer import Trainer, TrainerArgs
from bert_hub.training.logging_sinks import progress_bar
from bert_hub.training.optimizer_step import (
    OffloadedOptimizerStep,
    OptimizerStep,
    build_optimizer,
)
from bert_hub.training.precision import BF16, FP16, FP32, precision_for


# ---------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs,message", [
    ({"epochs": "3"}, "epochs='3': use a whole number >= 1"),
    ({"batch_size": 8.0}, "batch_size=8.0: use an integer >= 1"),
    ({"lr": "5e-5"}, "lr='5e-5': the learning rate must be > 0"),
    ({"weight_decay": -0.1}, "weight_decay=-0.1: use a number >= 0"),
    ({"max_grad_norm": "1"}, "max_grad_norm='1': use a number"),
    ({"seed": 1.5}, "seed=1.5: use an integer"),
    ({"num_workers": -1}, "num_workers=-1: use an integer >= 0"),
    ({"progress": "yes"}, "progress='yes': use True or False"),
    ({"optimize_on_cpu": 1}, "optimize_on_cpu=1: use True or False"),
    ({"label_names": "labels"}, "label_names='labels': use a list of batch-dict keys"),
    ({"device": "gpu"}, "device='gpu': use 'cpu', 'cuda'"),
    ({"save_steps": 0}, "save_steps=0: use an integer >= 1, or None"),
])
def test_trainer_args_name_the_field_and_the_fix(kwargs, message):
    with pytest.raises(TrainerError, match=message) as caught:
        TrainerArgs(**kwargs)
    assert isinstance(caught.value, ValueError)


def test_trainer_args_output_dir_that_is_a_file(tmp_path):
    file = tmp_path / "out"
    file.write_text("")
    with pytest.raises(TrainerError, match="output_dir .* is a file; pass a folder"):
        TrainerArgs(output_dir=file)


def test_trainer_args_are_frozen_and_kept_in_normal_form(tmp_path):
    args = TrainerArgs(epochs=3.0, max_grad_norm=0, output_dir=tmp_path, label_names=["y"])
    assert args.epochs == 3 and type(args.epochs) is int
    assert args.max_grad_norm is None  # <= 0: no clipping, one spelling
    assert args.output_dir == str(tmp_path) and args.label_names == ("y",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        args.lr = 1.0
    assert dataclasses.replace(args, lr=1e-3) == TrainerArgs(
        epochs=3, lr=1e-3, max_grad_norm=None, output_dir=str(tmp_path), label_names=("y",))


def test_keyword_constructor_equals_the_args_object():
    settings = {"batch_size": 4, "gradient_accumulation_steps": 2, "max_steps": 5, "lr": 1e-2,
                "seed": 3, "precision": "bf16", "max_grad_norm": 0.5, "progress": False,
                "warmup_proportion": 0.2}
    torch.manual_seed(0)
    by_keywords = Trainer(Classifier(dropout=0.1), DictData(24), **settings)
    torch.manual_seed(0)
    by_args = Trainer(Classifier(dropout=0.1), DictData(24), args=TrainerArgs(**settings))
    assert by_keywords.args == by_args.args
    assert by_keywords.train() == by_args.train()
    assert all(torch.equal(a, b) for a, b in zip(by_keywords.model.parameters(),
                                                  by_args.model.parameters()))
    assert by_keywords.global_step == 5
    # keywords next to an args object replace its fields, the rest is kept
    replaced = Trainer(Classifier(), DictData(8), args=TrainerArgs(**settings), lr=0.1)
    assert replaced.args == TrainerArgs(**dict(settings, lr=0.1))


def test_unknown_setting_names_the_close_one():
    with pytest.raises(InvalidArgumentError, match="unknown setting 'batchsize'. Did you mean "
                                                   "'batch_size'") as caught:
        Trainer(Classifier(), DictData(8), epochs=1, batchsize=8)
    assert isinstance(caught.value, TypeError)
    with pytest.raises(InvalidArgumentError, match="args is a dict: pass a TrainerArgs"):
        Trainer(Classifier(), DictData(8), args={"epochs": 1})


# ---------------------------------------------------------------------------- precision
def _sgd_step_setup():
    weight = nn.Parameter(torch.tensor([1.0, -2.0]))
    return weight, torch.optim.SGD([weight], lr=0.1)


def test_fp16_scales_the_loss_unscales_and_skips_an_inf_step_lowering_the_scale():
    precision = FP16("cpu")
    weight, opt = _sgd_step_setup()
    scale = precision.scaler.get_scale()
    precision.backward((weight * 3.0).sum())
    assert torch.equal(weight.grad, torch.full((2,), 3.0 * scale))  # scaled up for fp16
    precision.unscale(opt)
    assert torch.equal(weight.grad, torch.full((2,), 3.0))  # true size, ready for clipping
    assert precision.step(opt) is False  # finite: stepped
    assert torch.equal(weight.detach(), torch.tensor([0.7, -2.3]))
    assert precision.metrics() == {"loss_scale": scale}
    opt.zero_grad()

    precision.backward((weight * float("inf")).sum())
    precision.unscale(opt)
    assert precision.step(opt) is True  # inf: skipped
    assert torch.equal(weight.detach(), torch.tensor([0.7, -2.3]))  # unchanged
    assert precision.scaler.get_scale() == scale / 2
    restored = FP16("cpu")
    restored.load_state_dict(precision.state_dict())
    assert restored.scaler.get_scale() == scale / 2


def test_bf16_autocasts_without_loss_scaling():
    precision = precision_for("bf16", torch.device("cpu"))
    assert isinstance(precision, BF16) and precision.scaler is None
    a = torch.randn(4, 4, requires_grad=True)
    with precision.autocast():
        out = a @ a
    assert out.dtype == torch.bfloat16
    weight, opt = _sgd_step_setup()
    precision.backward((weight * 3.0).sum())
    assert torch.equal(weight.grad, torch.full((2,), 3.0))  # no scaling
    assert precision.step(opt) is False
    assert precision.state_dict() is None and precision.metrics() == {}


def test_fp32_enters_no_autocast_and_switches_off_an_outer_one():
    precision = FP32("cpu")
    first, second = precision.autocast(), precision.autocast()
    # nothing made per step: one shared do-nothing context
    assert first is second and isinstance(first, contextlib.nullcontext)
    a = torch.randn(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
        with precision.autocast():
            assert (a @ a).dtype == torch.float32
    assert precision.step(_sgd_step_setup()[1]) is False and precision.state_dict() is None


# ---------------------------------------------------------------------------- optimizer step
def _stepper(kind, model, **kwargs):
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    precision = FP32("cpu")
    stepper = (OffloadedOptimizerStep(named, precision, **kwargs) if kind == "offload"
               else OptimizerStep(named, precision))
    stepper.attach(*build_optimizer("adamw", model, stepper, lr=1e-2, schedule="warmup_linear",
                                    warmup=0.1, weight_decay=0.01, max_grad_norm=1.0,
                                    t_total=6), 1.0)
    return stepper


def _window(model, stepper, data, start):
    """Two micro-batches, then the step; the device gradients right after the last backward."""
    for i in range(2):
        stepper.before_backward(final=i == 1)
        rows = slice(start + 4 * i, start + 4 * i + 4)
        (model(data.x[rows], data.y[rows]) / 2).backward()
    grads_after_backward = [p.grad for p in model.parameters()]
    return grads_after_backward, stepper.step()


@pytest.mark.parametrize("capture_in_hooks", [True, False])
def test_offloaded_step_equals_the_plain_step(capture_in_hooks):
    data = DictData(24)
    torch.manual_seed(0)
    plain_model = Classifier()
    torch.manual_seed(0)
    offload_model = Classifier()
    plain = _stepper("plain", plain_model)
    offload = _stepper("offload", offload_model, capture_in_hooks=capture_in_hooks)
    assert all(m.device.type == "cpu" and m.dtype == torch.float32 for m in offload.params)
    for start in (0, 8, 16):
        plain_grads, plain_stepped = _window(plain_model, plain, data, start)
        offload_grads, offload_stepped = _window(offload_model, offload, data, start)
        assert plain_stepped and offload_stepped
        assert all(g is not None for g in plain_grads)
        # captured by the hooks during the last backward: device memory freed at once; else
        # (DDP: reduced after the hooks) collected at the step
        assert all((g is None) == capture_in_hooks for g in offload_grads)
        assert all(p.grad is None for p in offload_model.parameters())
        for a, b, master in zip(plain_model.parameters(), offload_model.parameters(),
                                offload.params):
            assert torch.equal(a, b) and torch.equal(b, master)
    assert plain.scheduler.last_epoch == offload.scheduler.last_epoch == 3
    assert float(plain.grad_norm) == float(offload.grad_norm) > 0


def test_offloaded_step_checkpoints_the_fp32_masters_of_a_bf16_model():
    torch.manual_seed(0)
    model = Classifier().to(torch.bfloat16)
    offload = _stepper("offload", model)
    data = DictData(8)
    model(data.x.bfloat16(), data.y).backward()
    assert offload.step()
    state = offload.weights(model.state_dict())
    assert set(state) == set(offload.names)
    for name, master, device in zip(offload.names, offload.params, model.parameters()):
        assert state[name] is not device and state[name].dtype == torch.float32
        assert torch.equal(state[name], master) and torch.equal(device, master.bfloat16())
    ones = {n: torch.ones_like(state[n]) for n in offload.names}
    offload.load_weights(ones)  # after a checkpoint load: the masters follow
    assert all(torch.equal(m, torch.ones_like(m)) for m in offload.params)


def test_plain_step_clips_by_the_global_norm_and_reports_it():
    model = nn.Linear(3, 2)
    stepper = _stepper("plain", model)
    model(torch.full((1, 3), 100.0)).sum().backward()
    expected = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
    assert stepper.step()
    assert float(stepper.grad_norm) == pytest.approx(expected, rel=1e-6) and expected > 1.0
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------- strategies
def test_single_device_strategy_is_the_identity():
    strategy = SingleDeviceStrategy(torch.device("cpu"))
    model = nn.Linear(2, 2)
    assert strategy.wrap(model, find_unused_parameters=True) is model
    assert (strategy.kind, strategy.rank, strategy.world_size, strategy.is_main,
            strategy.devices_per_process, strategy.gradients_final_in_hooks) == (
        "single", 0, 1, True, 1, True)
    with strategy.no_sync(model, skip=True):
        model(torch.ones(1, 2)).sum().backward()
    assert model.weight.grad is not None  # nothing held back in one process
    t = torch.ones(3)
    assert strategy.all_reduce_sum(t) is t and strategy.all_gather_rows(t)[0] is t
    assert strategy.sum_over_ranks(2.5) == 2.5
    strategy.barrier()
    strategy.check_gradients(model, [("unused", nn.Parameter(torch.zeros(1)))])  # no DDP: fine
    assert strategy.explain_forward_error(RuntimeError("Expected to have finished reduction")) \
        is None


def test_data_parallel_strategy_wraps_and_counts_replicas():
    strategy = DataParallelStrategy(2)
    assert (strategy.kind, strategy.devices_per_process, strategy.world_size) == ("dp", 2, 1)
    assert strategy.device == torch.device("cuda", 0)
    assert isinstance(strategy.wrap(nn.Linear(2, 2)), nn.DataParallel)


def test_ddp_strategy_translates_the_unfinished_reduction_error():
    strategy = DDPStrategy(torch.device("cpu"), rank=1, world_size=2)
    assert not strategy.is_main and strategy.eval_indices(5) == [1, 3]
    explained = strategy.explain_forward_error(RuntimeError(
        "Expected to have finished reduction in the prior iteration before starting a new one"))
    assert isinstance(explained, TrainerError)
    assert "pass find_unused_parameters=True to the Trainer" in str(explained)
    assert strategy.explain_forward_error(RuntimeError("CUDA out of memory")) is None


# ---------------------------------------------------------------------------- progress switch
@pytest.mark.parametrize("value,shown", [("1", False), ("yes", False), ("0", True), ("", True)])
def test_progress_bar_follows_bert_hub_disable_progress(monkeypatch, value, shown):
    monkeypatch.setenv("BERT_HUB_DISABLE_PROGRESS", value)
    bar = progress_bar(True, total=3, initial=0)
    assert (bar is not None) == shown
    if bar is not None:
        bar.close()
    assert progress_bar(False, total=3, initial=0) is None


def test_progress_switch_with_a_bad_value_names_the_fix(monkeypatch):
    monkeypatch.setenv("BERT_HUB_DISABLE_PROGRESS", "maybe")
    with pytest.raises(InvalidInputError, match="BERT_HUB_DISABLE_PROGRESS='maybe'"):
        progress_bar(True, total=3, initial=0)
