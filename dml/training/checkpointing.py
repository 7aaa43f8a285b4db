"""Checkpoints that survive a kill and resume exactly: atomic writes, safe loads, training state.

A checkpoint is written to a temporary file beside its target, fsynced and renamed over it, so a
process killed in the middle of a save leaves the previous ``last.ckpt`` intact. Loading always
uses ``torch.load(weights_only=True)``: a checkpoint holds only tensors, numbers, strings, lists
and dicts (the run config is a plain dict), never pickled objects. Besides what Lightning stores
(weights, optimizer, scheduler, loop progress), a dml checkpoint carries the random number
generator states (torch, CUDA, numpy, python), the tuple sampler's generator and the batch
sampler's position, so a run resumed mid-epoch continues with the batch where it stopped.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig

from dml.config import ConfigError
from dml.io import atomic_write_bytes

log = logging.getLogger("dml")

# what a config may change without changing the shapes of the saved weights is not compared
_MODEL_KEYS = ("embedding_dim", "backbone", "loss")
# resuming needs the same batch plan: these config values must match the checkpoint's
_RESUME_KEYS = ("seed", "dataset.name", "dataset.classes_per_batch", "dataset.m_per_class")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO: atomic, fsynced saves and ``weights_only=True`` loads."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())
        _fsync_dir(Path(path).parent)

    def load_checkpoint(
        self,
        path: str | os.PathLike,
        map_location: Any = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError("dml loads checkpoints with weights_only=True only")
        return read_checkpoint(path, map_location=map_location)


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files a killed save left in `folder` (``.<name>.<random>.tmp``); returns them."""
    folder = Path(folder)
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


# ---- reading -------------------------------------------------------------------------------
def read_checkpoint(
    path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"checkpoint {str(path)!r} does not exist; pass a .ckpt from a run's checkpoints/ folder"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise ConfigError(
            f"checkpoint {str(path)!r} holds objects other than tensors, numbers, strings, lists and dicts, "
            f"so it is not loaded (weights_only=True); only load checkpoints written by dml-train ({_first_line(err)})"
        ) from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        raise ConfigError(
            f"checkpoint {str(path)!r} cannot be read: it is truncated or not a PyTorch checkpoint ({_first_line(err)}); "
            "pass another .ckpt (a killed save never replaces last.ckpt, so checkpoints/last.ckpt of the run is intact)"
        ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ConfigError(
            f"checkpoint {str(path)!r} is not a dml-train checkpoint (it holds no state_dict)"
        )
    return ckpt


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def checkpoint_config(ckpt: Mapping[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """The run config a dml checkpoint carries (``hyper_parameters.config``)."""
    config = (ckpt.get("hyper_parameters") or {}).get("config")
    if not config:
        raise ConfigError(
            f"checkpoint {str(path)!r} is not a dml-train checkpoint (it holds no run config)"
        )
    return dict(config)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], keys: tuple[str, ...]
) -> list[str]:
    """``key (checkpoint A, this run B)`` for each value under `keys` that differs."""
    a, b = _flatten(saved), _flatten(current)
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == k or key.startswith(k + ".") for k in keys) and a.get(key) != b.get(key):
            out.append(
                f"{key} (checkpoint {a.get(key, '<unset>')!r}, this run {b.get(key, '<unset>')!r})"
            )
    return out


def state_dict_mismatches(
    saved: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]
) -> list[str]:
    """Human-readable differences in keys and shapes between two state dicts."""
    out = []
    for key in sorted(set(saved) | set(current)):
        if key not in current:
            out.append(f"{key} is in the checkpoint but not in this run's model")
        elif key not in saved:
            out.append(f"{key} is in this run's model but not in the checkpoint")
        elif (
            torch.is_tensor(saved[key])
            and torch.is_tensor(current[key])
            and saved[key].shape != current[key].shape
        ):
            out.append(
                f"{key} has shape {list(saved[key].shape)} in the checkpoint, {list(current[key].shape)} in this run"
            )
    return out


