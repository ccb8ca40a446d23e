"""The weights module: every damaged or hostile weights file becomes a typed error naming the file
and the fix; tied weights are stored once and restored, whoever wrote the file (save_pretrained,
the converter, the Trainer's checkpoints); one key normaliser."""
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from floats import assert_close

from bert_hub import modeling, weights
from bert_hub.convert import export_tf_checkpoint
from bert_hub.errors import BertHubError, ConversionError, EntryNotFoundError
from bert_hub.modeling import BertConfig

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)
VOCAB = 99
DECODER, EMBEDDINGS = "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"


def tiny_config():
    return BertConfig(VOCAB, **TINY)


def random_model(cls=modeling.BertForPreTraining, *args, seed=0):
    model = cls(tiny_config(), *args)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model.eval()


def outputs(model):
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(ids)
    return out if isinstance(out, tuple) else (out,)


def assert_same_outputs(a, b):
    """The weights' bits are compared where they are promised; outputs may take other kernels
    (packed or separate projections)."""
    assert_close(outputs(a), outputs(b), tol=1e-6)


# -- damaged and hostile files ------------------------------------------------------------------
class _RunsACommand:
    """Unpickling this would run ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_legacy_pickle(path, obj):
    """torch.save's legacy (pre-zip, 0.6.2-era) layout: magic, protocol, sys info, the object."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION

    with open(path, "wb") as f:
        for part in (MAGIC_NUMBER, PROTOCOL_VERSION, {"protocol_version": PROTOCOL_VERSION}, obj):
            pickle.dump(part, f, protocol=2)


def damaged_files(folder):
    """name -> (writer, message pattern)."""
    marker = folder / "payload-ran"

    def zip_bin(state):
        return lambda p: torch.save(state, p)

    def truncated_zip(p):
        torch.save({"a": torch.zeros(100)}, p)
        p.write_bytes(p.read_bytes()[:300])

    def truncated_legacy(p):
        torch.save({"a": torch.zeros(100)}, p, _use_new_zipfile_serialization=False)
        p.write_bytes(p.read_bytes()[:-30])

    def safetensors_bytes(cut=None, header=None):
        def write(p):
            save_file({"a": torch.zeros(10), "b": torch.ones(4)}, p)
            raw = p.read_bytes()
            if header is not None:
                raw = len(header).to_bytes(8, "little") + header + raw[8 + int.from_bytes(
                    raw[:8], "little"):]
            p.write_bytes(raw[:cut] if cut else raw)
        return write

    return {
        "legacy pickle, hostile global": (
            lambda p: write_legacy_pickle(p, {"a": _RunsACommand(marker)}),
            r"holds a Python object \((posix|nt)\.system\), not only tensors, and is never "
            r"unpickled\. Save the weights alone"),
        "zip pickle, hostile global": (
            zip_bin({"a": _RunsACommand(marker)}),
            r"holds a Python object \((posix|nt)\.system\)"),
        "empty .bin": (lambda p: p.write_bytes(b""),
                       r"the file is empty \(0 bytes\)\. Download or save it again"),
        "truncated zip": (truncated_zip, r"it is truncated or damaged \(.*\)\. Download or save"),
        "truncated legacy file": (truncated_legacy, r"it is truncated or damaged"),
        "not a pickle": (lambda p: p.write_bytes(b"<html>404 Not Found</html>"),
                         r"it is not a file torch.save wrote \(.*\)\. Pass a pytorch_model.bin"),
        "a list, not a dict": (zip_bin([torch.zeros(2)]),
                               r"holds a list, not a state dict .*save model.state_dict\(\)"),
        "a dict holding a list": (
            zip_bin({"bert.pooler.dense.bias": [0.0, 1.0]}),
            r"holds a list under 'bert.pooler.dense.bias', not a tensor\. Save the weights alone"),
        "int keys": (zip_bin({0: torch.zeros(2)}),
                     r"holds the key 0 \(int\); the keys of a state dict are parameter names"),
        "safetensors, bad header": (
            safetensors_bytes(header=b'{"a": not json}'),
            r"is not a valid safetensors file \(.*\); it may be truncated or damaged"),
        "safetensors, truncated data": (safetensors_bytes(cut=-8),
                                        r"is not a valid safetensors file"),
        "safetensors, empty": (lambda p: p.write_bytes(b""), r"is not a valid safetensors file"),
    }, marker


CASES = list(damaged_files(Path("unused"))[0])


@pytest.mark.parametrize("case", CASES)
def test_damaged_or_hostile_file_is_a_typed_error(tmp_path, case):
    cases, marker = damaged_files(tmp_path)
    write, pattern = cases[case]
    name = "model.safetensors" if case.startswith("safetensors") else "pytorch_model.bin"
    path = tmp_path / name
    write(path)
    with pytest.raises(ConversionError, match=pattern) as info:
        weights.load_weights(path)
    message = str(info.value)
    assert str(path) in message                         # names the file
    assert "weights_only=False" not in message          # never suggests unpickling
    assert isinstance(info.value, (BertHubError, ValueError))
    assert not marker.exists()                          # the payload never ran
    # the same error through from_pretrained and the exporter
    tiny_config().to_json_file(tmp_path / "bert_config.json")
    with pytest.raises(ConversionError, match=pattern):
        modeling.BertModel.from_pretrained(tmp_path)
    with pytest.raises(ConversionError, match=pattern):
        export_tf_checkpoint(path, tiny_config(), tmp_path / "tf" / "bert_model.ckpt")
    assert not marker.exists()


