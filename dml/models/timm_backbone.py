"""Any timm model by name as a feature extractor (classifier removed, pooled features)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dml.config import ConfigError

_HF_FILES = ("model.safetensors", "pytorch_model.bin")


def _timm():
    try:
        import timm
    except ImportError as err:  # timm is an optional dependency
        raise ImportError(
            "backbone=timm needs the timm package: pip install 'dml[timm]' (or pip install timm)"
        ) from err
    return timm


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch checkpoint (unwrapping `state_dict` / `model`)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone.net.weights={str(path)!r} does not exist; point it at a weights file"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


class TimmBackbone(nn.Module):
    """`timm.create_model(name, num_classes=0)`: images -> pooled features of width `out_features`.

    pretrained=True loads timm's default weights for `name` from the usual cache (Hugging Face hub
    cache, or the torch hub cache for weights hosted elsewhere), downloading them where a network is
    available; `weights=PATH` loads a local file (.safetensors or torch) strictly, classifier dropped.
    Extra keyword arguments go to `timm.create_model` (e.g. drop_path_rate).
    """

    def __init__(
        self,
        name: str = "resnet50",
        pretrained: bool = False,
        weights: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        timm = _timm()
        try:
            self.net = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
        except RuntimeError as err:
            if "Unknown model" not in str(err):
                raise
            close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:8]
            raise ValueError(
                f"backbone.net.name={name!r} is not a timm model; similar names: {close}"
            ) from err
        self.name = name
        self.out_features = int(self.net.num_features)
        if weights is not None:
            self.load_weights(weights)
        elif pretrained:
            self._load_pretrained(timm)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load `path` strictly into the network, ignoring the checkpoint's classifier."""
        state = read_state_dict(path)
        classifier = self.net.pretrained_cfg.get("classifier") or ()
        heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        state = {k: v for k, v in state.items() if not any(k.startswith(h + ".") for h in heads)}
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{path} does not match timm model {self.name!r}: {err}") from err

    def _load_pretrained(self, timm: Any) -> None:
        cfg = self.net.pretrained_cfg
        cached = cached_weights(cfg)
        if cached is not None:
            self.load_weights(cached)
            return
        where = weights_location(cfg)
        offline = _hf_offline()
        try:
            if offline:
                raise OSError("HF_HUB_OFFLINE is set")
            loaded = timm.create_model(self.name, pretrained=True, num_classes=0)
        except Exception as err:  # no network, or no weights for this name
            raise ConfigError(
                f"backbone.net.pretrained=true: no cached weights for timm model {self.name!r} and the download "
                f"failed ({err}). {where}"
            ) from err
        self.net.load_state_dict(loaded.state_dict(), strict=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _hf_offline() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def cached_weights(cfg: dict[str, Any]) -> Path | None:
    """The file the usual caches already hold for a timm pretrained config, if any."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            names = (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else _HF_FILES
            for name in names:
                found = try_to_load_from_cache(hub_id, name)
                if isinstance(found, str) and os.path.isfile(found):
                    return Path(found)
    url = cfg.get("url")
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        if path.is_file():
            return path
    return None


def weights_location(cfg: dict[str, Any]) -> str:
    """What to download and where to put it, for a machine without network."""
    hub_id, url = cfg.get("hf_hub_id"), cfg.get("url")
    if hub_id:
        try:
            from huggingface_hub import constants

            cache = constants.HF_HUB_CACHE
        except ImportError:
            cache = "~/.cache/huggingface/hub"
        folder = "models--" + hub_id.replace("/", "--")
        return (
            f"Without network: download https://huggingface.co/{hub_id}/resolve/main/{_HF_FILES[0]} elsewhere "
            f"and set backbone.net.weights=/path/to/{_HF_FILES[0]}, or copy the folder {folder} of a Hugging Face "
            f"cache that holds it (e.g. after `huggingface-cli download {hub_id}`) into {cache}"
        )
    if url:
        target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        return f"Without network: download {url} elsewhere and put it at {target}, or set backbone.net.weights=/path/to/{target.name}"
    return "This timm model has no published weights; use backbone.net.pretrained=false or backbone.net.weights=PATH"
