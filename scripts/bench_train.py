"""Training throughput: images/s of a full training step and of the backbone alone on the same inputs.

A full step is what `dml-train` runs, through Lightning: the class-balanced DataLoader and its
transforms, backbone + head, sampler, loss, backward, optimizer step and logging. It is timed
between consecutive batch ends (so data loading and epoch boundaries count), after warm-up
steps. The backbone alone is forward + backward of the backbone on the first batch, in the same
precision and memory format. It, and sampler + loss alone, are timed right after every step,
interleaved with the steps, so that other jobs on the machine slow all of them alike.

outside = 1 - backbone time / step time: the share of a step spent in data, head, sampler,
loss, optimizer and logging (DESIGN section 7 asks for < 10%). Of that, as shares of the step:
data = the loader alone per batch; loss = sampler + loss forward and backward on the batch's
embeddings; optim = the parameter update inside the step (on_before_optimizer_step to batch end).

CPU preset (default): the default run (`dml-train` with no overrides: EfficientNet-Lite0 on the
emoji at 64 px, whole-batch tensor augmentation), small_cnn on digits at 16 px, resnet18 and
resnet50 on synthetic images at 64 px (`--only default` for the first alone). GPU preset: resnet50 at 224 px, bf16-mixed, channels_last (`--preset gpu`).
Prints a markdown table (and writes it with --out).

    .venv/bin/python scripts/bench_train.py [--steps 10] [--out bench_train.md]
    .venv/bin/python scripts/bench_train.py --only default
    .venv/bin/python scripts/bench_train.py --preset gpu --workers 8 --steps 50
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from dml.config import compose_train
from dml.training.run import build_datamodule, build_module

_SYNTHETIC = ["dataset=synthetic", "dataset.train.num_classes=40", "dataset.test.num_classes=40"]
PRESETS: dict[str, list[tuple[str, list[str]]]] = {
    "cpu": [
        ("default", []),
        ("small_cnn", ["backbone=small_cnn", "dataset=digits"]),
        ("resnet18", ["backbone=resnet18", *_SYNTHETIC, "+size=64"]),
        ("resnet50", ["backbone=resnet50", *_SYNTHETIC, "+size=64"]),
    ],
    "gpu": [
        (
            "resnet50",
            [
                "backbone=resnet50",
                *_SYNTHETIC,
                "+size=224",
                "dataset.classes_per_batch=16",
                "dataset.m_per_class=4",
                "trainer.precision=bf16-mixed",
                "channels_last=true",
            ],
        ),
    ],
}


class InterleavedTimer(pl.Callback):
    """Times every training step (batch end to batch end) and, right after each step, the backbone
    alone and sampler + loss alone on the first batch, so that load from other jobs on the
    machine affects the three alike. The probes' own time is left out of the next step."""

    def __init__(self, precision: str, channels_last: bool, compile: bool) -> None:
        self.precision, self.channels_last, self.compile = precision, channels_last, compile
        self._backbone: torch.nn.Module | None = None
        self.step: list[float] = []
        self.backbone: list[float] = []
        self.loss: list[float] = []
        self.optim: list[float] = []
        self._optim_start = 0.0
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self._mark: float | None = None

    def on_train_batch_start(
        self, trainer: pl.Trainer, module: pl.LightningModule, batch, *args
    ) -> None:
        if self.batch is None:
            x, y = batch
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.batch = (x.detach().clone(), y.detach().clone())

    def on_before_optimizer_step(self, *args) -> None:
        _sync()  # the backward is done; the parameter update follows
        self._optim_start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args) -> None:
        _sync()
        now = time.perf_counter()
        self.optim.append(now - self._optim_start)
        if self._mark is not None:
            self.step.append(now - self._mark)
        x, y = self.batch
        device = x.device.type
        if self._backbone is None:  # compiled on its own when the run compiles the model
            backbone = module.model.backbone
            self._backbone = torch.compile(backbone) if self.compile else backbone
        t0 = time.perf_counter()
        with _autocast(self.precision, device):
            out = self._backbone(x)
        out.float().sum().backward()
        _sync()
        t1 = time.perf_counter()
        with torch.no_grad(), _autocast(self.precision, device):
            embeddings = module.model(x)
        emb = embeddings.detach().float().requires_grad_(True)
        _sync()
        t2 = time.perf_counter()
        module.objective(emb, y).backward()
        _sync()
        t3 = time.perf_counter()
        # the gradients left by the probes are cleared before the next step's backward
        module.zero_grad(set_to_none=True)
        self.backbone.append(t1 - t0)
        self.loss.append(t3 - t2)
        self._mark = time.perf_counter()