def test_missing_file():
    with pytest.raises(EntryNotFoundError, match=r"weights file '/nonexistent/x.bin' does not "
                                                 r"exist; pass a model.safetensors"):
        weights.load_weights("/nonexistent/x.bin")


def test_legacy_and_zip_bin_files_load(tmp_path):
    state = random_model(modeling.BertModel).state_dict()
    torch.save(state, tmp_path / "zip.bin")
    torch.save(state, tmp_path / "legacy.bin", _use_new_zipfile_serialization=False)
    for name in ("zip.bin", "legacy.bin"):
        loaded = weights.load_weights(tmp_path / name)
        assert list(loaded) == list(state)
        assert all(torch.equal(loaded[k], state[k]) for k in state)


def _sharded(folder: Path, state: dict, suffix: str = ".safetensors") -> Path:
    """``state`` split in two shards (safetensors or .bin) and an index naming them."""
    folder.mkdir()
    keys = list(state)
    weight_map = {}
    for i, part in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2:])):
        name = f"part-{i + 1}{suffix}"
        shard = {k: state[k].clone().contiguous() for k in part}
        if suffix == ".safetensors":
            save_file(shard, folder / name)
        else:
            torch.save(shard, folder / name)
        weight_map.update({k: name for k in part})
    index = folder / f"weights{suffix}.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_sharded_checkpoint_reads_every_shard(tmp_path, suffix):
    state = random_model(modeling.BertModel).state_dict()
    index = _sharded(tmp_path / "m", state, suffix)
    loaded = weights.load_weights(index)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    assert weights.shard_files(index) == [f"part-1{suffix}", f"part-2{suffix}"]
    assert weights.missing_shards(index) == [] and weights.missing_shards(tmp_path / "x.bin") == []


def test_damaged_or_hostile_shard_index_is_a_typed_error(tmp_path):
    state = random_model(modeling.BertModel).state_dict()
    index = _sharded(tmp_path / "m", state)
    data = json.loads(index.read_text())
    data["weight_map"]["extra.weight"] = "part-1.safetensors"      # a tensor no shard holds
    index.write_text(json.dumps(data))
    with pytest.raises(ConversionError, match=r"names tensors its shards do not hold: extra\.weight"):
        weights.load_weights(index)
    for hostile in ("../outside.safetensors", "/etc/passwd", "sub/part.safetensors", ""):
        index.write_text(json.dumps({"weight_map": {"a": hostile}}))
        with pytest.raises(ConversionError, match="names no usable shard files"):
            weights.load_weights(index)
    for broken in ("{", "[]", '{"weight_map": 3}', '{"other": {}}'):
        index.write_text(broken)
        with pytest.raises(ConversionError, match="sharded-checkpoint index"):
            weights.load_weights(index)
    index.write_text(json.dumps({"weight_map": {"a": "gone.safetensors"}}))
    with pytest.raises(EntryNotFoundError, match=r"the shards \['gone\.safetensors'\] named by"):
        weights.load_weights(index)


# -- tied weights -------------------------------------------------------------------------------
def test_tied_weights_are_stored_once_and_restored(tmp_path):
    model = random_model()
    state = model.state_dict()
    assert state[DECODER] is not None and state[DECODER].data_ptr() == state[EMBEDDINGS].data_ptr()
    path = tmp_path / "model.safetensors"
    weights.save_safetensors(state, path)
    assert DECODER not in load_file(path)               # stored once: the library sees one name
    with safe_open(path, "pt") as f:
        assert json.loads(f.metadata()["aliases"]) == {DECODER: EMBEDDINGS}
    loaded = weights.load_weights(path)
    assert list(loaded) == [k for k in state if k != DECODER] + [DECODER]
    assert loaded[DECODER] is loaded[EMBEDDINGS]
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    reloaded = modeling.BertForPreTraining(tiny_config())
    reloaded.load_state_dict(loaded, strict=True)       # every name a strict load asks for
    assert_same_outputs(reloaded.eval(), model)


def test_a_state_dict_written_by_save_safetensors_loads_with_from_pretrained(tmp_path):
    """What the Trainer's checkpoints call: a state dict with tied weights, any key order."""
    model = random_model(modeling.BertForMaskedLM)
    state = model.state_dict()
    weights.save_safetensors(state, tmp_path / "model.safetensors", order=sorted(state))
    model.config.to_json_file(tmp_path / "bert_config.json")
    loaded = modeling.BertForMaskedLM.from_pretrained(tmp_path)
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
    assert_same_outputs(loaded, model)


