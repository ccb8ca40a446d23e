"""The models against pytorch-pretrained-bert 0.6.2 and transformers on the same random weights
(with padding removed, the default, and with ``unpad=False``), the fused attention path, and
every input-validation message."""
import pytest
import torch
from torch.nn import CrossEntropyLoss

from floats import assert_close
from floats import flat as as_list

from bert_hub import fast_path, modeling, unpadding
from bert_hub.errors import ConfigError, InvalidInputError
from bert_hub.modeling import BertConfig

old = pytest.importorskip("pytorch_pretrained_bert.modeling",
                          reason="pytorch-pretrained-bert 0.6.2 not installed")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, type_vocab_size=3)
VOCAB = 99
B, S = 3, 11


def tiny_config(dropout=0.1, **overrides):
    kw = dict(TINY, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    kw.update(overrides)
    return BertConfig(VOCAB, **kw)


def old_config(config):
    return old.BertConfig.from_dict(config.to_dict())


@torch.no_grad()
def randomize(model, seed=0):
    """Random values in every parameter (LayerNorm and biases too), in place."""
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def batch(seed=1, choices=None):
    gen = torch.Generator().manual_seed(seed)
    shape = (B, S) if choices is None else (B, choices, S)
    ids = torch.randint(0, VOCAB, shape, generator=gen)
    types = torch.randint(0, TINY["type_vocab_size"], shape, generator=gen)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., 7:] = 0
    mask[2, ..., 4:] = 0
    return ids, types, mask


# unpad=True (the default): padding removed; unpad=False: every position, as 0.6.2 computes it.
MODES = {"unpad": True, "dense": False}


def labels_for(name, seed=2, real=None):
    """Labels of each head; with ``real`` (B, S) bool, masked-LM labels at padded positions are
    -1 (ignored), as a loss over real tokens only (unpad) sees them."""
    labels = _labels_for(name, seed)
    if real is not None and "masked_lm_labels" in labels:
        labels["masked_lm_labels"] = labels["masked_lm_labels"].masked_fill(~real, -1)
    return labels


def _labels_for(name, seed):
    gen = torch.Generator().manual_seed(seed)
    if name == "BertForPreTraining":
        mlm = torch.randint(0, VOCAB, (B, S), generator=gen)
        mlm[:, ::2] = -1
        return dict(masked_lm_labels=mlm, next_sentence_label=torch.tensor([0, 1, -1]))
    if name == "BertForMaskedLM":
        mlm = torch.randint(0, VOCAB, (B, S), generator=gen)
        mlm[:, 1::3] = -1
        return dict(masked_lm_labels=mlm)
    if name == "BertForNextSentencePrediction":
        return dict(next_sentence_label=torch.tensor([1, 0, 1]))
    if name == "BertForSequenceClassification":
        return dict(labels=torch.tensor([0, 2, 1]))
    if name == "BertForMultipleChoice":
        return dict(labels=torch.tensor([3, 0, 1]))
    if name == "BertForTokenClassification":
        return dict(labels=torch.randint(0, 3, (B, S), generator=gen))
    if name == "BertForQuestionAnswering":          # 40 and 11 are outside: ignored / clamped
        return dict(start_positions=torch.tensor([1, 40, 5]), end_positions=torch.tensor([3, 11, 9]))
    raise AssertionError(name)


HEADS = {  # name -> constructor extra args
    "BertModel": (), "BertForPreTraining": (), "BertForMaskedLM": (),
    "BertForNextSentencePrediction": (), "BertForSequenceClassification": (3,),
    "BertForMultipleChoice": (4,), "BertForTokenClassification": (3,),
    "BertForQuestionAnswering": (),
}


def pair(name, config, unpad=True):
    """(ours, 0.6.2's) with the same random weights."""
    args = HEADS[name]
    ours = getattr(modeling, name)(config, *args)
    ours.unpad = unpad
    randomize(ours)
    theirs = getattr(old, name)(old_config(config), *args)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours, theirs


