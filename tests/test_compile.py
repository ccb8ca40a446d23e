"""torch.compile, torch.export and TorchScript tracing of the models: the dense path, the mask an
input whatever its values at trace time, no graph break, the same numbers as eager."""
from __future__ import annotations

import sys

import pytest
import torch

from bert_hub import fast_path
from bert_hub import modeling as M
from bert_hub.errors import InvalidInputError
from bert_hub.export import HEADS, example_inputs

CONFIG = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=37, max_position_embeddings=64)


@pytest.fixture(autouse=True, scope="module")
def _recursion_limit():
    """Compiling raises Python's recursion limit for the whole process: restored after."""
    limit = sys.getrecursionlimit()
    yield
    sys.setrecursionlimit(limit)


def tiny(cls, **kwargs):
    torch.manual_seed(0)
    return cls(M.BertConfig(**CONFIG), **kwargs).eval()


def outputs(out):
    if isinstance(out, torch.Tensor):
        return [out]
    flat = []
    for item in out:
        flat.extend(outputs(item))
    return flat


@pytest.mark.slow
@pytest.mark.parametrize("head", list(HEADS))
def test_every_head_compiles_without_graph_breaks_and_equals_eager(head):
    torch._dynamo.reset()
    model = tiny(HEADS[head].cls)
    compiled = torch.compile(model, fullgraph=True, dynamic=True)   # a break would raise
    with torch.no_grad():
        for batch, seq in ((2, 9), (3, 14)):
            inputs = example_inputs(model, batch, seq, seed=seq)
            for want, got in zip(outputs(model(*inputs)), outputs(compiled(*inputs))):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_explain_finds_no_graph_break_with_gradients_on():
    torch._dynamo.reset()
    model = tiny(M.BertForSequenceClassification).train()
    inputs = example_inputs(model, 2, 9)
    explanation = torch._dynamo.explain(model)(*inputs)
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_torch_export_keeps_an_all_ones_mask_as_an_input():
    model = tiny(M.BertModel)
    ids = torch.randint(1, 99, (2, 8))
    ones = torch.ones_like(ids)                      # the dummy a user would trace with
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=64)
    program = torch.export.export(model, (ids, None, ones, False),
                                  dynamic_shapes=({0: batch, 1: seq}, None, {0: batch, 1: seq},
                                                  None))
    exported = program.module()
    ids, types, mask = example_inputs(model, 3, 11, seed=3)
    assert not bool(mask.all())
    with torch.no_grad():
        want = model(ids, None, mask, False)
        got = exported(ids, None, mask, False)
    torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[1], want[1], rtol=1e-4, atol=1e-5)
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any("mkldnn" in op or "as_strided" in op for op in ops), ops


def test_torchscript_trace_with_all_ones_mask_applies_a_padding_mask():
    model = tiny(M.BertForSequenceClassification)
    ids = torch.randint(1, 99, (2, 8))
    with torch.no_grad():
        traced = torch.jit.trace(model, (ids, torch.zeros_like(ids), torch.ones_like(ids)),
                                 check_trace=False)
        inputs = example_inputs(model, 2, 8, seed=5)
        torch.testing.assert_close(traced(*inputs), model(*inputs), rtol=1e-4, atol=1e-5)


class _Probe(torch.nn.Module):
    def forward(self, x):
        return x + float(fast_path.is_tracing())    # the answer is baked in when traced


def test_is_tracing_answers_for_each_tracer():
    x = torch.zeros(2)
    assert not fast_path.is_tracing() and float(_Probe()(x)[0]) == 0
    torch._dynamo.reset()
    assert float(torch.compile(_Probe(), fullgraph=True)(x)[0]) == 1
    assert float(torch.jit.trace(_Probe(), x, check_trace=False)(x)[0]) == 1
    assert float(torch.export.export(_Probe(), (x,)).module()(x)[0]) == 1


def test_id_checks_run_eagerly_and_stay_out_of_the_compiled_graph():
    model = tiny(M.BertModel)
    bad = torch.tensor([[5, 99]])
    with pytest.raises(InvalidInputError, match="vocab_size is 99"):
        model(bad)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    good = torch.tensor([[5, 98]])
    with torch.no_grad():
        torch.testing.assert_close(compiled(good, output_all_encoded_layers=False)[0],
                                   model(good, output_all_encoded_layers=False)[0],
                                   rtol=1e-4, atol=1e-5)
        with pytest.raises((RuntimeError, IndexError)):    # the kernel's own bounds check
            compiled(bad)
