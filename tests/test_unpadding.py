"""Padded batches computed on their real tokens only (``unpad``, the default) against the dense
path (``unpad=False``) on the same weights: every head, masks of every shape, eval and train
mode with gradients, fp32 / bf16 / fp16, each attention choice, tracing, and the Trainer
(weights after training, evaluation in length-sorted batches returned in input order).
0.6.2 and transformers as oracles in both modes: tests/test_modeling.py."""
from __future__ import annotations

import pytest
import torch
from _train_worker import BertData, tiny_bert_classifier
from floats import assert_close, flat
from torch.utils.data import StackDataset, Subset, TensorDataset

from bert_hub import fast_path, modeling, unpadding
from bert_hub.errors import InvalidInputError
from bert_hub.modeling import BertConfig
from bert_hub.trainer import Trainer
from bert_hub.training.data import LengthSortedSampler, example_lengths

VOCAB = 99
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)
S = 11
HEADS = {  # name -> constructor extra args
    "BertModel": (), "BertForPreTraining": (), "BertForMaskedLM": (),
    "BertForNextSentencePrediction": (), "BertForSequenceClassification": (3,),
    "BertForMultipleChoice": (4,), "BertForTokenClassification": (3,),
    "BertForQuestionAnswering": (),
}
# Real lengths of the rows of a batch of length S.
MASKS = {
    "no padding": [S, S, S],
    "ragged": [S, 7, 4],
    "one real token": [1, 1, 1],
    "all but one padded": [1, S, 1],
    "equal lengths, trimmed": [5, 5, 5],
    "one row": [6],
}
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 3e-2, torch.float16: 5e-3}


def model_pair(name: str, seed: int = 0, dtype=torch.float32):
    """(unpadded, dense) copies of one head with random values in every parameter."""
    torch.manual_seed(seed)
    model, dense = (getattr(modeling, name)(BertConfig(VOCAB, **TINY), *HEADS[name])
                    for _ in range(2))
    with torch.no_grad():
        for p in model.parameters():       # LayerNorm and biases random too
            p.normal_(0.0, 0.2)
    dense.load_state_dict(model.state_dict())
    dense.unpad = False
    return model.to(dtype), dense.to(dtype)


def inputs(name: str, lengths, seed: int = 1):
    """(input_ids, token_type_ids, attention_mask), right-padded; (B, C, S) for multiple
    choice (each choice of row b has length lengths[b])."""
    gen = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    shape = (batch, 4, S) if name == "BertForMultipleChoice" else (batch, S)
    ids = torch.randint(1, VOCAB, shape, generator=gen)
    types = torch.randint(0, 2, shape, generator=gen)
    mask = (torch.arange(S) < torch.tensor(lengths).view(batch, *[1] * (len(shape) - 1))).long()
    return ids, types, mask.expand(shape).contiguous()


def labels(name: str, mask: torch.Tensor, seed: int = 2) -> dict:
    """Labels of each head; token labels at padded positions are ignored (-1) for the masked-LM
    heads, as a loss over real tokens counts them."""
    gen = torch.Generator().manual_seed(seed)
    batch = mask.shape[0]
    mlm = torch.randint(0, VOCAB, (batch, S), generator=gen)
    mlm[:, 1::3] = -1
    if mask.dim() == 2:
        mlm = mlm.masked_fill(mask == 0, -1)
    classes = torch.randint(0, 2, (batch,), generator=gen)
    return {
        "BertForPreTraining": dict(masked_lm_labels=mlm, next_sentence_label=classes),
        "BertForMaskedLM": dict(masked_lm_labels=mlm),
        "BertForNextSentencePrediction": dict(next_sentence_label=classes),
        "BertForSequenceClassification": dict(labels=classes),
        "BertForMultipleChoice": dict(labels=classes),
        "BertForTokenClassification": dict(labels=torch.randint(0, 3, (batch, S), generator=gen)),
        "BertForQuestionAnswering": dict(start_positions=classes, end_positions=classes + 1),
    }.get(name)