def inputs_for(name):
    return batch(choices=4 if name == "BertForMultipleChoice" else None)


def as_unpadded(out, mask, name):
    """0.6.2's outputs as the unpadded path gives them: per-token outputs ((B, S, ...) tensors)
    zero at padded positions, question answering's logits -10000 there."""
    fill = unpadding.MASKED_LOGIT if name == "BertForQuestionAnswering" else 0.0
    padded = mask == 0

    def fix(t):
        if isinstance(t, (tuple, list)):
            return type(t)(fix(x) for x in t)
        if mask.dim() == 2 and t.shape[:2] == mask.shape:
            return t.masked_fill(padded.reshape(*mask.shape, *[1] * (t.dim() - 2)), fill)
        return t
    return fix(out)


def qa_loss(start_logits, end_logits, start_positions, end_positions):
    """0.6.2's question-answering loss, on given logits."""
    ignored = start_logits.size(1)
    loss = CrossEntropyLoss(ignore_index=ignored)
    return (loss(start_logits, start_positions.clamp(0, ignored))
            + loss(end_logits, end_positions.clamp(0, ignored))) / 2


def reference_loss(theirs, name, inputs, labels, unpad):
    """0.6.2's loss; with unpad, question answering's from its logits masked at padded
    positions (the softmax over positions covers real tokens only)."""
    if unpad and name == "BertForQuestionAnswering":
        start, end = as_unpadded(theirs(*inputs), inputs[2], name)
        return qa_loss(start, end, labels["start_positions"], labels["end_positions"])
    return theirs(*inputs, **{k: v.clone() for k, v in labels.items()})


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(HEADS))
def test_eval_outputs_and_losses_equal_0_6_2(name, mode):
    unpad = MODES[mode]
    ours, theirs = pair(name, tiny_config(), unpad)
    ours.eval(), theirs.eval()
    ids, types, mask = inputs_for(name)
    expect = (lambda out: as_unpadded(out, mask, name)) if unpad else (lambda out: out)
    with torch.no_grad():
        assert_close(ours(ids, types, mask), expect(theirs(ids, types, mask)))
        assert_close(ours(ids), theirs(ids))                     # no types, no mask
        if name == "BertModel":
            assert_close(ours(ids, types, mask, output_all_encoded_layers=False),
                         expect(theirs(ids, types, mask, output_all_encoded_layers=False)))
            layers, _ = ours(ids, types, mask)
            assert isinstance(layers, list) and len(layers) == TINY["num_hidden_layers"]
        else:
            labels = labels_for(name, real=mask != 0 if unpad else None)
            ours_loss = ours(ids, types, mask, **{k: v.clone() for k, v in labels.items()})
            theirs_loss = reference_loss(theirs, name, (ids, types, mask), labels, unpad)
            assert ours_loss.dim() == 0
            assert_close(ours_loss, theirs_loss)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(HEADS))
def test_train_mode_losses_and_gradients_equal_0_6_2(name, mode):
    unpad = MODES[mode]
    ours, theirs = pair(name, tiny_config(dropout=0.0), unpad)
    ours.train(), theirs.train()
    ids, types, mask = inputs_for(name)
    if name == "BertModel":
        out_ours, out_theirs = ours(ids, types, mask), theirs(ids, types, mask)
        if unpad:
            out_theirs = as_unpadded(out_theirs, mask, name)
        loss_ours = sum(t.square().sum() for t in as_list(out_ours))
        loss_theirs = sum(t.square().sum() for t in as_list(out_theirs))
    else:
        labels = labels_for(name, real=mask != 0 if unpad else None)
        loss_ours = ours(ids, types, mask, **{k: v.clone() for k, v in labels.items()})
        loss_theirs = reference_loss(theirs, name, (ids, types, mask), labels, unpad)
    assert_close(loss_ours, loss_theirs)
    loss_ours.backward()
    loss_theirs.backward()
    grads_ours = {k: p.grad for k, p in ours.named_parameters()}
    grads_theirs = {k: p.grad for k, p in theirs.named_parameters()}
    assert set(grads_ours) == set(grads_theirs)
    assert any(g is not None for g in grads_theirs.values())
    for key, grad in grads_theirs.items():
        if grad is None:                               # e.g. the pooler under an MLM-only head
            assert grads_ours[key] is None, key
            continue
        assert grads_ours[key] is not None, key
        assert_close(grads_ours[key], grad, what=key)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("act", ["relu", "swish"])
