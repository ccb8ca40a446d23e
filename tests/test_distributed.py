"""Real ``torchrun --nproc_per_node=2`` (gloo on 127.0.0.1) against one process on the whole
batch. One launch runs every check (a launch costs seconds); tests/_train_worker.py is the script."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch
from _train_worker import (
    OFFLOAD_ARGS,
    RESUME_ARGS,
    UNUSED_ARGS,
    BertData,
    Classifier,
    DictData,
    Tagger,
    WithUnused,
    accuracy,
    sgd,
    tiny_bert_classifier,
    token_data,
)

from bert_hub.distributed import SingleDeviceStrategy, interleave, setup
from bert_hub.errors import TrainerError
from bert_hub.optimization import Schedule
from bert_hub.trainer import Trainer, count_labels

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def torchrun_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("torchrun")
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join([HERE, env.get("PYTHONPATH", "")]))
    for attempt in range(2):  # the free port may be taken before torchrun binds it: once more
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               os.path.join(HERE, "_train_worker.py"), str(out)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240,
                              check=False)
        if proc.returncode == 0 or "address already in use" not in proc.stderr.lower():
            break
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _reports(out, name):
    return [json.loads((out / f"{name}_rank{r}.json").read_text()) for r in (0, 1)]


def _single(model, data, **kwargs):
    kwargs.setdefault("progress", False)
    trainer = Trainer(model, data, seed=3, **kwargs)
    return trainer, trainer.train(resume=False)


def _close(model, saved, tol):
    state = model.state_dict()
    return max(float((state[k] - saved[k]).abs().max()) for k in saved) <= tol


def test_two_processes_equal_one_process_on_the_whole_batch(torchrun_out, tmp_path):
    torch.manual_seed(0)
    model = Classifier()
    trainer, result = _single(model, DictData(32), eval_data=DictData(13, seed=5),
                              optimizer=sgd, batch_size=8, gradient_accumulation_steps=2,
                              epochs=2, output_dir=tmp_path, log_steps=1,
                              compute_metrics=accuracy)
    saved = torch.load(torchrun_out / "mlp_params.pt", weights_only=True)
    assert _close(model, saved, 1e-6)
    reports = _reports(torchrun_out, "mlp")
    assert [r["global_step"] for r in reports] == [result["global_step"]] * 2 == [4, 4]
    assert reports[0]["train_loss"] == pytest.approx(result["train_loss"], abs=1e-6)
    # the learning rate at step t is the schedule at t, with 2 ranks as with one
    rows = [json.loads(line) for line in (torchrun_out / "mlp_out" / "metrics.jsonl").open()]
    lrs = [r["lr"] for r in rows if "lr" in r]
    assert lrs == pytest.approx([0.5 * Schedule("warmup_linear", 0.1, 4)(t) for t in range(4)])
    # evaluate: every example once, the same gathered result on both ranks, equal to one process
    single_eval = trainer.evaluate()
    for report in reports:
        assert report["evaluate"]["n"] == 13
        assert report["evaluate"]["eval_loss"] == pytest.approx(single_eval["eval_loss"], 1e-6)
        assert report["evaluate"]["accuracy"] == pytest.approx(single_eval["accuracy"])
        predicted = torch.tensor(report["predict"])
        expected = trainer.predict(DictData(13, labelled=False, seed=9))
        assert torch.allclose(predicted, expected, atol=1e-5)  # dataset order


def test_allreduce_only_on_the_final_micro_step(torchrun_out):
    for report in _reports(torchrun_out, "mlp"):
        assert report["param_bytes"] < 1 << 20  # one DDP bucket
        # 4 optimizer steps of 2 micro-steps each: 4 all-reduces, not 8
        assert report["allreduce_calls"] == report["global_step"] == 4


def test_distributed_sampler_shards_are_disjoint_cover_and_change_with_epoch(torchrun_out):
    reports = _reports(torchrun_out, "mlp")
    for epoch in ("0", "1"):
        a, b = (r["shards"][epoch] for r in reports)
        assert not set(a) & set(b) and sorted(a + b) == list(range(32))
    assert reports[0]["shards"]["0"] != reports[0]["shards"]["1"]


def test_token_level_loss_across_ranks_equals_full_batch(torchrun_out):
    torch.manual_seed(0)
    model = Tagger()
    _single(model, token_data(24), optimizer=sgd, batch_size=6, gradient_accumulation_steps=2,
            epochs=2, max_grad_norm=None, schedule="none",
            loss_weight=count_labels(1, ignore_index=-1))
    moved = torch.manual_seed(0) and Tagger()
    assert not _close(moved, torch.load(torchrun_out / "tagger_params.pt", weights_only=True),
                      1e-3)  # training moved the weights: the comparison below means something
    saved = torch.load(torchrun_out / "tagger_params.pt", weights_only=True)
    assert _close(model, saved, 1e-6)


def test_tiny_bert_two_processes_equal_one(torchrun_out):
    if not (torchrun_out / "bert_params.pt").exists():
        pytest.skip("bert_hub.modeling is not available")
    model = tiny_bert_classifier()
    _single(model, BertData(32), batch_size=8, gradient_accumulation_steps=2, epochs=1, lr=1e-3)
    saved = torch.load(torchrun_out / "bert_params.pt", weights_only=True)
    assert _close(model, saved, 1e-6)


def test_optimize_on_cpu_under_ddp_equals_one_process(torchrun_out):
    # masters on the host, gradients collected after DDP's all-reduce, fused CPU AdamW
    torch.manual_seed(0)
    model = Classifier()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    _, result = _single(model, DictData(32), **dict(OFFLOAD_ARGS, batch_size=8))
    saved = torch.load(torchrun_out / "offload_params.pt", weights_only=True)
    assert not _close(model, initial, 1e-3)  # training moved the weights
    assert _close(model, saved, 1e-6)
    for report in _reports(torchrun_out, "offload"):
        assert report["global_step"] == result["global_step"] == 4
        assert report["allreduce_calls"] == 4  # still one all-reduce per window
        assert report["train_loss"] == pytest.approx(result["train_loss"], abs=1e-6)


def test_find_unused_parameters_trains_a_model_with_an_unused_layer(torchrun_out):
    torch.manual_seed(0)
    model = WithUnused()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    _, result = _single(model, DictData(32), **dict(UNUSED_ARGS, batch_size=8))
    saved = torch.load(torchrun_out / "unused_params.pt", weights_only=True)
    assert not _close(model, initial, 1e-3)
    assert _close(model, saved, 1e-6)
    assert torch.equal(saved["unused.weight"], initial["unused.weight"])  # no gradient, no step
    steps = [r["global_step"] for r in _reports(torchrun_out, "unused")]
    assert steps == [result["global_step"]] * 2 == [2, 2]


def test_unused_parameters_without_the_option_name_the_fix(torchrun_out):
    for rank in (0, 1):
        report = json.loads((torchrun_out / f"unused_error_rank{rank}.json").read_text())
        static, later = report["static"], report["later"]
        # a layer never used: named by the first window's check, before any step
        assert static["error"] is not None, "training went on with unreduced gradients"
        assert static["error"].startswith("parameters unused.weight, unused.bias got no gradient")
        assert "pass find_unused_parameters=True to the Trainer" in static["error"]
        assert static["unchanged"]
        # a layer unused from the second window on: DDP's own error, translated
        assert later["error"] is not None
        assert "DDP could not reduce" in later["error"]
        assert "pass find_unused_parameters=True to the Trainer" in later["error"]


def test_evaluate_and_predict_with_fewer_examples_than_processes(torchrun_out):
    torch.manual_seed(0)
    trainer = Trainer(Classifier(), DictData(8), batch_size=4, epochs=1, progress=False,
                      compute_metrics=accuracy)
    for report in _reports(torchrun_out, "small"):  # rank 1's shard: empty, then shorter
        for n in (1, 3):
            expected = trainer.predict(DictData(n, labelled=False, seed=9))
            assert torch.allclose(torch.tensor(report[f"predict_{n}"]), expected, atol=1e-6)
            single = trainer.evaluate(DictData(n, seed=5))
            assert report[f"evaluate_{n}"]["n"] == n
            assert report[f"evaluate_{n}"]["eval_loss"] == pytest.approx(single["eval_loss"],
                                                                         rel=1e-6)
            assert report[f"evaluate_{n}"]["accuracy"] == single["accuracy"]


def test_resume_from_a_shared_output_folder_equals_an_uninterrupted_run(torchrun_out, tmp_path):
    torch.manual_seed(0)
    whole = Classifier()
    args = dict(RESUME_ARGS, batch_size=8)  # one process on both ranks' batches
    Trainer(whole, DictData(32), max_steps=4, output_dir=tmp_path, **args).train()
    assert _close(whole, torch.load(torchrun_out / "resumed_params.pt", weights_only=True), 1e-6)
    reports = _reports(torchrun_out, "small")
    assert [r["resumed"]["global_step"] for r in reports] == [4, 4]
    # written once (the folder is shared), with both ranks' random states
    assert reports[0]["checkpoints"] == ["model.safetensors", "optimizer.pt", "rng_state_0.pt",
                                         "rng_state_1.pt", "trainer_state.json"]
    assert not [n for n in os.listdir(torchrun_out / "resume_out") if n.startswith(".rank-")]


def test_shutdown_ends_the_group_and_a_trainer_that_used_it_says_so(torchrun_out):
    for report in _reports(torchrun_out, "shutdown"):
        assert report["initialized"] is False
        assert "the process group has ended" in report["error"]
        assert "create a new Trainer" in report["error"]


def test_ddp_strategy_collectives(torchrun_out):
    for rank, report in enumerate(_reports(torchrun_out, "strategy")):
        assert (report["class"], report["kind"], report["world_size"]) == ("DDPStrategy", "ddp", 2)
        assert report["is_main"] == (rank == 0)
        assert report["gradients_final_in_hooks"] is False  # the all-reduce lands after hooks
        assert report["rows"] == [[[0.0] * 3] * 2, [[1.0] * 3] * 3]  # ragged, in rank order
        assert report["all_reduce_sum"] == [3.0]
        assert report["sum_over_ranks"] == 2.0


@pytest.mark.slow  # 4 launches of 2 processes, side by side
def test_a_users_script_ends_cleanly_every_time(tmp_path):
    """Trainer(...).train(), predictions, return (or only distributed.setup() and gathers): no
    teardown in the script. Each process must exit 0, never "terminate called without an active exception" (a process group left to
    interpreter exit, whose gloo threads release tensors during finalisation)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", BERT_HUB_DISABLE_PROGRESS="1",
               GLOO_SOCKET_IFNAME="lo", PYTHONPATH=os.pathsep.join([HERE, env.get("PYTHONPATH", "")]))
    procs = []
    for run in range(4):  # two that train and predict; two that only set up and gather
        port = str(_free_port())
        mode = ["--predictions", "20"] if run < 2 else ["--gathers_only", "50"]
        for rank in (0, 1):
            log = open(tmp_path / f"run{run}_rank{rank}.log", "w")
            procs.append((run, rank, log, subprocess.Popen(
                [sys.executable, os.path.join(HERE, "_user_script.py"), str(tmp_path / f"r{run}"),
                 str(tmp_path / f"o{run}"), "2", *mode],
                env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                         LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
                stdout=log, stderr=subprocess.STDOUT)))
    failed = []
    for run, rank, log, proc in procs:
        try:
            code = proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(timeout=30)
        log.close()
        text = (tmp_path / f"run{run}_rank{rank}.log").read_text()
        if code != 0 or "terminate called" in text:
            failed.append(f"run {run} rank {rank}: exit {code}\n{text[-2000:]}")
    assert not failed, "\n".join(failed)