def dense_as_unpadded(name: str, out, mask):
    """The dense path's outputs as the unpadded path returns them: per-token outputs zero at
    padded positions (question answering's logits -10000)."""
    fill = unpadding.MASKED_LOGIT if name == "BertForQuestionAnswering" else 0.0
    fixed = []
    for t in flat(out):
        if mask.dim() == 2 and t.dim() >= 2 and t.shape[:2] == mask.shape:
            t = t.masked_fill((mask == 0).view(*mask.shape, *[1] * (t.dim() - 2)), fill)
        fixed.append(t)
    return fixed


def dense_loss(name: str, dense, batch, label_kw):
    """The dense path's loss; question answering's over real positions (its logits masked)."""
    if name == "BertForQuestionAnswering":
        start, end = dense_as_unpadded(name, dense(*batch), batch[2])
        loss = torch.nn.CrossEntropyLoss(ignore_index=S)
        return (loss(start, label_kw["start_positions"]) + loss(end, label_kw["end_positions"])) / 2
    return dense(*batch, **label_kw)


# ---------------------------------------------------------------------------- equality
@pytest.mark.parametrize("masks", list(MASKS))
@pytest.mark.parametrize("name", list(HEADS))
def test_eval_outputs_and_losses_equal_the_dense_path(name, masks):
    model, dense = model_pair(name)
    model.eval(), dense.eval()
    batch = inputs(name, MASKS[masks])
    with torch.no_grad():
        assert_close(model(*batch), dense_as_unpadded(name, dense(*batch), batch[2]), 1e-5)
        if name == "BertModel":
            assert_close(model(*batch, output_all_encoded_layers=False),
                         dense_as_unpadded(name, dense(*batch, output_all_encoded_layers=False),
                                           batch[2]), 1e-5)
        else:
            label_kw = labels(name, batch[2])
            assert_close(model(*batch, **label_kw), dense_loss(name, dense, batch, label_kw), 1e-5)


@pytest.mark.parametrize("masks", ["ragged", "all but one padded", "no padding"])
@pytest.mark.parametrize("name", list(HEADS))
def test_train_mode_losses_and_gradients_equal_the_dense_path(name, masks):
    model, dense = model_pair(name)
    model.train(), dense.train()
    batch = inputs(name, MASKS[masks])
    if name == "BertModel":
        loss = sum(t.square().sum() for t in flat(model(*batch)))
        reference = sum(t.square().sum() for t in dense_as_unpadded(name, dense(*batch), batch[2]))
    else:
        label_kw = labels(name, batch[2])
        loss, reference = model(*batch, **label_kw), dense_loss(name, dense, batch, label_kw)
    assert_close(loss, reference, 1e-5)
    loss.backward()
    reference.backward()
    grads = dict(dense.named_parameters())
    for key, p in model.named_parameters():
        want = grads[key].grad
        if want is None:
            assert p.grad is None or not p.grad.any(), key
            continue
        assert_close(p.grad, want, 1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", ["BertModel", "BertForMaskedLM", "BertForQuestionAnswering",
                                  "BertForSequenceClassification"])
def test_half_precision_equals_the_dense_path(name, dtype):
    model, dense = model_pair(name, dtype=dtype)
    batch = inputs(name, MASKS["ragged"])
    with torch.no_grad():
        assert_close(model.eval()(*batch), dense_as_unpadded(name, dense.eval()(*batch), batch[2]),
                     TOLERANCE[dtype])


@pytest.mark.parametrize("choice", ["groups", "padded", "nested"])
def test_every_attention_choice_gives_the_same_outputs_and_gradients(choice, monkeypatch):
    monkeypatch.setattr(unpadding, "ATTENTION", choice)
    model, dense = model_pair("BertForSequenceClassification")
    batch = inputs("BertForSequenceClassification", [S, 7, 4, 7, 2])
    label_kw = dict(labels=torch.tensor([0, 1, 2, 1, 0]))
    loss, reference = model.train()(*batch, **label_kw), dense.train()(*batch, **label_kw)
    assert_close(loss, reference, 1e-5)
    loss.backward()
    reference.backward()
    for (key, p), q in zip(model.named_parameters(), dense.parameters()):
        assert_close(p.grad, q.grad, 1e-5)