def test_other_activations_equal_0_6_2(act, mode):
    ours, theirs = pair("BertForMaskedLM", tiny_config(hidden_act=act), MODES[mode])
    ids, types, mask = batch()
    with torch.no_grad():
        expected = theirs.eval()(ids, types, mask)
        if MODES[mode]:
            expected = as_unpadded(expected, mask, "BertForMaskedLM")
        assert_close(ours.eval()(ids, types, mask), expected)


def test_parameter_names_and_tied_decoder():
    model = modeling.BertForPreTraining(tiny_config())
    names = [k for k, _ in model.named_parameters()]
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    assert "bert.embeddings.LayerNorm.weight" in names
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    theirs = old.BertForPreTraining(old_config(tiny_config()))
    assert list(model.state_dict()) == list(theirs.state_dict())


# -- transformers ------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(MODES))
def test_bert_model_equals_transformers_sdpa(tmp_path, mode):
    transformers = pytest.importorskip("transformers", reason="transformers not installed")
    hf_config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_act="gelu", attn_implementation="sdpa",
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, **TINY)
    torch.manual_seed(0)
    hf = transformers.BertModel(hf_config).eval()
    randomize(hf, seed=5)
    hf.save_pretrained(tmp_path)                      # config.json + model.safetensors
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    hf = transformers.BertModel.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    ours = modeling.BertModel.from_pretrained(tmp_path, unpad=MODES[mode])
    ids, types, mask = batch()
    with torch.no_grad():
        expected = hf(input_ids=ids, token_type_ids=types, attention_mask=mask)
        hidden, pooled = ours(ids, types, mask, output_all_encoded_layers=False)
        want_hidden = expected.last_hidden_state
        if MODES[mode]:
            want_hidden = as_unpadded(want_hidden, mask, "BertModel")
        for got, want in ((hidden, want_hidden), (pooled, expected.pooler_output)):
            # padded positions: transformers masks with the dtype minimum, Google with -10000;
            # both give weights that underflow to 0, so every row agrees
            assert_close(got, want)


# -- the fused query/key/value path -------------------------------------------------------------
def packed_qkv_weight(attention):
    """The (3H, H) view of the three projection weights when they are packed, else None."""
    return fast_path.adjacent_rows((attention.query.weight, attention.key.weight,
                                    attention.value.weight))


def test_fused_projection_is_zero_copy_and_matches_the_unfused_path():
    model = modeling.BertModel(tiny_config()).eval()
    randomize(model)
    attention = model.encoder.layer[0].attention.self
    with torch.no_grad():
        weight = packed_qkv_weight(attention)
        assert weight is not None and weight.data_ptr() == attention.query.weight.data_ptr()
        ids, types, mask = batch()
        fused = model(ids, types, mask)
    unfused = model(ids, types, mask)                 # grad mode: concatenated copies
    assert_close(fused, unfused, tol=1e-6)