def check_compatible(
    ckpt: Mapping[str, Any],
    path: str | os.PathLike,
    current_state: Mapping[str, torch.Tensor],
    current_config: Mapping[str, Any] | DictConfig,
    resume: bool = True,
    fix: str = "Use the checkpoint's settings (its run folder's .hydra/config.yaml) or start a new run without "
    "ckpt_path/resume.",
) -> None:
    """Raise ConfigError naming both sides when the checkpoint does not fit this run's model (or batch plan)."""
    from omegaconf import OmegaConf

    if isinstance(current_config, DictConfig):
        current_config = OmegaConf.to_container(current_config, resolve=True)
    saved_config = checkpoint_config(ckpt, path)
    mismatches = state_dict_mismatches(ckpt["state_dict"], current_state)
    if mismatches:
        diffs = config_differences(saved_config, current_config, _MODEL_KEYS)
        raise ConfigError(
            f"checkpoint {str(path)!r} was written by a run with another model: "
            + "; ".join(mismatches[:4])
            + (f" (and {len(mismatches) - 4} more)" if len(mismatches) > 4 else "")
            + ". "
            + (f"The configs differ in: {'; '.join(diffs[:6])}. " if diffs else "")
            + fix
        )
    if resume:
        diffs = config_differences(saved_config, current_config, _RESUME_KEYS)
        if diffs:
            raise ConfigError(
                f"checkpoint {str(path)!r} cannot be resumed with this config: {'; '.join(diffs)}. "
                "Resuming continues the checkpoint's batch plan, so these must match: drop those overrides, "
                "or start a new run without ckpt_path/resume."
            )


def load_model_weights(
    model: torch.nn.Module,
    ckpt: Mapping[str, Any],
    path: str | os.PathLike,
    config: Mapping[str, Any] | DictConfig,
    prefix: str = "model.",
) -> None:
    """Load the ``prefix`` part of a Lightning checkpoint into `model`, with a clear error on a shape mismatch."""
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    current = model.state_dict()
    if state_dict_mismatches(state, current):
        check_compatible(
            {**ckpt, "state_dict": {prefix + k: v for k, v in state.items()}},
            path,
            {prefix + k: v for k, v in current.items()},
            config,
            resume=False,
            fix="Drop the overrides that change the model (the checkpoint's own config rebuilds it).",
        )
    model.load_state_dict(state, strict=True)


def resume_checkpoint(cfg: DictConfig, ckpt_dir: Path) -> str | None:
    """The checkpoint to continue from: ``ckpt_path``, else with ``resume=true`` the run folder's last.ckpt."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        if not Path(str(ckpt_path)).is_file():
            raise ConfigError(
                f"ckpt_path={str(ckpt_path)!r} does not exist; pass a .ckpt from a run's checkpoints/ folder, or "
                "resume=true hydra.run.dir=<run folder> to continue that run's last.ckpt"
            )
        log.info("continuing from ckpt_path=%s", ckpt_path)
        return str(ckpt_path)
    if cfg.get("resume"):
        last = ckpt_dir / "last.ckpt"
        if last.is_file():
            log.info("resume=true: continuing from %s", last)
            return str(last)
        log.warning(
            "resume=true but %s does not exist: starting from step 0 (to continue an earlier run, pass "
            "hydra.run.dir=<that run's folder>)",
            last,
        )
    return None


# ---- training state beyond Lightning's -----------------------------------------------------
def capture_rng_states() -> dict[str, Any]:
    """torch, CUDA, numpy and python RNG states as tensors and numbers (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "algorithm": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_states(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng_states`` (CUDA states only when as many devices are present)."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["algorithm"],
            np_state["keys"].numpy().astype(np.uint32),
            int(np_state["pos"]),
            int(np_state["has_gauss"]),
            float(np_state["cached_gaussian"]),
        )
    )
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def training_state(sampler: Any, nonfinite_steps: int) -> dict[str, Any]:
    """What the module adds to a checkpoint: RNG states, the tuple sampler's generators, skipped steps."""
    state: dict[str, Any] = {"rng": capture_rng_states(), "nonfinite_steps": int(nonfinite_steps)}
    if callable(getattr(sampler, "state_dict", None)):
        state["sampler"] = sampler.state_dict()
    return state