def test_an_unknown_attention_choice_is_named(monkeypatch):
    monkeypatch.setattr(unpadding, "ATTENTION", "flash")
    model, _ = model_pair("BertModel")
    with pytest.raises(InvalidInputError, match="unpadding.ATTENTION is 'flash'.*groups"):
        model(*inputs("BertModel", MASKS["ragged"]))


# ---------------------------------------------------------------------------- semantics
def test_padded_positions_are_zero_and_padded_tokens_change_nothing():
    model, _ = model_pair("BertModel")
    ids, types, mask = inputs("BertModel", MASKS["ragged"])
    with torch.no_grad():
        layers, pooled = model.eval()(ids, types, mask)
        noise = torch.randint(1, VOCAB, ids.shape)
        other_layers, other_pooled = model(torch.where(mask.bool(), ids, noise), types, mask)
    assert len(layers) == TINY["num_hidden_layers"]
    for layer, other in zip(layers, other_layers):
        assert not layer[mask == 0].any()
        assert torch.equal(layer, other)
    assert torch.equal(pooled, other_pooled)


def test_each_row_equals_its_sequence_alone():
    model, _ = model_pair("BertModel")
    ids, types, mask = inputs("BertModel", MASKS["ragged"])
    with torch.no_grad():
        layers, pooled = model.eval()(ids, types, mask)
        for row, n in enumerate(MASKS["ragged"]):
            alone, alone_pooled = model(ids[row:row + 1, :n], types[row:row + 1, :n])
            assert_close(layers[-1][row, :n], alone[-1][0], 1e-5)
            assert_close(pooled[row], alone_pooled[0], 1e-5)


def test_unpad_false_is_todays_dense_computation_bit_for_bit():
    """unpad=False: every position computed (padded ones too), exactly the plain layers' result."""
    _, dense = model_pair("BertModel")
    ids, types, mask = inputs("BertModel", MASKS["ragged"])
    with torch.no_grad():
        layers, pooled = dense.eval()(ids, types, mask)
        extended = (1.0 - mask[:, None, None, :].float()) * -10000.0
        expected = dense.encoder(dense.embeddings(ids, types), extended)
        expected_pooled = dense.pooler(expected[-1])
    assert layers[-1][mask == 0].abs().sum() > 0          # padded positions are computed
    for got, want in zip(layers, expected):
        assert torch.equal(got, want)
    assert torch.equal(pooled, expected_pooled)


def test_inner_layers_see_only_the_real_tokens():
    model, _ = model_pair("BertModel")
    ids, types, mask = inputs("BertModel", MASKS["ragged"])
    seen = []
    model.encoder.layer[0].output.dense.register_forward_hook(
        lambda module, args, out: seen.append(tuple(out.shape)))
    with torch.no_grad():
        model.eval()(ids, types, mask)
    assert seen == [(sum(MASKS["ragged"]), TINY["hidden_size"])]


def test_left_padding_and_soft_masks_take_the_dense_path():
    """A sequence whose first position is padding (the pooler reads position 0) and a mask with
    values other than 0 / 1 run dense; padded positions are still zero."""
    model, dense = model_pair("BertModel")
    ids, types, mask = inputs("BertModel", MASKS["ragged"])
    left = mask.flip(1)
    assert unpadding.pack(left) is None and unpadding.pack(mask * 2) is None
    with torch.no_grad():
        assert_close(model.eval()(ids, types, left),
                     dense_as_unpadded("BertModel", dense.eval()(ids, types, left), left), 1e-6)