def test_fused_projection_survives_dtype_changes_and_weight_replacement():
    model = modeling.BertModel(tiny_config()).eval()
    randomize(model)
    ids, types, mask = batch()
    with torch.no_grad():
        reference = model(ids, types, mask)[1].double()
        model.double()
        attention = model.encoder.layer[1].attention.self
        weight = packed_qkv_weight(attention)
        assert weight is not None and weight.dtype == torch.float64
        assert weight.data_ptr() == attention.query.weight.data_ptr()   # packed again
        assert_close(model(ids, types, mask)[1], reference)
        # a weight replaced from outside: the concatenating fallback stays correct
        attention.value.weight = torch.nn.Parameter(attention.value.weight.clone() * 2)
        changed = model(ids, types, mask)[1]
        attention.value.weight.data.mul_(0.5)
        restored = model(ids, types, mask)[1]
    assert (changed - reference).abs().max().item() > 1e-3
    assert_close(restored, reference)


def test_frozen_projection_under_grad_mode_still_trains_the_rest():
    model = modeling.BertModel(tiny_config(dropout=0.0))
    for module in model.modules():
        if isinstance(module, modeling.BertSelfAttention):
            for p in module.parameters():
                p.requires_grad_(False)
    ids, _, _ = batch()
    model(ids)[1].sum().backward()
    assert model.embeddings.word_embeddings.weight.grad is not None
    assert model.encoder.layer[0].attention.self.query.weight.grad is None


def test_bfloat16_forward_is_close_to_float32():
    model = modeling.BertModel(tiny_config()).eval()
    ids, types, mask = batch()
    with torch.no_grad():
        full = model(ids, types, mask, output_all_encoded_layers=False)[0]
        half = model.to(torch.bfloat16)(ids, types, mask, output_all_encoded_layers=False)[0]
    assert half.dtype == torch.bfloat16
    assert_close(half.float(), full, tol=0.05)


# -- constructor and input validation -----------------------------------------------------------
def test_constructor_errors():
    with pytest.raises(ConfigError, match=r"must be a BertConfig, got dict.*from_pretrained"):
        modeling.BertModel({"vocab_size": 10})
    with pytest.raises(ConfigError, match=r"num_labels must be a positive integer, got 0"):
        modeling.BertForSequenceClassification(tiny_config(), 0)
    with pytest.raises(ConfigError, match=r"num_choices must be a positive integer, got 1.5"):
        modeling.BertForMultipleChoice(tiny_config(), 1.5)
    # 0.6.2's BertConfig is accepted and converted
    model = modeling.BertModel(old_config(tiny_config()))
    assert isinstance(model.config, BertConfig)


def bad_input_cases():
    ids, types, mask = batch()
    long_ids = torch.zeros(1, TINY["max_position_embeddings"] + 1, dtype=torch.long)
    return [
        (dict(input_ids=[[1, 2, 3]]),
         r"input_ids must be a torch.LongTensor of shape \[batch_size, sequence_length\], got list"),
        (dict(input_ids=ids[0]), r"must have shape \[batch_size, sequence_length\], got shape "
                                 r"\(11,\); add a batch dimension"),
        (dict(input_ids=ids[:, :0]), r"input_ids is empty \(shape \(3, 0\)\)"),
        (dict(input_ids=long_ids), r"sequence length 65 is longer than max_position_embeddings "
                                   r"\(64\); truncate the input to 64 tokens"),
        (dict(input_ids=ids.float()), r"input_ids must hold integer ids \(torch.long\), got dtype "
                                      r"torch.float32"),
        (dict(input_ids=ids + VOCAB), r"input_ids contains \d+, but vocab_size is 99; ids must be "
                                      r"in \[0, 99\)"),
        (dict(input_ids=ids - 200), r"input_ids contains -\d+, a negative id; ids must be in "
                                    r"\[0, vocab_size=99\)"),
        (dict(input_ids=ids, token_type_ids=types + 3),
         r"token_type_ids contains \d+, but type_vocab_size is 3; ids must be in \[0, 3\)"),
        (dict(input_ids=ids, token_type_ids=types[:, :5]),
         r"token_type_ids has shape \(3, 5\) but input_ids has shape \(3, 11\); they must match"),
        (dict(input_ids=ids, attention_mask=mask[:2]),
         r"attention_mask has shape \(2, 11\) but input_ids has shape \(3, 11\); they must match"),
        (dict(input_ids=ids, attention_mask=mask.tolist()),
         r"attention_mask must be a tensor, got list"),
    ]


