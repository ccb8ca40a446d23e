"""GLUE processors on files in the official layouts, Google's pair truncation and features, and
the metrics against hand-computed values."""
import math

import pytest

from bert_hub.errors import DataFormatError, EntryNotFoundError, UnknownTaskError
from bert_hub.tasks import glue


class WhitespaceTokenizer:
    """The smallest tokenizer the feature code accepts: split on spaces, ids from a list."""

    def __init__(self, words):
        self.vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + words)}

    def tokenize(self, text):
        return text.split()

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab.get(t, 1) for t in tokens]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# A few rows of each official file, columns as download_glue_data.py writes them.
OFFICIAL = {
    "cola": {
        "train.tsv": ["gj04\t1\t\tOur friends won't buy this analysis, let alone the next one.",
                      "gj04\t0\t*\tOne more pseudo generalization and I'm giving up."],
        "dev.tsv": ["gj04\t1\t\tThe sailors rode the breeze clear of the rocks."],
        "test.tsv": ["index\tsentence", "0\tBill whistled past the house."],
    },
    "sst-2": {
        "train.tsv": ["sentence\tlabel", "hide new secretions from the parental units \t0"],
        "dev.tsv": ["sentence\tlabel", "it 's a charming and often affecting journey . \t1"],
        "test.tsv": ["index\tsentence", "0\tuneasy mishmash of styles and genres ."],
    },
    "mrpc": {
        "train.tsv": ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                      "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him , Amrozi ."],
        "dev.tsv": ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                    "0\t1\t2\tHe said \"yes\" .\tShe said no ."],
        "test.tsv": ["index\t#1 ID\t#2 ID\t#1 String\t#2 String",
                     "0\t1089874\t1089925\tPCCW 's chief .\tCurrent Chief ."],
    },
    "sts-b": {
        "train.tsv": ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1"
                      "\tsentence2\tscore",
                      "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off."
                      "\tAn air plane is taking off.\t5.000"],
        "dev.tsv": ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1"
                    "\tsentence2\tscore",
                    "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a hat."
                    "\tA man is dancing.\t1.750"],
        "test.tsv": ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1"
                     "\tsentence2",
                     "0\tmain-captions\tMSRvid\t2012test\t0024\tnone\tnone\tA girl styles hair."
                     "\tA girl brushes her hair."],
    },
    "qqp": {
        "train.tsv": ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                      "133273\t213221\t213222\tHow is air traffic controlled?\tHow do you become"
                      " an air traffic controller?\t0"],
        "dev.tsv": ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
                    "201359\t303345\t303346\tWhy are African-Americans so beautiful?\tWhy are "
                    "hispanics so beautiful?\t1"],
        "test.tsv": ["id\tquestion1\tquestion2", "0\tWould the idea work?\tIs it a good idea?"],
    },
    "mnli": {
        "train.tsv": ["index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
                      "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\t"
                      "sentence2\tlabel1\tgold_label",
                      "0\t31193\t31193n\tgovernment\t( ( x ) )\t( y )\t(ROOT x)\t(ROOT y)\t"
                      "Conceptually cream skimming has two dimensions.\tProduct and geography "
                      "are what make cream skimming work.\tneutral\tneutral"],
        "dev_matched.tsv": ["index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
                            "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\t"
                            "sentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label",
                            "0\t63735\t63735n\tslate\t( x )\t( y )\t(ROOT x)\t(ROOT y)\tThe new "
                            "rights are nice enough\tEveryone really likes the newest benefits\t"
                            "neutral\tentailment\tneutral\tneutral\tneutral\tneutral"],
        "dev_mismatched.tsv": ["index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
                               "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
                               "sentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\t"
                               "gold_label",
                               "0\t75290\t75290c\tletters\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t"
                               "Your contribution helped.\tYour contributions were of no help.\t"
                               "contradiction\tcontradiction\tcontradiction\tcontradiction\t"
                               "contradiction\tcontradiction"],
        "test_matched.tsv": ["index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
                             "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
                             "sentence1\tsentence2",
                             "0\t31349\t31349\tgovernment\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t"
                             "Hierarchy is fine.\tIt is not fine."],
    },
    "qnli": {
        "train.tsv": ["index\tquestion\tsentence\tlabel",
                      "0\tWhen did the third Digimon series begin?\tUnlike the two seasons "
                      "before it, it was darker.\tnot_entailment"],
        "dev.tsv": ["index\tquestion\tsentence\tlabel",
                    "0\tWhat came into force after the new constitution?\tThe Senate came into "
                    "force.\tentailment"],
        "test.tsv": ["index\tquestion\tsentence", "0\tWhat is it?\tIt is a test."],
    },
    "rte": {
        "train.tsv": ["index\tsentence1\tsentence2\tlabel",
                      "0\tNo Weapons of Mass Destruction Found in Iraq Yet.\tWeapons of Mass "
                      "Destruction Found in Iraq.\tnot_entailment"],
        "dev.tsv": ["index\tsentence1\tsentence2\tlabel",
                    "0\tDana Reeve died of lung cancer.\tChristopher Reeve had an accident."
                    "\tnot_entailment"],
        "test.tsv": ["index\tsentence1\tsentence2", "0\tMangla was a dam.\tMangla is a dam."],
    },
    "wnli": {
        "train.tsv": ["index\tsentence1\tsentence2\tlabel",
                      "0\tI stuck a pin through a carrot.\tThe carrot had a hole.\t1"],
        "dev.tsv": ["index\tsentence1\tsentence2\tlabel",
                    "0\tThe drain is clogged with hair.\tThe hair has to be cleaned out.\t0"],
        "test.tsv": ["index\tsentence1\tsentence2", "0\tMaude and Dora had seen the trains."
                     "\tHorses had seen the trains."],
    },
}