def test_interleave_restores_dataset_order():
    rows = torch.arange(7)
    parts = [rows[r::3] for r in range(3)]
    assert interleave(parts).tolist() == list(range(7))
    assert SingleDeviceStrategy(torch.device("cpu")).eval_indices(5) == [0, 1, 2, 3, 4]


def test_setup_without_launcher_is_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    strategy = setup("cpu")
    assert isinstance(strategy, SingleDeviceStrategy)
    assert (strategy.kind, strategy.world_size, strategy.rank) == ("single", 1, 0)


def test_setup_errors_name_the_fix(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(TrainerError, match="WORLD_SIZE='two' is not an integer"):
        setup("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with pytest.raises(TrainerError, match="start the script with `torchrun"):
        setup("cpu")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl DDP needs 2 CUDA GPUs")
def test_nccl_two_processes_equal_one(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           os.path.join(HERE, "_train_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    torch.manual_seed(0)
    model = Classifier()
    _single(model, DictData(32), optimizer=sgd, batch_size=8, gradient_accumulation_steps=2,
            epochs=2, device="cuda:0")
    saved = torch.load(tmp_path / "mlp_params.pt", weights_only=True)
    assert _close(model.cpu(), saved, 1e-5)
    assert math.isfinite(_reports(tmp_path, "mlp")[0]["train_loss"])
