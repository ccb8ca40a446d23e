"""The fast path against the plain path (the switch off), for BertModel and every head, in eval
and train mode; and a torch whose private oneDNN op is missing, raises, or computes something
else: the model still imports and computes the same outputs."""
import logging
import subprocess
import sys
import textwrap
import types

import pytest
import torch

from floats import assert_close, flat

from bert_hub import fast_path, modeling
from bert_hub.modeling import BertConfig

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, type_vocab_size=3)
VOCAB = 99
B, S = 3, 11
HEADS = {  # name -> (constructor args, label kwargs)
    "BertModel": ((), {}),
    "BertForPreTraining": ((), dict(masked_lm_labels=torch.randint(0, VOCAB, (B, S)),
                                    next_sentence_label=torch.tensor([0, 1, 1]))),
    "BertForMaskedLM": ((), dict(masked_lm_labels=torch.randint(0, VOCAB, (B, S)))),
    "BertForNextSentencePrediction": ((), dict(next_sentence_label=torch.tensor([1, 0, 1]))),
    "BertForSequenceClassification": ((3,), dict(labels=torch.tensor([0, 2, 1]))),
    "BertForMultipleChoice": ((4,), dict(labels=torch.tensor([3, 0, 1]))),
    "BertForTokenClassification": ((3,), dict(labels=torch.randint(0, 3, (B, S)))),
    "BertForQuestionAnswering": ((), dict(start_positions=torch.tensor([1, 4, 5]),
                                          end_positions=torch.tensor([3, 9, 9]))),
}
HAVE_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn,
                                                               "_linear_pointwise")


@pytest.fixture(autouse=True)
def fresh_verdicts(monkeypatch):
    """Each test starts with the fast path and oneDNN on (whatever the suite's kernel mode) and
    no remembered verdict on the private op."""
    monkeypatch.setattr(fast_path, "ENABLED", True)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", True)
    monkeypatch.setattr(fast_path, "_onednn_ops", {})


def build(name, dropout=0.1, hidden_act="gelu"):
    config = BertConfig(VOCAB, hidden_act=hidden_act, hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout, **TINY)
    model = getattr(modeling, name)(config, *HEADS[name][0])
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model


def inputs(name):
    gen = torch.Generator().manual_seed(1)
    shape = (B, 4, S) if name == "BertForMultipleChoice" else (B, S)
    ids = torch.randint(0, VOCAB, shape, generator=gen)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., 7:] = 0
    return ids, torch.randint(0, 3, shape, generator=gen), mask


def run(model, name, train):
    """Outputs (eval, no_grad) or loss + every gradient (train, dropout drawn from seed 7)."""
    ids, types_, mask = inputs(name)
    if not train:
        with torch.no_grad():
            return flat(model.eval()(ids, types_, mask))
    model.train().zero_grad()
    torch.manual_seed(7)
    out = model(ids, types_, mask, **HEADS[name][1])
    loss = sum(t.square().sum() for t in flat(out)) if name == "BertModel" else out
    loss.backward()
    return [loss.detach()] + [p.grad for p in model.parameters() if p.grad is not None]


def assert_same(fast, plain):
    assert len(plain) > 0
    assert_close(fast, plain)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", list(HEADS))
def test_switch_off_gives_the_same_outputs(monkeypatch, name, train):
    model = build(name)
    fast = run(model, name, train)
    monkeypatch.setattr(fast_path, "ENABLED", False)
    plain = run(model, name, train)
    assert_same(fast, plain)


def _linear_ops(model, name):
    from torch.profiler import profile
    with profile() as prof:
        out = run(model, name, train=False)
    return out, {e.key for e in prof.key_averages()}


def _plain_outputs(model, name, monkeypatch):
    monkeypatch.setattr(fast_path, "ENABLED", False)
    out = run(model, name, train=False)
    monkeypatch.setattr(fast_path, "ENABLED", True)
    return out


@pytest.mark.parametrize("name", ["BertForPreTraining", "BertForSequenceClassification"])
def test_private_op_missing_costs_speed_not_correctness(monkeypatch, name):
    model = build(name)
    plain = _plain_outputs(model, name, monkeypatch)
    monkeypatch.setattr(torch.ops, "mkldnn", types.SimpleNamespace())   # a torch without it
    out, ops = _linear_ops(model, name)
    assert not any(op.startswith("mkldnn::") for op in ops)
    assert_same(out, plain)
    assert fast_path._onednn_ops == {("none", "", torch.float32): None,
                                     ("gelu", "none", torch.float32): None}