@pytest.mark.parametrize("case", range(len(bad_input_cases())))
def test_input_validation_messages(case):
    kwargs, message = bad_input_cases()[case]
    model = modeling.BertForSequenceClassification(tiny_config(), 3).eval()
    with pytest.raises(InvalidInputError, match=message) as info:
        model(**kwargs)
    assert isinstance(info.value, ValueError)


def test_multiple_choice_validation_messages():
    model = modeling.BertForMultipleChoice(tiny_config(), 4).eval()
    ids, types, mask = batch(choices=4)
    with pytest.raises(InvalidInputError, match=r"input_ids has 3 choices \(shape \(3, 3, 11\)\) "
                                                r"but the model was built with num_choices=4"):
        model(ids[:, :3])
    with pytest.raises(InvalidInputError, match=r"must have shape \[batch_size, num_choices, "
                                                r"sequence_length\], got shape \(3, 11\)"):
        model(ids[:, 0])
    with pytest.raises(InvalidInputError, match=r"token_type_ids has shape \(3, 4, 10\)"):
        model(ids, types[..., :10])


# -- the oneDNN inference path ------------------------------------------------------------------
def _ops_run(model, *args):
    from torch.profiler import profile
    with torch.no_grad(), profile() as prof:
        out = model(*args)
    return out, {event.key for event in prof.key_averages()}


@pytest.mark.skipif(not (torch.backends.mkldnn.is_available()
                         and hasattr(torch.ops.mkldnn, "_linear_pointwise")),
                    reason="this torch build has no oneDNN linear")
@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_onednn_path_is_used_and_equals_the_plain_path(monkeypatch, act):
    monkeypatch.setattr(fast_path, "ENABLED", True)        # whatever the suite's kernel mode
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", True)
    model = modeling.BertModel(tiny_config(hidden_act=act)).eval()
    randomize(model)
    ids, types, mask = batch()
    fast, ops = _ops_run(model, ids, types, mask)
    assert "mkldnn::_linear_pointwise" in ops
    monkeypatch.setattr(fast_path, "ENABLED", False)
    plain, ops = _ops_run(model, ids, types, mask)
    assert "mkldnn::_linear_pointwise" not in ops
    assert_close(fast, plain)


def test_the_switch_still_answers_to_its_old_name(monkeypatch):
    """``modeling.USE_ONEDNN`` (the switch's first home) reads and sets ``fast_path.ENABLED``."""
    monkeypatch.setattr(fast_path, "ENABLED", True)   # restored afterwards, whatever the mode
    assert modeling.USE_ONEDNN is fast_path.ENABLED is True
    modeling.USE_ONEDNN = False
    assert fast_path.ENABLED is False
    modeling.USE_ONEDNN = True
    assert fast_path.ENABLED is True


@pytest.mark.parametrize("mode", list(MODES))
def test_forward_hooks_on_dense_layers_still_run(mode):
    """Inner layers see (B, S, ...) tensors, or the packed real tokens (T, ...) of a padded
    batch when padding is removed."""
    model = modeling.BertModel(tiny_config()).eval()
    model.unpad = MODES[mode]
    seen = []
    model.encoder.layer[1].intermediate.dense.register_forward_hook(
        lambda module, inputs, output: seen.append(tuple(output.shape)))
    ids, types, mask = batch()
    with torch.no_grad():
        hooked = model(ids, types, mask)
    rows = (int(mask.sum()),) if MODES[mode] else (B, S)
    assert seen == [rows + (TINY["intermediate_size"],)]
    model.encoder.layer[1].intermediate.dense._forward_hooks.clear()
    with torch.no_grad():
        assert_close(hooked, model(ids, types, mask))
