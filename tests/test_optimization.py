"""BertAdam and the schedules against pytorch-pretrained-bert 0.6.2 (installed from PyPI)."""
from __future__ import annotations

import io
import logging
import warnings

import pytest
import torch
from torch import nn

from bert_hub import optimization
from bert_hub.errors import InvalidArgumentError, TrainerError
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


def _step_together(pairs, steps, check=None):
    """For each step: the same gradients into every (model, optimizer) pair, then a step of
    each; ``check(step)`` after."""
    for step in steps:
        for model, optimizer in pairs:
            _set_grads(model, step)
            optimizer.step()
        if check is not None:
            check(step)


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

        def same(step):
            for (name, a), b in zip(ours_model.named_parameters(), theirs_model.parameters()):
                assert torch.equal(a, b), f"{schedule}: {name} differs at step {step}"
            assert ours.get_lr() == theirs.get_lr()

        _step_together([(ours_model, ours), (theirs_model, theirs)], range(14), same)  # past t_total


def test_bertadam_without_schedule_or_clipping_equals_0_6_2():
    torch.manual_seed(1)
    a, b = Block(), Block()
    b.load_state_dict(a.state_dict())
    ours = BertAdam(a.parameters(), lr=1e-3, max_grad_norm=-1, weight_decay=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ppb_optimization.BertAdam(b.parameters(), lr=1e-3, max_grad_norm=-1,
                                           weight_decay=0.0)
        _step_together([(a, ours), (b, theirs)], range(5))
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


@pytest.mark.parametrize("schedule", [
    lambda: {"warmup": 0.1, "t_total": 20},  # by name: warmup_linear
    lambda: {"schedule": optimization.WarmupCosineWithWarmupRestartsSchedule(0.1, 10, cycles=2)},
], ids=["name", "object"])
def test_bertadam_state_dict_loads_with_weights_only_and_continues_identically(schedule):
    torch.manual_seed(2)
    a = Block()
    opt = BertAdam(_groups(a), lr=1e-2, **schedule())
    _step_together([(a, opt)], range(3))
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # no pickled class: plain data only
    original = opt.param_groups[0]["schedule"]
    assert saved["param_groups"][0]["schedule"]["class"] == type(original).__name__
    assert isinstance(original, optimization.LRSchedule)  # the live groups are untouched
    b = Block()
    b.load_state_dict(a.state_dict())
    restored = BertAdam(_groups(b), lr=1e-2)  # the default schedule: the saved one replaces it
    restored.load_state_dict(saved)
    held = restored.param_groups[0]["schedule"]
    assert type(held) is type(original) and vars(held) == vars(original)
    _step_together([(a, opt), (b, restored)], range(3, 8))
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


# --------------------------------------------------------------------------- schedule objects

SCHEDULE_CASES = [
    ("ConstantLR", {"warmup": 0.1, "t_total": 40}),
    ("WarmupLinearSchedule", {"warmup": 0.1, "t_total": 40}),
    ("WarmupLinearSchedule", {"warmup": -1, "t_total": 40}),
    ("WarmupConstantSchedule", {"warmup": 0.3, "t_total": 40}),
    ("WarmupCosineSchedule", {"warmup": 0.1, "t_total": 40}),
    ("WarmupCosineSchedule", {"warmup": 0.05, "t_total": 40, "cycles": 2.0}),
    ("WarmupCosineWithHardRestartsSchedule", {"warmup": 0.1, "t_total": 40, "cycles": 3.0}),
    ("WarmupCosineWithWarmupRestartsSchedule", {"warmup": 0.05, "t_total": 40, "cycles": 4.0}),
    ("WarmupLinearSchedule", {"warmup": 0.1, "t_total": -1}),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULE_CASES)
def test_schedule_classes_equal_0_6_2_at_every_step(name, kwargs):
    ours = getattr(optimization, name)(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(ppb_optimization, name)(**kwargs)
    assert (ours.warmup, ours.t_total) == (theirs.warmup, theirs.t_total)
    for step in range(50):  # past t_total as well
        assert ours.get_lr(step, nowarn=True) == theirs.get_lr(step, nowarn=True), step
        assert ours(step) == ours.get_lr(step, nowarn=True)


def test_schedules_table_names_the_same_classes_as_0_6_2():
    assert set(optimization.SCHEDULES) == set(ppb_optimization.SCHEDULES)
    for key, cls in optimization.SCHEDULES.items():
        assert cls.__name__ == ppb_optimization.SCHEDULES[key].__name__, key
        assert issubclass(cls, optimization.LRSchedule)


def test_warmup_restarts_reach_zero_and_one_at_each_cycle():
    schedule = optimization.WarmupCosineWithWarmupRestartsSchedule(warmup=0.05, t_total=1000,
                                                                   cycles=5)
    starts, peaks = [0, 200, 400, 600, 800], [50, 250, 450, 650, 850]
    assert [schedule.get_lr(s) for s in starts] == pytest.approx([0.0] * 5, abs=1e-12)
    assert [schedule.get_lr(s) for s in peaks] == pytest.approx([1.0] * 5, abs=1e-12)


@pytest.mark.parametrize("schedule,cls", [
    (None, "ConstantLR"), ("none", "ConstantLR"), ("warmup_linear", "WarmupLinearSchedule"),
    ("warmup_cosine", "WarmupCosineSchedule"), ("warmup_constant", "WarmupConstantSchedule")])
def test_bertadam_groups_hold_a_schedule_object_as_in_0_6_2(schedule, cls):
    opt = BertAdam([nn.Parameter(torch.zeros(2))], lr=1e-3, warmup=0.1, t_total=100,
                   schedule=schedule)
    held = opt.param_groups[0]["schedule"]
    assert type(held).__name__ == cls and (held.warmup, held.t_total) == (0.1, 100.0)


def test_bertadam_keeps_a_schedule_object_and_steps_as_0_6_2(caplog):
    torch.manual_seed(3)
    a, b = Block(), Block()
    b.load_state_dict(a.state_dict())
    mine = optimization.WarmupCosineWithHardRestartsSchedule(warmup=0.1, t_total=12, cycles=2)
    with caplog.at_level(logging.WARNING, logger="bert_hub.optimization"):
        ours = BertAdam(_groups(a), lr=1e-2, schedule=mine, max_grad_norm=0.5)
    assert not caplog.records
    assert all(g["schedule"] is mine for g in ours.param_groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ppb_optimization.BertAdam(
            _groups(b), lr=1e-2, max_grad_norm=0.5,
            schedule=ppb_optimization.WarmupCosineWithHardRestartsSchedule(warmup=0.1, t_total=12,
                                                                           cycles=2))

        def same_lr(step):
            assert ours.get_lr() == theirs.get_lr(), step

        _step_together([(a, ours), (b, theirs)], range(14), same_lr)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    with caplog.at_level(logging.WARNING, logger="bert_hub.optimization"):
        BertAdam(_groups(a), lr=1e-2, warmup=0.2, t_total=5, schedule=mine)
    assert "ignored when schedule is an LRSchedule object" in caplog.text


def test_bertadam_loads_state_saved_with_schedule_names():
    """State dicts written before schedule objects: the name, warmup and t_total in each group."""
    model = Block()
    opt = BertAdam(_groups(model), lr=1e-2)
    state = opt.state_dict()
    for group in state["param_groups"]:
        group.update(schedule="warmup_cosine", warmup=0.25, t_total=8)
    opt.load_state_dict(state)
    for group in opt.param_groups:
        held = group["schedule"]
        assert type(held) is optimization.WarmupCosineSchedule
        assert (held.warmup, held.t_total) == (0.25, 8.0) and "warmup" not in group


@pytest.mark.parametrize("make,error,message", [
    (lambda: optimization.WarmupCosineWithHardRestartsSchedule(0.1, 100, cycles=0.5),
     TrainerError, r"cycles 0.5: a schedule with hard restarts needs at least one cycle"),
    (lambda: optimization.WarmupCosineWithWarmupRestartsSchedule(0.3, 100, cycles=4),
     TrainerError, r"warmup 0.3 x cycles 4 must be below 1"),
    (lambda: optimization.WarmupLinearSchedule(1.5, 100), TrainerError,
     r"warmup 1.5 is the fraction of t_total"),
    (lambda: optimization.WarmupLinearSchedule(0.1, 0), TrainerError,
     r"t_total 0 leaves no optimizer step"),
    (lambda: optimization.WarmupLinearSchedule(0.1, 100, cycle=2), InvalidArgumentError,
     r"unexpected argument\(s\) cycle"),
    (lambda: BertAdam([nn.Parameter(torch.zeros(1))], lr=1e-3, schedule=42), TrainerError,
     r"unknown schedule 42: .*or an LRSchedule object"),
    (lambda: BertAdam([nn.Parameter(torch.zeros(1))], lr=1e-3, schedule=["warmup_linear"]),
     TrainerError, r"unknown schedule \['warmup_linear'\]"),
])
def test_schedule_arguments_are_checked(make, error, message):
    with pytest.raises(error, match=message):
        make()
