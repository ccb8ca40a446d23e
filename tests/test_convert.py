"""The Google <-> PyTorch name table and the converter, against pytorch-pretrained-bert 0.6.2's
TensorFlow-based ``load_tf_weights_in_bert`` and TensorFlow's own reader.

One TensorFlow subprocess per module does all the oracle work (fresh checkpoint, 0.6.2 loading,
reading back what we exported); the process under test has TensorFlow blocked.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from floats import assert_close

from bert_hub.config import BertConfig
from bert_hub.convert import (
    convert_tf_checkpoint,
    export_tf_checkpoint,
    load_tf_weights_in_bert,
    name_table,
    state_dict_to_tf,
    tf_to_state_dict,
)
from bert_hub.errors import CheckpointError, ConversionError
from bert_hub.tf_checkpoint import CheckpointReader, write_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY_DIR = ROOT / "tests" / "data" / "tf_tiny"
TINY = TINY_DIR / "bert_model.ckpt"
TINY_CONFIG = TINY_DIR / "bert_config.json"
HAVE_TF = importlib.util.find_spec("tensorflow") is not None
ppb = pytest.importorskip("pytorch_pretrained_bert.modeling",
                          reason="pytorch-pretrained-bert 0.6.2 not installed (the peer)")

INPUT_IDS = [[2, 7, 9, 11, 3, 12, 29, 3], [2, 5, 6, 3, 8, 0, 0, 0]]
TOKEN_TYPES = [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 0, 0, 0]]
MASK = [[1] * 8, [1, 1, 1, 1, 1, 0, 0, 0]]

ORACLE = textwrap.dedent("""
    import importlib.util, json, os, sys
    import numpy as np
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    import torch
    from pytorch_pretrained_bert.modeling import BertConfig, BertForPreTraining, \\
        load_tf_weights_in_bert
    spec = json.loads(sys.argv[1])
    mk = importlib.util.spec_from_file_location("mk", spec["script"])
    make = importlib.util.module_from_spec(mk); mk.loader.exec_module(make)
    make.build(spec["fresh_dir"], dict(num_hidden_layers=3, hidden_size=24,
               num_attention_heads=4, intermediate_size=40, vocab_size=37,
               max_position_embeddings=20, type_vocab_size=3),
               seed=5, with_config=True, with_vocab=True)
    inputs = [torch.tensor(spec[k]) for k in ("input_ids", "token_types", "mask")]
    for prefix, config_path, out in spec["peer"]:
        torch.manual_seed(0)
        model = BertForPreTraining(BertConfig.from_json_file(config_path))
        load_tf_weights_in_bert(model, prefix)  # the 2018 path, through TensorFlow
        model.eval()
        with torch.no_grad():
            mlm, nsp = model(*inputs)
        torch.save({"state": model.state_dict(), "mlm": mlm, "nsp": nsp}, out)
    for prefix, out in spec["tf_read"]:
        reader = tf.train.load_checkpoint(prefix)
        names = sorted(reader.get_variable_to_shape_map())
        np.savez(out, **{f"v{i}": reader.get_tensor(n) for i, n in enumerate(names)})
        with open(out + ".json", "w") as f:
            json.dump(names, f)