@pytest.mark.skipif(not HAVE_ONEDNN, reason="this torch build has no oneDNN linear")
def test_private_op_that_computes_something_else_is_not_used(monkeypatch, caplog):
    name = "BertForSequenceClassification"
    model = build(name)
    plain = _plain_outputs(model, name, monkeypatch)
    real = torch.ops.mkldnn._linear_pointwise
    wrong = types.SimpleNamespace(
        _linear_pointwise=lambda x, w, b, *args: real(x, w, b, *args) * 1.01,
        _is_mkldnn_bf16_supported=torch.ops.mkldnn._is_mkldnn_bf16_supported)
    monkeypatch.setattr(torch.ops, "mkldnn", wrong)
    with caplog.at_level(logging.WARNING, logger="bert_hub.fast_path"):
        out = run(model, name, train=False)
    assert_same(out, plain)
    assert "does not compute what F.linear does" in caplog.text
    assert set(fast_path._onednn_ops.values()) == {None}


@pytest.mark.skipif(not HAVE_ONEDNN, reason="this torch build has no oneDNN linear")
def test_private_op_that_raises_is_dropped_once(monkeypatch, caplog):
    name = "BertModel"
    model = build(name)
    plain = _plain_outputs(model, name, monkeypatch)
    calls = []

    def changed_signature(*args):
        calls.append(len(args))
        raise RuntimeError("_linear_pointwise() expected 7 arguments")

    monkeypatch.setattr(torch.ops, "mkldnn", types.SimpleNamespace(
        _linear_pointwise=changed_signature, _is_mkldnn_bf16_supported=lambda: True))
    with caplog.at_level(logging.WARNING, logger="bert_hub.fast_path"):
        out = run(model, name, train=False)
        again = run(model, name, train=False)
    assert_same(out, plain)
    assert_same(again, plain)
    assert len(calls) == 2                          # once per activation, then never again
    assert caplog.text.count("oneDNN's linear failed") == 2


def test_a_torch_without_the_private_op_imports_and_runs(tmp_path):
    """In a fresh process whose torch has no torch.ops.mkldnn at all: import, build, run, and
    the outputs equal the plain path's (the switch off, in the same process)."""
    code = textwrap.dedent("""
        import types, torch
        torch.ops.mkldnn = types.SimpleNamespace()       # before bert_hub is imported
        from bert_hub import fast_path
        from bert_hub.modeling import BertConfig, BertForMaskedLM
        torch.manual_seed(0)
        model = BertForMaskedLM(BertConfig(99, hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, intermediate_size=37)).eval()
        ids = torch.randint(0, 99, (2, 9))
        with torch.no_grad():
            fast = model(ids)
            fast_path.ENABLED = False
            plain = model(ids)
        diff, scale = (fast - plain).abs().max().item(), max(1.0, plain.abs().max().item())
        assert diff <= 1e-5 * scale, (diff, scale)
        print("ok", tuple(fast.shape))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "(2,", "9,", "99)"]


@pytest.mark.skipif(not HAVE_ONEDNN, reason="this torch build has no oneDNN linear")
@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu", "swish"])
def test_fused_activations_equal_the_plain_ones(monkeypatch, act):
    name = "BertForMaskedLM"                       # the activation in the encoder and the head
    model = build(name, hidden_act=act)
    out, ops = _linear_ops(model, name)
    assert "mkldnn::_linear_pointwise" in ops
    assert_same(out, _plain_outputs(model, name, monkeypatch))


@pytest.mark.parametrize("unpad", [True, False], ids=["unpad", "dense"])
def test_hooks_on_the_projections_run(unpad):
    model = build("BertModel").eval()
    model.unpad = unpad
    attention = model.encoder.layer[0].attention.self
    seen = []
    handle = attention.key.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    hooked = run(model, "BertModel", train=False)
    rows = (int(inputs("BertModel")[2].sum()),) if unpad else (B, S)  # packed real tokens
    assert seen == [rows + (TINY["hidden_size"],)]
    handle.remove()
    assert_same(hooked, run(model, "BertModel", train=False))


def test_packed_order_puts_each_layers_projections_back_to_back():
    keys = list(modeling.BertModel(BertConfig(VOCAB, **TINY)).state_dict())
    order = fast_path.packed_order(keys)
    assert sorted(order) == sorted(keys)
    first = order.index("encoder.layer.0.attention.self.query.weight")
    assert order[first:first + 6] == [f"encoder.layer.0.attention.self.{m}.{p}"
                                      for p in ("weight", "bias") for m in ("query", "key", "value")]
