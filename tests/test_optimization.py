"""BertAdam and the schedules against pytorch-pretrained-bert 0.6.2 (installed from PyPI)."""
from __future__ import annotations

import io
import logging
import warnings

import pytest
import torch
from torch import nn

from bert_hub.errors import TrainerError
from bert_hub.optimization import BertAdam, Schedule, get_scheduler, parameter_groups

ppb_optimization = pytest.importorskip(
    "pytorch_pretrained_bert.optimization",
    reason="pytorch-pretrained-bert 0.6.2 (the oracle) is not installed")

SCHEDULES = ["warmup_linear", "warmup_cosine", "warmup_constant", "none"]


class Block(nn.Module):
    """Names like BERT's: a decayed weight, biases and a LayerNorm."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(6, 5)
        self.LayerNorm = nn.LayerNorm(5)
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        return self.out(self.LayerNorm(self.dense(x)))


def _groups(model, weight_decay=0.01):
    return parameter_groups(model, weight_decay)


def _set_grads(model, step):
    g = torch.Generator().manual_seed(1000 + step)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g) * 3.0  # norms above max_grad_norm: clipping


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_bertadam_equals_0_6_2_step_by_step(schedule):
    torch.manual_seed(0)
    ours_model = Block()
    theirs_model = Block()
    theirs_model.load_state_dict(ours_model.state_dict())
    kwargs = {"lr": 1e-2, "warmup": 0.2, "t_total": 10, "schedule": schedule, "max_grad_norm": 0.5}
    ours = BertAdam(_groups(ours_model), **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0.6.2 uses a deprecated add_ signature
        theirs = ppb_optimization.BertAdam(_groups(theirs_model), **kwargs)
        for step in range(14):  # past t_total as well
            _set_grads(ours_model, step)
            _set_grads(theirs_model, step)
            ours.step()
            theirs.step()
            for (name, a), b in zip(ours_model.named_parameters(), theirs_model.parameters()):
                assert torch.equal(a, b), f"{schedule}: {name} differs at step {step}"
            assert ours.get_lr() == theirs.get_lr()


def test_bertadam_without_schedule_or_clipping_equals_0_6_2():
    torch.manual_seed(1)
    a, b = Block(), Block()
    b.load_state_dict(a.state_dict())
    ours = BertAdam(a.parameters(), lr=1e-3, max_grad_norm=-1, weight_decay=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ppb_optimization.BertAdam(b.parameters(), lr=1e-3, max_grad_norm=-1,
                                           weight_decay=0.0)
        for step in range(5):
            _set_grads(a, step)
            _set_grads(b, step)
            ours.step()
            theirs.step()
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_first_step_with_warmup_has_zero_learning_rate_as_in_0_6_2():
    model = Block()
    before = [p.detach().clone() for p in model.parameters()]
    opt = BertAdam(model.parameters(), lr=0.1, warmup=0.1, t_total=10, weight_decay=0.0)
    _set_grads(model, 0)
    opt.step()
    assert all(torch.equal(x, y) for x, y in zip(before, model.parameters()))
    _set_grads(model, 1)
    opt.step()
    assert not torch.equal(before[0], model.dense.weight)


@pytest.mark.parametrize("schedule,oracle", [
    ("warmup_linear", "WarmupLinearSchedule"), ("warmup_cosine", "WarmupCosineSchedule"),
    ("warmup_constant", "WarmupConstantSchedule"), ("none", "ConstantLR")])
def test_lambda_lr_schedule_equals_0_6_2_multiplier(schedule, oracle):
    param = nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([param], lr=3e-5)
    scheduler = get_scheduler(opt, schedule, warmup=0.25, t_total=12)
    reference = getattr(ppb_optimization, oracle)(warmup=0.25, t_total=12)
    for t in range(16):
        expected = 3e-5 * reference.get_lr(t, nowarn=True)
        assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-20), t
        opt.step()
        scheduler.step()


def test_warning_once_when_training_past_t_total(caplog):
    schedule = Schedule("warmup_linear", 0.1, t_total=4)
    with caplog.at_level(logging.WARNING, logger="bert_hub.optimization"):
        values = [schedule(t) for t in range(8)]
    assert values[4:] == [0.0] * 4
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "beyond t_total" in messages[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bert_hub.optimization"):
        Schedule("warmup_constant", 0.1, t_total=4)(9)  # no warning: constant after warmup
    assert not caplog.records


def test_parameter_groups_exclude_biases_and_layernorm_from_decay():
    model = Block()
    names = {id(p): n for n, p in model.named_parameters()}
    groups = parameter_groups(model, weight_decay=0.05)
    decayed = sorted(names[id(p)] for p in groups[0]["params"])
    plain = sorted(names[id(p)] for p in groups[1]["params"])
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert decayed == ["dense.weight", "out.weight"]
    assert plain == ["LayerNorm.bias", "LayerNorm.weight", "dense.bias", "out.bias"]


def test_bertadam_state_dict_loads_with_weights_only_and_continues_identically():
    torch.manual_seed(2)
    a = Block()
    opt = BertAdam(_groups(a), lr=1e-2, warmup=0.1, t_total=20)
    for step in range(3):
        _set_grads(a, step)
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    b = Block()
    b.load_state_dict(a.state_dict())
    restored = BertAdam(_groups(b), lr=1e-2, warmup=0.1, t_total=20)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for step in range(3, 6):
        _set_grads(a, step)
        _set_grads(b, step)
        opt.step()
        restored.step()
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("kwargs,message", [
    ({"lr": -1.0}, "learning rate -1.0 is negative"),
    ({"lr": 1e-3, "schedule": "warmup_square"}, "unknown schedule 'warmup_square'"),
    ({"lr": 1e-3, "warmup": 1.5, "t_total": 10}, "warmup 1.5 is the fraction of t_total"),
    ({"lr": 1e-3, "b1": 1.0}, "b1 1.0 is out of range"),
    ({"lr": 1e-3, "b2": -0.1}, "b2 -0.1 is out of range"),
    ({"lr": 1e-3, "e": -1e-6}, "epsilon e -1e-06 is negative"),
])
def test_bertadam_rejects_bad_arguments_with_the_fix(kwargs, message):
    with pytest.raises(TrainerError, match=message):
        BertAdam([nn.Parameter(torch.zeros(1))], **kwargs)


def test_bertadam_rejects_sparse_gradients():
    emb = nn.Embedding(4, 2, sparse=True)
    opt = BertAdam(emb.parameters(), lr=1e-3)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(TrainerError, match="SparseAdam"):
        opt.step()