EXPECTED_DEV = {  # (text_a, text_b, label) of the first dev example
    "cola": ("The sailors rode the breeze clear of the rocks.", None, "1"),
    "sst-2": ("it 's a charming and often affecting journey . ", None, "1"),
    "mrpc": ('He said "yes" .', "She said no .", "0"),
    "sts-b": ("A man with a hat.", "A man is dancing.", 1.75),
    "qqp": ("Why are African-Americans so beautiful?", "Why are hispanics so beautiful?", "1"),
    "mnli": ("The new rights are nice enough", "Everyone really likes the newest benefits",
             "neutral"),
    "qnli": ("What came into force after the new constitution?", "The Senate came into force.",
             "entailment"),
    "rte": ("Dana Reeve died of lung cancer.", "Christopher Reeve had an accident.",
            "not_entailment"),
    "wnli": ("The drain is clogged with hair.", "The hair has to be cleaned out.", "0"),
}


@pytest.fixture
def glue_dir(tmp_path):
    def make(task):
        folder = tmp_path / task
        folder.mkdir(exist_ok=True)
        for name, lines in OFFICIAL[task].items():
            write(folder / name, lines)
        return str(folder)
    return make


@pytest.mark.parametrize("task", sorted(EXPECTED_DEV))
def test_processors_read_the_official_layouts(task, glue_dir):
    data_dir = glue_dir(task)
    processor = glue.GlueProcessor(task)
    train = processor.get_train_examples(data_dir)
    dev = processor.get_dev_examples(data_dir)
    test = processor.get_test_examples(data_dir)
    assert len(train) == len(OFFICIAL[task]["train.tsv"]) - (task != "cola")
    assert (dev[0].text_a, dev[0].text_b, dev[0].label) == EXPECTED_DEV[task]
    assert dev[0].guid == "dev-0"
    assert len(test) == 1 and test[0].label is None and test[0].text_a
    assert (test[0].text_b is None) == (EXPECTED_DEV[task][1] is None)


def test_cola_train_has_no_header_and_test_has_one(glue_dir):
    data_dir = glue_dir("cola")
    train = glue.GlueProcessor("CoLA").get_train_examples(data_dir)
    assert [e.label for e in train] == ["1", "0"]
    assert train[0].text_a.startswith("Our friends")
    assert glue.GlueProcessor("cola").get_test_examples(data_dir)[0].text_a == \
        "Bill whistled past the house."


def test_mnli_mismatched_reads_its_own_dev_file(glue_dir):
    data_dir = glue_dir("mnli")
    dev_mm = glue.GlueProcessor("mnli-mm").get_dev_examples(data_dir)
    assert dev_mm[0].label == "contradiction"
    assert glue.get_task("MNLI").labels == ("contradiction", "entailment", "neutral")