def _config(overrides: Sequence[str], out_dir: str) -> DictConfig:
    size = next((o.split("=", 1)[1] for o in overrides if o.startswith("+size=")), None)
    overrides = [o for o in overrides if not o.startswith("+size=")]
    if size is not None:
        spec = f"{{resize: {size}, crop: {size}, random_resized_crop: false, scale: [0.8, 1.0], flip: true}}"
        overrides += [f"dataset.image_size={size}", f"dataset.transform.train={spec}"]
    return compose_train(out_dir, overrides)


def _autocast(precision: str, device: str) -> torch.autocast:
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(precision))
    return torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bench(name: str, overrides: Sequence[str], steps: int, warmup: int) -> dict[str, object]:
    """Step, backbone-alone and loader-alone times of one configuration."""
    with tempfile.TemporaryDirectory() as out:
        cfg = _config(
            [
                *overrides,
                "logger=none",
                "callbacks=none",
                "eval.before_training=false",
                "eval.raw_baseline=false",
                "trainer.enable_progress_bar=false",
                "trainer.max_epochs=-1",
                f"trainer.max_steps={warmup + steps}",
                "trainer.limit_val_batches=0",
            ],
            out,
        )
        pl.seed_everything(0, verbose=False)
        datamodule = build_datamodule(cfg)
        datamodule.setup("fit")
        module = build_module(cfg)
        timer = InterleavedTimer(
            str(cfg.trainer.precision), bool(cfg.get("channels_last")), bool(cfg.get("compile"))
        )
        trainer: pl.Trainer = hydra.utils.instantiate(
            cfg.trainer, logger=False, callbacks=[timer], enable_checkpointing=False
        )
        trainer.fit(module, datamodule=datamodule)
        # timer.step[i] is step i + 1; keep the steps after warm-up and the probes taken after them
        step = statistics.mean(timer.step[warmup - 1 :])
        alone = statistics.mean(timer.backbone[warmup:])
        loss_time = statistics.mean(timer.loss[warmup:])
        optim = statistics.mean(timer.optim[warmup:])

        device = trainer.strategy.root_device.type
        loader = datamodule.train_dataloader()
        start = time.perf_counter()
        fetched = 0
        for _ in loader:
            fetched += 1
            if fetched == steps:
                break
        data = (time.perf_counter() - start) / fetched
        x = timer.batch[0]
        batch = int(x.shape[0])
        return {
            "backbone": name,
            "input": f"{x.shape[-1]} px",
            "batch": batch,
            "precision": str(cfg.trainer.precision),
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "step img/s": batch / step,
            "backbone img/s": batch / alone,
            "outside": 1.0 - alone / step,
            "data": data / step,
            "loss": loss_time / step,
            "optim": optim / step,
        }


def table(rows: list[dict[str, object]]) -> str:
    cols = list(rows[0])
    lines = [
        "| " + " | ".join(cols) + " |",
        "|"
        + "|".join("---:" if isinstance(rows[0][c], float | int) else "---" for c in cols)
        + "|",
    ]
    for row in rows:
        cells = []
        for c in cols:
            v = row[c]
            if c in ("outside", "data", "loss", "optim"):
                cells.append(f"{100 * v:.1f}%")
            elif isinstance(v, float):
                cells.append(f"{v:.1f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="gpu" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument(
        "--only", nargs="*", help="backbone names of the preset to run (default: all)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps after warm-up")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader workers (dataset.num_workers)"
    )
    parser.add_argument("--precision", help="trainer.precision for every run, e.g. bf16-mixed")
    parser.add_argument(
        "--set", nargs="*", default=[], help="extra config overrides, e.g. loss=margin compile=true"
    )
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1")

    rows = []
    for name, overrides in PRESETS[args.preset]:
        if args.only and name not in args.only:
            continue
        extra = [f"dataset.num_workers={args.workers}", *args.set]
        if args.precision:
            extra.append(f"trainer.precision={args.precision}")
        rows.append(bench(name, [*overrides, *extra], args.steps, args.warmup))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    cpu = platform.processor() or platform.machine()
    text += (
        f"\n\n{args.steps} timed steps after {args.warmup} warm-up; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs ({cpu}); loss and sampler from configs/train.yaml"
        + (f"; overrides: {' '.join(args.set)}" if args.set else "")
    )
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