def test_save_pretrained_and_the_converter_mark_tied_weights_the_same_way(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path / "saved")
    export_tf_checkpoint(model.state_dict(), model.config, tmp_path / "tf" / "bert_model.ckpt")
    from bert_hub.convert import convert_tf_checkpoint
    converted = convert_tf_checkpoint(tmp_path / "tf" / "bert_model.ckpt", model.config,
                                      tmp_path / "converted.safetensors")
    for path in (tmp_path / "saved" / "model.safetensors", converted):
        with safe_open(path, "pt") as f:
            assert json.loads(f.metadata()["aliases"]) == {DECODER: EMBEDDINGS}, path
        loaded = weights.load_weights(path)
        assert loaded[DECODER] is loaded[EMBEDDINGS]
        assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_empty_tensors_are_never_taken_for_tied_ones(tmp_path):
    state = {"a": torch.zeros(0), "b": torch.zeros(0), "c": torch.ones(3)}
    weights.save_safetensors(state, tmp_path / "x.safetensors")
    assert set(load_file(tmp_path / "x.safetensors")) == {"a", "b", "c"}


def test_a_dtype_safetensors_cannot_hold_is_refused_before_writing(tmp_path):
    with pytest.raises(ConversionError, match=r"cannot store torch.complex64 tensors in a weights "
                                              r"file; convert them to one of float64, float32"):
        weights.save_safetensors({"c": torch.zeros(2, dtype=torch.complex64)},
                                 tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_mixed_dtypes_stay_aligned_and_memory_mapped(tmp_path):
    state = {"u8": torch.arange(3, dtype=torch.uint8), "half": torch.ones(3, dtype=torch.float16),
             "double": torch.full((2,), 0.5, dtype=torch.float64), "flag": torch.tensor([True])}
    weights.save_safetensors(state, tmp_path / "x.safetensors")
    loaded = weights.load_weights(tmp_path / "x.safetensors")
    storages = {t.untyped_storage().data_ptr() for t in loaded.values()}
    assert len(storages) == 1                           # all views of one map: nothing copied
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value)


def test_trainer_checkpoint_loads_with_from_pretrained(tmp_path):
    from bert_hub.trainer import Trainer

    class MaskedText(torch.utils.data.Dataset):
        def __init__(self):
            gen = torch.Generator().manual_seed(0)
            self.ids = torch.randint(1, VOCAB, (8, 9), generator=gen)
            self.labels = torch.where(torch.rand(8, 9, generator=gen) < 0.3, self.ids, -1)

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "masked_lm_labels": self.labels[i]}

    model = random_model(modeling.BertForMaskedLM).train()
    trainer = Trainer(model, MaskedText(), batch_size=4, epochs=1, lr=1e-3, progress=False,
                      output_dir=tmp_path / "run", save_steps=2)
    trainer.train()
    checkpoint = trainer.checkpoints()[-1]
    model.config.to_json_file(os.path.join(checkpoint, "bert_config.json"))
    loaded = modeling.BertForMaskedLM.from_pretrained(checkpoint)
    assert_same_outputs(loaded, model.eval())
    state = weights.load_weights(os.path.join(checkpoint, "model.safetensors"))
    assert state[DECODER] is state[EMBEDDINGS]         # the Trainer's aliases are restored
    shutil.rmtree(tmp_path / "run")


# -- key names ----------------------------------------------------------------------------------
def test_one_key_normaliser():
    keys = ["module.bert.embeddings.LayerNorm.gamma", "encoder.layer.0.output.LayerNorm.beta",
            "pooler.dense.weight", "cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
            "bert.embeddings.position_ids", "classifier.weight"]
    assert weights.normalise_keys(keys) == {
        "module.bert.embeddings.LayerNorm.gamma": "bert.embeddings.LayerNorm.weight",
        "encoder.layer.0.output.LayerNorm.beta": "bert.encoder.layer.0.output.LayerNorm.bias",
        "pooler.dense.weight": "bert.pooler.dense.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",   # transformers' tied bias
        "classifier.weight": "classifier.weight",
    }
    with_bias = weights.normalise_keys(["cls.predictions.bias", "cls.predictions.decoder.bias"])
    assert with_bias == {"cls.predictions.bias": "cls.predictions.bias"}
    bare = weights.map_keys(["bert.pooler.dense.weight", "cls.predictions.bias"],
                            ["pooler.dense.weight"])
    assert bare == {"bert.pooler.dense.weight": "pooler.dense.weight",
                    "cls.predictions.bias": "cls.predictions.bias"}


def test_data_parallel_checkpoint_loads(tmp_path):
    """0.6.2's scripts saved model.state_dict() of a DataParallel model: keys start 'module.'."""
    model = random_model(modeling.BertForSequenceClassification, 3)
    torch.save({"module." + k: v for k, v in model.state_dict().items()},
               tmp_path / "pytorch_model.bin")
    model.config.to_json_file(tmp_path / "bert_config.json")
    loaded = modeling.BertForSequenceClassification.from_pretrained(tmp_path, 3)
    assert_same_outputs(loaded, model)