def test_under_tracing_the_dense_path_runs_with_the_same_results(monkeypatch):
    """torch.compile / export / ONNX see no data-dependent shapes: no packing, the same outputs
    (zeros at padded positions) by masking."""
    for name in ("BertModel", "BertForMaskedLM", "BertForQuestionAnswering"):
        model, _ = model_pair(name)
        batch = inputs(name, MASKS["ragged"])
        label_kw = labels(name, batch[2])
        with torch.no_grad():
            eager = model.eval()(*batch)
            eager_loss = model(*batch, **label_kw) if label_kw else None
            monkeypatch.setattr(fast_path, "is_tracing", lambda: True)
            assert unpadding.pack(batch[2]) is None
            assert_close(model(*batch), eager, 1e-5)
            if label_kw:
                assert_close(model(*batch, **label_kw), eager_loss, 1e-5)
            monkeypatch.undo()


def test_the_unpad_switch():
    head, _ = model_pair("BertForSequenceClassification")
    assert head.unpad is True and head.bert.unpad is True
    head.unpad = False                                    # a head's switch is its bert's
    assert head.bert.unpad is False
    with pytest.raises(InvalidInputError, match="unpad must be True or False, got 'no'"):
        head.unpad = "no"


def test_from_pretrained_takes_unpad(tmp_path):
    model, _ = model_pair("BertForSequenceClassification")
    model.save_pretrained(tmp_path)
    assert modeling.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=3).unpad
    loaded = modeling.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=3,
                                                                    unpad=False)
    assert loaded.unpad is False
    with pytest.raises(InvalidInputError, match="unpad must be True or False, got 1"):
        modeling.BertModel.from_pretrained(tmp_path, unpad=1)


# ---------------------------------------------------------------------------- Trainer
class RaggedBertData(BertData):
    """BertData with ragged real lengths (1 .. length), labels from the first token."""

    def __init__(self, n=24, length=8, seed=0):
        super().__init__(n, length, seed)
        g = torch.Generator().manual_seed(seed + 1)
        lengths = torch.randint(1, length + 1, (n,), generator=g)
        self.mask = (torch.arange(length) < lengths[:, None]).long()
        self.ids = self.ids * self.mask


def test_training_on_padded_data_gives_the_dense_paths_weights(tmp_path):
    unpadded, dense = tiny_bert_classifier(), tiny_bert_classifier()
    dense.unpad = False
    for model, out in ((unpadded, "u"), (dense, "d")):
        Trainer(model, RaggedBertData(), batch_size=4, epochs=2, lr=1e-2, progress=False,
                output_dir=tmp_path / out).train()
    for (key, a), b in zip(unpadded.named_parameters(), dense.parameters()):
        assert_close(a, b, 1e-6, what=key)


def test_evaluate_and_predict_return_the_input_order(tmp_path):
    data = RaggedBertData(n=21)
    model = tiny_bert_classifier().eval()
    with torch.no_grad():
        one_by_one = torch.cat([model(data.ids[i:i + 1], None, data.mask[i:i + 1])
                                for i in range(len(data))])          # (N, 3)
    trainer = Trainer(model, batch_size=4, progress=False, output_dir=tmp_path,
                      compute_metrics=lambda p, y: {"first": float(p[0, 0]), "y": y.tolist()})
    assert LengthSortedSampler(data).order != list(range(len(data)))   # sorting happens
    assert_close(trainer.predict(data), one_by_one, 1e-5)
    metrics = trainer.evaluate(data)
    assert metrics["y"] == data.labels.tolist()
    assert_close(metrics["first"], float(one_by_one[0, 0]))


def test_example_lengths_read_masks_ids_and_columns():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    ids = torch.tensor([[5, 6, 0], [5, 6, 7], [5, 0, 0]])
    assert example_lengths(BertData(4, 8)) == [8, 8, 6, 6]          # dicts: attention_mask
    assert example_lengths(TensorDataset(ids, mask)) == [2, 3, 1]   # first integer tensor
    assert example_lengths(StackDataset(input_ids=ids, input_mask=mask)) == [2, 3, 1]
    assert example_lengths(Subset(StackDataset(attention_mask=mask), [2, 0])) == [1, 2]
    assert example_lengths(TensorDataset(torch.randn(3, 4))) is None   # no length: input order
    assert LengthSortedSampler(TensorDataset(ids)).order == [1, 0, 2]
    assert list(LengthSortedSampler(TensorDataset(torch.randn(3, 4)))) == [0, 1, 2]