def test_task_names_are_case_insensitive_with_aliases():
    assert glue.get_task("SST-2").name == "sst-2"
    assert glue.get_task("sst2").name == "sst-2"
    assert glue.get_task("STS-B").output_mode == "regression"
    assert glue.get_task("sts-b").num_labels == 1
    assert glue.get_task("mnli").num_labels == 3


def test_unknown_task_lists_close_names():
    with pytest.raises(UnknownTaskError, match=r"unknown GLUE task 'mrcp'.*Did you mean 'mrpc'"):
        glue.get_task("mrcp")
    with pytest.raises(UnknownTaskError, match="Known tasks: cola, sst-2"):
        glue.get_task("imdb")


def test_missing_data_file_names_the_file(tmp_path):
    with pytest.raises(EntryNotFoundError, match=r"data file .*train\.tsv does not exist; check "
                                                 r"--data_dir"):
        glue.GlueProcessor("rte").get_train_examples(str(tmp_path))
    assert issubclass(EntryNotFoundError, FileNotFoundError)


def test_row_with_missing_column_names_file_and_line(tmp_path):
    path = write(tmp_path / "train.tsv", [
        "index\tsentence1\tsentence2\tlabel",
        "0\ta\tb\tentailment",
        "1\tonly one sentence\tentailment",
    ])
    with pytest.raises(DataFormatError) as info:
        glue.GlueProcessor("rte").get_train_examples(str(tmp_path))
    message = str(info.value)
    assert f"{path}, line 3: expected 4 tab-separated columns" in message
    assert "found 3" in message and "--skip_malformed_rows" in message


def test_unknown_label_and_bad_score_name_file_and_line(tmp_path):
    write(tmp_path / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tmaybe"])
    with pytest.raises(DataFormatError, match=r"dev\.tsv, line 2: label 'maybe' is not one of "
                                              r"\['entailment', 'not_entailment'\]"):
        glue.GlueProcessor("rte").get_dev_examples(str(tmp_path))
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    write(tmp_path / "train.tsv", [header, "0\tg\tf\ty\to\ts\ts\ta\tb\t4.0",
                                   "1\tg\tf\ty\to\ts\ts\ta\tb\tfive"])
    with pytest.raises(DataFormatError, match=r"train\.tsv, line 3: score 'five' is not a number"):
        glue.GlueProcessor("sts-b").get_train_examples(str(tmp_path))


def test_skip_malformed_rows_keeps_the_good_ones(tmp_path):
    write(tmp_path / "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\t1", "1\tbad",
                                   "2\tc\td\t0"])
    examples = glue.GlueProcessor("wnli", skip_malformed=True).get_train_examples(str(tmp_path))
    assert [(e.text_a, e.label) for e in examples] == [("a", "1"), ("c", "0")]


def test_empty_file_with_header_expected(tmp_path):
    write(tmp_path / "train.tsv", [])
    with pytest.raises(DataFormatError, match=r"train\.tsv: the file is empty"):
        glue.GlueProcessor("sst-2").get_train_examples(str(tmp_path))


def test_truncate_seq_pair_trims_the_longer_one_first():
    a, b = list("abcdefg"), list("xyz")
    glue.truncate_seq_pair(a, b, 6)
    assert a == list("abc") and b == list("xyz")
    a, b = list("abcd"), list("wxyz")
    glue.truncate_seq_pair(a, b, 5)  # equal lengths: b loses first, then a
    assert a == list("abc") and b == list("wx")


