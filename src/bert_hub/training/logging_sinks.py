"""Where the Trainer's metrics go: ``metrics.jsonl`` in the output folder, TensorBoard events
(optional) and a plot of the curves at the end (when matplotlib is installed), on rank 0 only;
the log line and the progress bar on the first process of each machine, so every machine of a
run shows its progress."""
from __future__ import annotations

import json
import logging
import os

from bert_hub import env
from bert_hub.errors import TrainerError

logger = logging.getLogger("bert_hub.trainer")  # what users configure for the Trainer's lines

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "training_curves.png"
TENSORBOARD_DIR = "runs"


class JsonlSink:
    """One JSON object per line in ``output_dir/metrics.jsonl``."""

    def __init__(self, output_dir: str):
        self.file = os.path.join(output_dir, METRICS_FILE)

    def write(self, record: dict) -> None:
        os.makedirs(os.path.dirname(self.file), exist_ok=True)
        with open(self.file, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def rows(self) -> list[dict]:
        if not os.path.isfile(self.file):
            return []
        with open(self.file, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def truncate(self, step: int) -> None:
        """Drop lines written after ``step`` (a resumed run writes them again)."""
        if not os.path.isfile(self.file):
            return
        keep = [r for r in self.rows() if r.get("step", 0) <= step]
        with open(self.file, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in keep)


class TensorBoardSink:
    """Each numeric field as a scalar in ``output_dir/runs`` (needs the tensorboard package;
    the writer is made at the first record)."""

    def __init__(self, output_dir: str):
        self.folder = os.path.join(output_dir, TENSORBOARD_DIR)
        self._writer = None

    def write(self, record: dict) -> None:
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise TrainerError("tensorboard=True needs the tensorboard package: "
                                   "pip install tensorboard, or set tensorboard=False") from error
            self._writer = SummaryWriter(self.folder)
        for key, value in record.items():
            if key not in ("step", "epoch") and isinstance(value, (int, float)):
                self._writer.add_scalar(key, value, record["step"])
        self._writer.flush()


def plot_curves(rows: list[dict], file: str) -> None:
    """Training loss and learning rate against the step, as a PNG (skipped, with a log line,
    without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed: no %s (pip install matplotlib for it)",
                    PLOT_FILE)
        return
    rows = [r for r in rows if "loss" in r]
    if not rows:
        return
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
    ax_loss.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax_loss.set_ylabel("training loss")
    ax_lr.plot([r["step"] for r in rows], [r["lr"] for r in rows])
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("optimizer step")
    fig.tight_layout()
    fig.savefig(file)
    plt.close(fig)


class MetricsLog:
    """The Trainer's records, to every sink on the main rank; ``echo``: also the log line (the
    first process of every machine shows it; the records are the same on every rank)."""

    def __init__(self, output_dir: str | None, tensorboard: bool, is_main: bool,
                 echo: bool | None = None):
        self.output_dir, self.is_main = output_dir, is_main
        self.echo = is_main if echo is None else echo
        self.jsonl = JsonlSink(output_dir) if output_dir is not None else None
        self.sinks = [] if self.jsonl is None or not is_main else [self.jsonl]
        if self.sinks and tensorboard:
            self.sinks.append(TensorBoardSink(output_dir))

    def log(self, record: dict) -> None:
        if self.echo:
            logger.info("%s", " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in record.items()))
        if not self.is_main:
            return
        for sink in self.sinks:
            sink.write(record)

    def truncate(self, step: int) -> None:
        """Forget records past ``step`` (resuming from the checkpoint at that step)."""
        if self.is_main and self.jsonl is not None:
            self.jsonl.truncate(step)

    def reset(self) -> None:
        """Forget every record (a new run in this output_dir: its curves are its own)."""
        if self.is_main and self.jsonl is not None and os.path.isfile(self.jsonl.file):
            os.remove(self.jsonl.file)

    def finish(self) -> None:
        """The plot of the whole run, next to metrics.jsonl."""
        if self.is_main and self.jsonl is not None:
            plot_curves(self.jsonl.rows(), os.path.join(self.output_dir, PLOT_FILE))


def progress_bar(enabled: bool, total: int, initial: int):
    """A tqdm bar over optimizer steps, or None when disabled (``progress=False``, not the first
    process of its machine, or ``BERT_HUB_DISABLE_PROGRESS=1``)."""
    if not enabled or env.progress_disabled():
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc="train", unit="step")
