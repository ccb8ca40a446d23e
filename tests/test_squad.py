"""SQuAD reading, Google's windows and answer spans, n-best post-processing and the official
evaluation against hand-computed cases."""
import json
import math

import pytest

from bert_hub.errors import DataFormatError, EntryNotFoundError
from bert_hub.tasks import squad
from bert_hub.tokenization import BertTokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "leader", "was", "john", "smith",
         "(", ")", "-", "1895", "1943", ".", "who", "?", "cat", "sat", "on", "mat", "where",
         "did", "steve", "'", "s", "un", "##want", "##ed", "t0", "t1", "t2", "t3", "t4", "t5",
         "t6", "t7", "t8", "t9", "q"]


@pytest.fixture
def tokenizer(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return BertTokenizer(str(vocab), do_lower_case=True)


def squad_file(tmp_path, paragraphs, name="train.json", version="1.1"):
    path = tmp_path / name
    path.write_text(json.dumps({"version": version, "data": [
        {"title": "T", "paragraphs": paragraphs}]}), encoding="utf-8")
    return str(path)


def test_whitespace_split_keeps_char_to_word_offsets():
    tokens, offsets = squad.split_on_whitespace("a  bc\td\u202fe")
    assert tokens == ["a", "bc", "d", "e"]
    assert offsets == [0, 0, 0, 1, 1, 1, 2, 2, 3]


def test_read_v1_and_v2_examples(tmp_path):
    context = "The leader was John Smith (1895-1943)."
    start = context.index("1895")
    path = squad_file(tmp_path, [{"context": context, "qas": [
        {"id": "q1", "question": "Who?", "answers": [{"text": "John Smith", "answer_start": 15}]},
        {"id": "q2", "question": "When?", "answers": [{"text": "1895", "answer_start": start}]},
    ]}])
    q1, q2 = squad.read_squad_examples(path, is_training=True)
    assert q1.doc_tokens == ["The", "leader", "was", "John", "Smith", "(1895-1943)."]
    assert (q1.start_position, q1.end_position, q1.orig_answer_text) == (3, 4, "John Smith")
    assert (q2.start_position, q2.end_position) == (5, 5)

    path2 = squad_file(tmp_path, [{"context": context, "qas": [
        {"id": "n1", "question": "Where?", "answers": [], "is_impossible": True},
        {"id": "a1", "question": "Who?", "is_impossible": False,
         "answers": [{"text": "leader", "answer_start": 4}]}]}], name="v2.json")
    n1, a1 = squad.read_squad_examples(path2, is_training=True, version_2_with_negative=True)
    assert n1.is_impossible and (n1.start_position, n1.end_position, n1.orig_answer_text) == \
        (-1, -1, "")
    assert not a1.is_impossible and a1.start_position == 1
    # prediction files need no answers at all
    (e,) = squad.read_squad_examples(squad_file(tmp_path, [{"context": "x y", "qas": [
        {"id": "p", "question": "q"}]}], name="p.json"), is_training=False)
    assert e.start_position is None and e.doc_tokens == ["x", "y"]


def test_answer_not_in_context_is_skipped(tmp_path, caplog):
    path = squad_file(tmp_path, [{"context": "alpha beta gamma", "qas": [
        {"id": "q", "question": "?", "answers": [{"text": "delta", "answer_start": 6}]}]}])
    assert squad.read_squad_examples(path, is_training=True) == []
    assert "Could not find answer" in caplog.text


def test_improve_answer_span_finds_the_word_piece_answer(tokenizer):
    # word-level span of "1895" is the whole "(1895-1943)." word: ( 1895 - 1943 ) .
    doc = tokenizer.tokenize("The leader was John Smith (1895-1943).")
    assert doc[5:] == ["(", "1895", "-", "1943", ")", "."]
    assert squad.improve_answer_span(doc, 5, 10, tokenizer, "1895") == (6, 6)
    assert squad.improve_answer_span(doc, 5, 10, tokenizer, "not there") == (5, 10)


def test_doc_spans_stride_and_max_context(tokenizer):
    # 10 doc tokens, 1 query token, max_seq_length 10 -> 6 doc tokens per window, stride 3:
    # windows [0..5], [3..8], [6..9]
    example = squad.SquadExample("x", "q", [f"t{i}" for i in range(10)], "t7", 7, 7)
    features = squad.convert_examples_to_features([example], tokenizer, 10, 3, 64, True)
    assert [f.doc_span_index for f in features] == [0, 1, 2]
    assert features[0].tokens == ["[CLS]", "q", "[SEP]", "t0", "t1", "t2", "t3", "t4", "t5",
                                  "[SEP]"]
    assert features[2].tokens[3:7] == ["t6", "t7", "t8", "t9"]
    assert [f.unique_id for f in features] == [1000000000, 1000000001, 1000000002]
    assert features[0].segment_ids == [0, 0, 0] + [1] * 7
    assert features[2].input_mask == [1] * 8 + [0, 0]
    assert features[1].token_to_orig_map[3] == 3
    # t4: window 0 has min(4, 1) + .06, window 1 min(1, 4) + .06 -> the first wins ties
    assert features[0].token_is_max_context[3 + 4] and not features[1].token_is_max_context[3 + 1]
    # t5: window 1 (min(2, 3)) beats window 0 (min(5, 0)); t8: window 2 (min(2,1)) beats 1
    assert features[1].token_is_max_context[3 + 2] and not features[0].token_is_max_context[3 + 5]
    assert features[2].token_is_max_context[3 + 2] and not features[1].token_is_max_context[3 + 5]
    # the answer t7 lies in windows 1 and 2 only; window 0 points at [CLS]
    assert [(f.start_position, f.end_position) for f in features] == [(0, 0), (7, 7), (4, 4)]


def test_impossible_examples_point_at_cls(tokenizer):
    example = squad.SquadExample("x", "q", ["t1", "t2"], "", -1, -1, is_impossible=True)
    (feature,) = squad.convert_examples_to_features([example], tokenizer, 16, 8, 8, True)
    assert (feature.start_position, feature.end_position, feature.is_impossible) == (0, 0, True)


def test_get_final_text_maps_back_to_original_case_and_punctuation():
    assert squad.get_final_text("steve smith", "Steve Smith's", True) == "Steve Smith"
    assert squad.get_final_text("1895", "(1895-1943).", True) == "1895"
    # not found after tokenization: the whole original span
    assert squad.get_final_text("zzz", "Steve Smith's", True) == "Steve Smith's"


def _prediction_setup(tokenizer, v2=False):
    context = "The cat sat on the mat ."
    example = squad.SquadExample("q1", "Where did the cat sit?", context.split())
    features = squad.convert_examples_to_features([example], tokenizer, 32, 8, 8, False)
    (feature,) = features
    n = len(feature.tokens)
    start, end = [0.0] * 32, [0.0] * 32
    i_the2 = feature.tokens.index("mat") - 1  # "the" before "mat"
    start[i_the2], end[i_the2 + 1] = 5.0, 5.0  # "the mat": 10
    start[i_the2 + 1] = 4.0  # "mat": 4 + 5 = 9
    start[1], end[1] = 20.0, 20.0  # in the question: never an answer
    start[n + 2], end[n + 2] = 30.0, 30.0  # padding: never an answer
    start[0], end[0] = 3.0, 2.0  # [CLS]: the null score 5
    return example, feature, squad.RawResult(feature.unique_id, start, end)


def test_compute_predictions_v1_nbest(tokenizer):
    example, feature, result = _prediction_setup(tokenizer)
    preds, nbest, null_odds = squad.compute_predictions([example], [feature], [result], 5, 30,
                                                        True)
    assert preds == {"q1": "the mat"}
    texts = [e["text"] for e in nbest["q1"]]
    assert texts[:2] == ["the mat", "mat"]
    assert nbest["q1"][0]["start_logit"] == 5.0 and nbest["q1"][0]["end_logit"] == 5.0
    assert sum(e["probability"] for e in nbest["q1"]) == pytest.approx(1.0)
    assert nbest["q1"][0]["probability"] > nbest["q1"][1]["probability"]
    assert null_odds == {}
    # max_answer_length 1 leaves only one-token answers
    preds, _, _ = squad.compute_predictions([example], [feature], [result], 5, 1, True)
    assert preds == {"q1": "mat"}


def test_compute_predictions_v2_null_threshold(tokenizer, tmp_path):
    example, feature, result = _prediction_setup(tokenizer, v2=True)
    # null score 3 + 2 = 5, best non-null 10: score_diff = -5
    preds, nbest, null_odds = squad.compute_predictions(
        [example], [feature], [result], 3, 30, True, version_2_with_negative=True)
    assert null_odds == {"q1": pytest.approx(-5.0)} and preds == {"q1": "the mat"}
    assert "" in [e["text"] for e in nbest["q1"]]
    preds, _, _ = squad.compute_predictions(
        [example], [feature], [result], 3, 30, True, version_2_with_negative=True,
        null_score_diff_threshold=-6.0)
    assert preds == {"q1": ""}
    paths = squad.write_predictions(str(tmp_path / "out"), preds, nbest, null_odds)
    assert json.load(open(paths["null_odds"])) == {"q1": -5.0}
    assert json.load(open(paths["predictions"])) == {"q1": ""}
    assert json.load(open(paths["nbest"]))["q1"][0]["text"] == "the mat"


# ---------------------------------------------------------------------------- official metric
def test_normalisation_edge_cases():
    assert squad.normalize_answer("The  Cat!") == "cat"
    assert squad.normalize_answer("an apple a day") == "apple day"
    assert squad.normalize_answer("Theater, anthem") == "theater anthem"  # words, not prefixes
    assert squad.normalize_answer("A.B.C.") == "abc"
    assert squad.normalize_answer("  Hello,\tworld \n") == "hello world"
    assert squad.normalize_answer("the") == ""


def test_exact_and_f1_hand_computed():
    assert squad.exact_match_score("The Eiffel Tower.", "eiffel  tower") == 1
    assert squad.exact_match_score("Eiffel", "Eiffel Tower") == 0
    # pred tokens {big, red, dog}, gold {red, dog}: P = 2/3, R = 1 -> 0.8
    assert squad.f1_score("the big red dog", "red dog") == pytest.approx(0.8)
    assert squad.f1_score("x y y", "y y z") == pytest.approx(2 / 3)  # counts, not sets
    assert squad.f1_score("a b b", "b b c") == pytest.approx(0.8)  # "a" is an article
    assert squad.f1_score("", "") == 1.0 and squad.f1_score("x", "") == 0.0
    assert squad.f1_score("", "", version_2=False) == 0.0


def _dataset(qas):
    return [{"title": "T", "paragraphs": [{"context": "c", "qas": qas}]}]


def test_evaluate_v1_takes_the_best_gold_and_counts_missing_as_zero():
    dataset = _dataset([
        {"id": "a", "question": "?", "answers": [{"text": "Denver Broncos", "answer_start": 0},
                                                 {"text": "the Broncos", "answer_start": 0}]},
        {"id": "b", "question": "?", "answers": [{"text": "red dog", "answer_start": 0}]},
        {"id": "c", "question": "?", "answers": [{"text": "x", "answer_start": 0}]},
    ])
    result = squad.evaluate_v1(dataset, {"a": "Broncos", "b": "the big red dog"})
    # a: EM 1 (matches "the Broncos"), F1 1; b: EM 0, F1 .8; c: missing -> 0
    assert result["exact_match"] == pytest.approx(100 / 3)
    assert result["f1"] == pytest.approx(100 * 1.8 / 3)


def test_evaluate_v2_splits_and_best_thresholds():
    dataset = _dataset([
        {"id": "q1", "question": "?", "answers": [{"text": "Paris", "answer_start": 0}]},
        {"id": "q2", "question": "?", "answers": []},
        {"id": "q3", "question": "?", "answers": [{"text": "in 1990", "answer_start": 0}]},
        {"id": "q4", "question": "?", "answers": []},
        {"id": "q5", "question": "?", "answers": [{"text": "the", "answer_start": 0}]},
    ])
    preds = {"q1": "paris", "q2": "London", "q3": "1990 or so", "q4": "", "q5": ""}
    na = {"q1": 0.2, "q2": 0.9, "q3": 0.5, "q4": 0.1, "q5": 0.3}
    result = squad.evaluate_v2(dataset, preds, na)
    # raw exact: q1 1, q2 0, q3 0, q4 1 (both empty), q5 1 (gold "the" normalises to nothing)
    # raw f1: q3: {1990} in common, P 1/3, R 1/2 -> 0.4
    assert result["total"] == 5 and result["HasAns_total"] == 3 and result["NoAns_total"] == 2
    assert result["exact"] == pytest.approx(60.0)
    assert result["f1"] == pytest.approx(100 * 3.4 / 5)
    assert result["HasAns_exact"] == pytest.approx(100 * 2 / 3)
    assert result["HasAns_f1"] == pytest.approx(100 * 2.4 / 3)
    assert result["NoAns_exact"] == pytest.approx(50.0)
    # best threshold (exact): start at 2 (no-answer questions), in na order:
    # q4 (no ans, empty pred) +0 -> 2; q1 +1 -> 3 @0.2; q5 +1 -> 4 @0.3; q3 +0; q2 -1 -> 3
    assert result["best_exact"] == pytest.approx(80.0)
    assert result["best_exact_thresh"] == pytest.approx(0.3)
    # f1: same but q3 adds .4 -> 4.4 @0.5, then q2 -1
    assert result["best_f1"] == pytest.approx(100 * 4.4 / 5)
    assert result["best_f1_thresh"] == pytest.approx(0.5)
    # na_probs above the threshold turn predictions into "no answer"
    low = squad.evaluate_v2(dataset, preds, na, na_prob_thresh=0.4)
    # q2 (0.9) and q3 (0.5) predicted no answer: q2 -> 1, q3 -> 0
    assert low["exact"] == pytest.approx(80.0)
    with pytest.raises(ValueError, match="1 questions have no prediction"):
        squad.evaluate_v2(dataset, {k: v for k, v in preds.items() if k != "q3"})


# ---------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path):
    with pytest.raises(EntryNotFoundError, match=r"SQuAD file .*nope\.json does not exist"):
        squad.read_squad_examples(str(tmp_path / "nope.json"), is_training=True)


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"version": "1.1",\n "data": [\n {"title": "x",, }]}', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.json, line 3 column 16: not valid JSON"):
        squad.read_squad_examples(str(path), is_training=True)
    path.write_text('[1, 2]', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.json, line 1: not a SQuAD file"):
        squad.read_squad_examples(str(path), is_training=True)


def test_malformed_questions_name_file_line_and_id(tmp_path):
    path = tmp_path / "bad.json"
    text = json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [
        {"id": "ok", "question": "?", "answers": [{"text": "a", "answer_start": 0}]},
        {"id": "two", "question": "?", "answers": [{"text": "a", "answer_start": 0},
                                                   {"text": "b", "answer_start": 2}]}]}]}]},
                      indent=1)
    path.write_text(text, encoding="utf-8")
    line = text[:text.index('"two"')].count("\n") + 1
    with pytest.raises(DataFormatError, match=rf"bad\.json, line {line} column \d+: question "
                                              r"'two': for training, each answerable question "
                                              r"needs exactly 1 answer, found 2"):
        squad.read_squad_examples(str(path), is_training=True)
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [
        {"id": "noq", "answers": []}]}]}]}), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"question 'noq': missing field 'question'"):
        squad.read_squad_examples(str(path), is_training=False)
    path.write_text(json.dumps({"data": [{"paragraphs": [{"qas": []}]}]}), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"a paragraph needs a 'context' string"):
        squad.read_squad_examples(str(path), is_training=False)
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "a b", "qas": [
        {"id": "far", "question": "?", "answers": [{"text": "a", "answer_start": 99}]}]}]}]}),
        encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"question 'far': answer_start 99 is outside"):
        squad.read_squad_examples(str(path), is_training=True)


def test_softmax_is_stable():
    probs = squad._compute_softmax([1000.0, 1000.0 + math.log(3)])
    assert probs == pytest.approx([0.25, 0.75])