def test_features_follow_googles_layout():
    tok = WhitespaceTokenizer("a b c d e f g x y z".split())
    example = glue.InputExample("dev-0", "a b c d e f g", "x y z", "1")
    (feature,) = glue.convert_examples_to_features([example], ["0", "1"], 10, tok)
    assert feature.tokens == ["[CLS]", "a", "b", "c", "d", "[SEP]", "x", "y", "z", "[SEP]"]
    assert feature.segment_ids == [0] * 6 + [1] * 4
    assert feature.input_mask == [1] * 10
    assert feature.input_ids[:2] == [2, tok.vocab["a"]]
    assert feature.label_id == 1

    single = glue.InputExample("dev-1", "a b c d e f g", None, "0")
    (feature,) = glue.convert_examples_to_features([single], ["0", "1"], 6, tok)
    assert feature.tokens == ["[CLS]", "a", "b", "c", "d", "[SEP]"]
    short = glue.InputExample("dev-2", "a b", None, "0")
    (feature,) = glue.convert_examples_to_features([short], ["0", "1"], 6, tok)
    assert feature.input_ids == [2, 4, 5, 3, 0, 0]
    assert feature.input_mask == [1, 1, 1, 1, 0, 0]

    regression = glue.InputExample("dev-3", "a", "b", 3.8)
    (feature,) = glue.convert_examples_to_features([regression], [], 8, tok, "regression")
    assert feature.label_id == pytest.approx(3.8)


def test_features_to_tensors_shapes_and_dtypes():
    torch = pytest.importorskip("torch")
    tok = WhitespaceTokenizer(["a", "b"])
    examples = [glue.InputExample(str(i), "a b", "b", 2.5 * i) for i in range(3)]
    features = glue.convert_examples_to_features(examples, [], 7, tok, "regression")
    tensors = glue.features_to_tensors(features, "regression")
    assert tensors["input_ids"].shape == (3, 7) and tensors["input_ids"].dtype == torch.long
    assert tensors["label_ids"].dtype == torch.float32
    assert tensors["label_ids"].tolist() == [0.0, 2.5, 5.0]


# ---------------------------------------------------------------------------- metrics
def test_accuracy_and_f1_hand_computed():
    assert glue.simple_accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    # tp=2 fp=1 fn=1 -> 2*2 / (2*2 + 1 + 1)
    assert glue.f1_score([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == pytest.approx(4 / 6)
    assert glue.f1_score([0, 0], [0, 0]) == 0.0  # no positives at all


def test_matthews_binary_and_multiclass_hand_computed():
    # tp=2 tn=1 fp=1 fn=1: (2*1 - 1*1) / sqrt(3*3*2*2)
    assert glue.matthews_corrcoef([1, 1, 0, 0, 1], [1, 0, 0, 1, 1]) == pytest.approx(1 / 6)
    assert glue.matthews_corrcoef([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert glue.matthews_corrcoef([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert glue.matthews_corrcoef([1, 1, 1], [1, 0, 1]) == 0.0  # constant prediction
    # confusion [[1,1,0],[0,2,0],[1,0,1]]: (4*6 - t.p) / sqrt((36 - p.p)(36 - t.t)) = 12/sqrt(528)
    preds, labels = [0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 2, 2]
    assert glue.matthews_corrcoef(preds, labels) == pytest.approx(12 / math.sqrt(528))


def test_pearson_and_spearman_hand_computed():
    # deviations (-1.5,-.5,.5,1.5) and (-3,-1,0,4): 11 / sqrt(5 * 26)
    assert glue.pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(11 / math.sqrt(130))
    # ranks with a tie: (1, 2.5, 2.5, 4) vs (1, 3, 2, 4): 4.5 / sqrt(4.5 * 5)
    assert glue.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert glue.spearman([1, 5, 9], [2, 3, 100]) == pytest.approx(1.0)  # monotone, not linear


def test_compute_metrics_per_task():
    assert glue.compute_metrics("cola", [1, 0], [1, 0]) == {"mcc": pytest.approx(1.0)}
    mrpc = glue.compute_metrics("MRPC", [1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert mrpc == pytest.approx({"acc": 0.6, "f1": 4 / 6, "acc_and_f1": (0.6 + 4 / 6) / 2})
    sts = glue.compute_metrics("sts-b", [1, 2, 3, 4], [2, 4, 5, 9])
    assert sts["pearson"] == pytest.approx(11 / math.sqrt(130))
    assert sts["spearmanr"] == pytest.approx(1.0)
    assert sts["corr"] == pytest.approx((11 / math.sqrt(130) + 1) / 2)
    assert glue.compute_metrics("mnli-mm", [0, 2, 1], [0, 2, 2]) == {"acc": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="2 predictions for 3 labels"):
        glue.compute_metrics("rte", [0, 1], [0, 1, 1])