""")


pytestmark = pytest.mark.usefixtures("no_tensorflow")


def _inputs():
    return torch.tensor(INPUT_IDS), torch.tensor(TOKEN_TYPES), torch.tensor(MASK)


def _random_state_dict(config_path, seed=0):
    """A 0.6.2 BertForPreTraining's state dict with random weights (biases and LayerNorms too)."""
    torch.manual_seed(seed)
    model = ppb.BertForPreTraining(ppb.BertConfig.from_json_file(str(config_path)))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
    return model.state_dict()


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    if not HAVE_TF:
        pytest.skip("tensorflow not installed (0.6.2's converter and the oracle need it)")
    d = tmp_path_factory.mktemp("convert_oracle")
    exported_sd = _random_state_dict(TINY_CONFIG, seed=3)
    export_tf_checkpoint(exported_sd, str(TINY_CONFIG), d / "exported" / "bert_model.ckpt")
    fresh = d / "fresh"
    spec = {
        "script": str(ROOT / "scripts" / "make_tf_checkpoint.py"),
        "fresh_dir": str(fresh),
        "input_ids": INPUT_IDS, "token_types": TOKEN_TYPES, "mask": MASK,
        "peer": [[str(TINY), str(TINY_CONFIG), str(d / "peer_tiny.pt")],
                 [str(fresh / "bert_model.ckpt"), str(fresh / "bert_config.json"),
                  str(d / "peer_fresh.pt")]],
        "tf_read": [[str(d / "exported" / "bert_model.ckpt"), str(d / "tf_exported.npz")]],
    }
    proc = subprocess.run([sys.executable, "-c", ORACLE, json.dumps(spec)], check=False,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = json.loads((d / "tf_exported.npz.json").read_text())
    with np.load(d / "tf_exported.npz") as z:
        tf_exported = {n: z[f"v{i}"] for i, n in enumerate(names)}
    return SimpleNamespace(
        dir=d,
        cases={"tiny": (TINY, TINY_CONFIG),
               "fresh": (fresh / "bert_model.ckpt", fresh / "bert_config.json")},
        peer={k: torch.load(d / f"peer_{k}.pt", weights_only=True) for k in ("tiny", "fresh")},
        exported_sd=exported_sd, tf_exported=tf_exported)


# --------------------------------------------------------------------------- vs 0.6.2


@pytest.mark.parametrize("case", ["tiny", "fresh"])
def test_state_dict_equals_062_tensorflow_loader(oracle, case):
    prefix, config = oracle.cases[case]
    ours = tf_to_state_dict(prefix, str(config))
    peer = oracle.peer[case]["state"]
    assert set(peer) - set(ours) == {"cls.predictions.decoder.weight"}  # tied, never emitted
    assert set(ours) <= set(peer)
    for key, value in ours.items():
        assert value.dtype == peer[key].dtype and torch.equal(value, peer[key]), key
    assert torch.equal(peer["cls.predictions.decoder.weight"],
                       ours["bert.embeddings.word_embeddings.weight"])


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_converted_file_loads_into_062_model_with_equal_outputs(oracle, tmp_path, suffix):
    prefix, config = oracle.cases["fresh"]
    out = convert_tf_checkpoint(prefix, str(config), tmp_path / f"model{suffix}")
    if suffix == ".bin":
        state = torch.load(out, map_location="cpu", weights_only=True)
    else:
        from safetensors import safe_open
        from safetensors.torch import load_file

        state = load_file(out)
        with safe_open(out, "pt") as f:
            assert f.metadata()["format"] == "pt"
    model = ppb.BertForPreTraining(ppb.BertConfig.from_json_file(str(config)))
    if suffix == ".bin":  # as 0.6.2's converter wrote it: a strict load works
        decoder = state["cls.predictions.decoder.weight"]
        assert decoder.untyped_storage().data_ptr() == \
            state["bert.embeddings.word_embeddings.weight"].untyped_storage().data_ptr()
        model.load_state_dict(state)
    else:
        result = model.load_state_dict(state, strict=False)
        assert result.missing_keys == ["cls.predictions.decoder.weight"]
        assert result.unexpected_keys == []
    model.eval()
    with torch.no_grad():
        mlm, nsp = model(*_inputs())
    peer = oracle.peer["fresh"]
    assert_close((mlm, nsp), (peer["mlm"], peer["nsp"]), tol=1e-6)      # another process's kernels
    assert os.listdir(tmp_path) == [f"model{suffix}"]  # no temp file left


@pytest.mark.parametrize("case", ["tiny", "fresh"])
@pytest.mark.parametrize("unpad", [True, False], ids=["unpad", "dense"])
def test_bert_hub_model_outputs_equal_062(oracle, case, unpad):
    """0.6.2's scores at every position with unpad=False; with padding removed (the default),
    the same at real tokens and zeros at padded ones."""
    try:
        from bert_hub.modeling import BertForPreTraining
    except ImportError as e:
        pytest.skip(f"bert_hub.modeling.BertForPreTraining not importable yet ({e})")
    prefix, config = oracle.cases[case]
    model = BertForPreTraining(BertConfig.from_json_file(config))
    model.unpad = unpad
    result = model.load_state_dict(tf_to_state_dict(prefix, str(config)), strict=False)
    assert not result.unexpected_keys
    assert set(result.missing_keys) <= {"cls.predictions.decoder.weight"}
    model.eval()
    with torch.no_grad():
        mlm, nsp = model(*_inputs())[:2]
    peer = oracle.peer[case]
    expected = peer["mlm"]
    if unpad:
        expected = expected.masked_fill(_inputs()[2][..., None] == 0, 0.0)
    assert_close((mlm, nsp), (expected, peer["nsp"]), tol=1e-6)


def test_load_tf_weights_in_bert_without_tensorflow(oracle):
    prefix, config = oracle.cases["fresh"]
    model = ppb.BertForPreTraining(ppb.BertConfig.from_json_file(str(config)))
    assert load_tf_weights_in_bert(model, str(prefix)) is model
    peer = oracle.peer["fresh"]["state"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, peer[key]), key
    # a bare BertModel (keys without "bert.") takes the encoder and skips the heads
    bare = ppb.BertModel(ppb.BertConfig.from_json_file(str(config)))
    load_tf_weights_in_bert(bare, str(prefix))
    for key, value in bare.state_dict().items():
        assert torch.equal(value, peer["bert." + key]), key


def test_export_round_trip_through_tensorflow(oracle):
    """torch -> our writer -> tf.train.load_checkpoint: Google's names, layouts and values."""
    sd, tf_read = oracle.exported_sd, oracle.tf_exported
    config = BertConfig.from_json_file(TINY_CONFIG)
    assert set(tf_read) == {r.tf_name for r in name_table(config)}
    for r in name_table(config):
        want = sd[r.key].t() if r.transpose else sd[r.key]
        assert np.array_equal(tf_read[r.tf_name], want.numpy()), r.tf_name
    # and back again, without TensorFlow
    back = tf_to_state_dict(oracle.dir / "exported" / "bert_model.ckpt", config)
    for key, value in back.items():
        assert torch.equal(value, sd[key]), key


# --------------------------------------------------------------------------- without TF


def test_adam_slots_and_global_step_are_skipped():
    reader = CheckpointReader(TINY)
    assert any(n.endswith("adam_m") for n in reader.names()) and "global_step" in reader
    state = tf_to_state_dict(reader, str(TINY_CONFIG))
    config = BertConfig.from_json_file(TINY_CONFIG)
    assert list(state) == [r.key for r in name_table(config)]
    assert state["bert.encoder.layer.1.intermediate.dense.weight"].shape == (32, 16)
    assert torch.equal(state["bert.pooler.dense.weight"],
                       reader.get_tensor("bert/pooler/dense/kernel").t())


def test_config_is_optional_and_inferred():
    a = tf_to_state_dict(TINY)
    b = tf_to_state_dict(TINY, BertConfig.from_json_file(TINY_CONFIG))
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_state_dict_to_tf_accepts_keys_without_prefix_and_ignores_tied_decoder():
    sd = _random_state_dict(TINY_CONFIG)
    stripped = {k.removeprefix("bert."): v for k, v in sd.items()}
    a, b = state_dict_to_tf(sd, str(TINY_CONFIG)), state_dict_to_tf(stripped, str(TINY_CONFIG))
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
    wrapped = {"module." + k: v for k, v in sd.items()}  # saved from DataParallel
    c = state_dict_to_tf(wrapped, str(TINY_CONFIG))
    assert list(c) == list(a) and all(np.array_equal(a[k], c[k]) for k in a)
    assert np.array_equal(a["bert/encoder/layer_0/attention/self/query/kernel"],
                          sd["bert.encoder.layer.0.attention.self.query.weight"].t().numpy())
    assert not any("decoder" in k for k in a)
    # a bare BertModel's state dict: no heads, still fine
    encoder_only = {k: v for k, v in stripped.items() if not k.startswith("cls.")}
    assert all(k.startswith("bert/") for k in state_dict_to_tf(encoder_only, str(TINY_CONFIG)))


def test_bfloat16_and_float16_survive_export_and_conversion(tmp_path):
    config = BertConfig.from_json_file(TINY_CONFIG)
    for dtype in (torch.bfloat16, torch.float16):
        sd = {k: v.to(dtype) for k, v in _random_state_dict(TINY_CONFIG).items()}
        prefix = export_tf_checkpoint(sd, config, tmp_path / str(dtype) / "ck")
        assert {dt for _, dt, _ in CheckpointReader(prefix).list_variables()} == \
            {str(dtype).replace("torch.", "")}
        from safetensors.torch import load_file

        out = load_file(convert_tf_checkpoint(prefix, config, tmp_path / f"{dtype}.safetensors"))
        for key, value in out.items():
            assert value.dtype == dtype and torch.equal(value, sd[key]), key


def test_export_from_saved_files(tmp_path):
    sd = _random_state_dict(TINY_CONFIG)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    prefix = export_tf_checkpoint(tmp_path, str(TINY_CONFIG), tmp_path / "tf" / "bert_model.ckpt")
    back = tf_to_state_dict(prefix, str(TINY_CONFIG))
    assert all(torch.equal(v, sd[k]) for k, v in back.items())


def test_safetensors_conversion_needs_neither_torch_nor_tensorflow(tmp_path):
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "tensorflow"):
                    raise ImportError(name + " is blocked")
        sys.meta_path.insert(0, Block())
        from bert_hub.convert import convert_tf_checkpoint
        convert_tf_checkpoint(sys.argv[1], sys.argv[2], sys.argv[3])
    """)
    out = tmp_path / "model.safetensors"
    subprocess.run([sys.executable, "-c", code, str(TINY), str(TINY_CONFIG), str(out)],
                   check=True, timeout=120)
    from safetensors.torch import load_file

    got = load_file(out)
    want = tf_to_state_dict(TINY, str(TINY_CONFIG))
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_2018_command_line_script(tmp_path):
    out = tmp_path / "pytorch_model.bin"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_tf_checkpoint_to_pytorch.py"),
                    "--tf_checkpoint_path", str(TINY), "--bert_config_file", str(TINY_CONFIG),
                    "--pytorch_dump_path", str(out)], check=True, timeout=120,
                   capture_output=True)
    state = torch.load(out, weights_only=True)
    want = tf_to_state_dict(TINY, str(TINY_CONFIG))
    assert list(state) == list(want) + ["cls.predictions.decoder.weight"]  # as 0.6.2 wrote it
    assert all(torch.equal(state[k], want[k]) for k in want)


# --------------------------------------------------------------------------- errors


def _tiny_tf_tensors():
    return state_dict_to_tf(_random_state_dict(TINY_CONFIG), str(TINY_CONFIG))


def test_unknown_variables_are_listed(tmp_path):
    tensors = _tiny_tf_tensors()
    tensors["output_weights"] = np.zeros((3, 16), np.float32)
    tensors["bert/foo/bar"] = np.zeros(2, np.float32)
    tensors["bert/foo/bar/adam_m"] = np.zeros(2, np.float32)  # slots of anything: skipped
    write_checkpoint(tmp_path / "ck", tensors)
    with pytest.raises(ConversionError, match=r"2 variable\(s\) not in the BERT name table: "
                                              r"bert/foo/bar, output_weights\."):
        tf_to_state_dict(tmp_path / "ck", str(TINY_CONFIG))


def test_config_that_does_not_fit_the_checkpoint():
    deeper = BertConfig.from_json_file(TINY_CONFIG)
    deeper.num_hidden_layers = 3
    with pytest.raises(ConversionError, match=r"missing 16 weight\(s\) the config expects: "
                                              r"bert/encoder/layer_2/attention/self/query/kernel"):
        tf_to_state_dict(TINY, deeper)
    wider = BertConfig.from_json_file(TINY_CONFIG)
    wider.intermediate_size = 64
    with pytest.raises(ConversionError, match=r"bert/encoder/layer_0/intermediate/dense/kernel "
                                              r"\[16, 32\] \(config says \[16, 64\]\)"):
        tf_to_state_dict(TINY, wider)


def test_half_a_head_is_an_error(tmp_path):
    tensors = _tiny_tf_tensors()
    del tensors["cls/predictions/output_bias"]
    write_checkpoint(tmp_path / "ck", tensors)
    with pytest.raises(ConversionError, match=r"missing 1 weight\(s\).*cls/predictions/output_bias"):
        tf_to_state_dict(tmp_path / "ck", str(TINY_CONFIG))
    for name in [n for n in tensors if n.startswith("cls/")]:  # no heads at all: fine
        del tensors[name]
    write_checkpoint(tmp_path / "ck2", tensors)
    assert all(k.startswith("bert.") for k in tf_to_state_dict(tmp_path / "ck2", str(TINY_CONFIG)))


def test_state_dict_errors():
    sd = dict(_random_state_dict(TINY_CONFIG))
    sd["classifier.weight"] = torch.zeros(2, 16)
    with pytest.raises(ConversionError, match=r"key\(s\) not in the BERT name table: "
                                              r"classifier\.weight"):
        state_dict_to_tf(sd, str(TINY_CONFIG))
    del sd["classifier.weight"]
    sd["bert.pooler.dense.weight"] = torch.zeros(16, 17)
    with pytest.raises(ConversionError, match=r"bert\.pooler\.dense\.weight \[16, 17\] "
                                              r"\(config says \[16, 16\]\)"):
        state_dict_to_tf(sd, str(TINY_CONFIG))


def test_output_format_and_config_path_errors(tmp_path):
    with pytest.raises(ConversionError, match=r"name it \*\.safetensors or \*\.bin"):
        convert_tf_checkpoint(TINY, str(TINY_CONFIG), tmp_path / "model.h5")
    with pytest.raises(ConversionError, match=r"config file .*missing\.json does not exist"):
        convert_tf_checkpoint(TINY, str(tmp_path / "missing.json"), tmp_path / "m.safetensors")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_corrupt_tensor_leaves_no_partial_output(tmp_path, suffix):
    for p in TINY_DIR.iterdir():
        (tmp_path / p.name).write_bytes(p.read_bytes())
    prefix = tmp_path / "bert_model.ckpt"
    entry = CheckpointReader(prefix).entry("cls/seq_relationship/output_weights")
    data = Path(str(prefix) + ".data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[entry.offset] ^= 0x10
    data.write_bytes(bytes(raw))
    out = tmp_path / "out" / f"model{suffix}"
    with pytest.raises(CheckpointError, match=r"CRC mismatch for 'cls/seq_relationship/"
                                              r"output_weights'"):
        convert_tf_checkpoint(prefix, str(TINY_CONFIG), out)
    assert os.listdir(out.parent) == []
