"""Build the loss of a run from its `loss` config node: what the class takes, what the run fills in.

A loss file (configs/loss/<name>.yaml) holds the arguments of its `_target_` class plus `_name_`, the
file's own name. Three rules turn that node into the class's keyword arguments:

- Keys the class does not take are left out (and listed in the log): `loss._target_=<another
  class>` on top of `loss=margin` does not hand the margin file's `beta` or `learn_beta` to a class
  that has none. The keywords a class takes are those of its `__init__`, following `**kwargs` up
  its base classes (pytorch-metric-learning passes `distance`, `reducer`, regularizers down).
- When `_target_` names another class than the loss file's, the keys that still hold the file's
  value are left out too: they were chosen for the file's class (the margin file's `margin: 0.2`
  is not ProxyAnchor's margin). A value set on the command line (`loss.margin=0.3`) is kept.
- `num_classes` and `embedding_size` come from the run: from the number of classes of the train
  split and from `embedding_dim`, where the class requires them and they are unset, or where the
  node says `auto` (also in nested `_target_` nodes, e.g. SoftTriple's regularizer). A value that
  contradicts the run is a ConfigError naming the fix.

The device needs no argument: the loss is a submodule of the LightningModule and moves with it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dml.config import ConfigError, config_dir

log = logging.getLogger("dml")

# what a loss may ask of the run: filled in where required and unset, or where the node says `auto`
AUTO = "auto"
RUN_KEYS = ("num_classes", "embedding_size")
# keys of a loss node that are dml's, never the class's
NAME_KEY = "_name_"


def accepted_arguments(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword arguments `cls(...)` takes: its `__init__`'s, and while that ends in `**kwargs`, its
    base classes' (up to torch.nn.Module, whose own `**kwargs` takes nothing)."""
    found: dict[str, inspect.Parameter] = {}
    for base in cls.__mro__:
        if base in (object, nn.Module) or "__init__" not in vars(base):
            continue
        params = inspect.signature(vars(base)["__init__"]).parameters
        for name, param in list(params.items())[1:]:  # skip self
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                found.setdefault(name, param)
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return found


def loss_class(node: Mapping[str, Any]) -> type:
    """The class named by the node's `_target_`; a ConfigError naming `loss._target_` otherwise."""
    target = node.get("_target_")
    if not target:
        raise ConfigError(
            "the loss config has no _target_; choose loss=<name> or set loss._target_=<class>"
        )
    try:
        cls = hydra.utils.get_class(str(target))
    except Exception as err:
        raise ConfigError(
            f"loss._target_={target} is not an importable class ({err}); name one such as "
            "pytorch_metric_learning.losses.ProxyAnchorLoss"
        ) from err
    return cls


def _file_values(name: str | None) -> dict[str, Any] | None:
    """The values the loss file `configs/loss/<name>.yaml` sets, or None when there is no such file."""
    if not name:
        return None
    path = config_dir() / "loss" / f"{name}.yaml"
    if not path.is_file():
        return None
    values = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    values.pop("defaults", None)
    return values


def _resolve_auto(value: Any, run: Mapping[str, int]) -> Any:
    """`auto` under a run key replaced by the run's value, in nested nodes too."""
    if isinstance(value, dict):
        return {
            k: run[k] if (k in run and v == AUTO) else _resolve_auto(v, run)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_resolve_auto(v, run) for v in value]
    return value


def needs_classes(node: Mapping[str, Any]) -> bool:
    """True when building the loss needs the train split's classes (so the data first): the class
    takes `num_classes` and it is set (checked against the data), `auto` (also in a nested node),
    or required."""
    params = accepted_arguments(loss_class(node))
    if "num_classes" not in params:
        return False
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    nested = _resolve_auto(values, {"num_classes": -1}) != values  # an `auto`, at any depth
    required = params["num_classes"].default is inspect.Parameter.empty
    return nested or required or values.get("num_classes") is not None


def loss_arguments(
    node: Mapping[str, Any],
    num_classes: int | None = None,
    embedding_dim: int | None = None,
) -> tuple[type, dict[str, Any]]:
    """(class, keyword arguments) of the loss node, by the rules in the module docstring."""
    cls = loss_class(node)
    values = (
        OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    )
    target = values.pop("_target_")
    file_values = _file_values(values.pop(NAME_KEY, None))
    params = accepted_arguments(cls)
    dropped = sorted(k for k in values if k not in params and not k.startswith("_"))
    kwargs = {k: v for k, v in values.items() if k in params or k.startswith("_")}
    if file_values is not None and file_values.get("_target_") != target:
        # the file's choices for its own class: a key still holding the file's value is dropped
        same = sorted(k for k, v in kwargs.items() if k in file_values and file_values[k] == v)
        dropped += same
        kwargs = {k: v for k, v in kwargs.items() if k not in same}
    if dropped:
        log.info(
            "loss %s: left out %s (set for another loss class; pass a value with loss.<key>=...)",
            cls.__name__,
            ", ".join(dropped),
        )
    run = {"num_classes": num_classes, "embedding_size": embedding_dim}
    for key in RUN_KEYS:
        if key not in params:
            continue
        value = kwargs.get(key)
        required = params[key].default is inspect.Parameter.empty
        if value == AUTO or (value is None and required):
            if run[key] is None:
                raise ConfigError(
                    f"loss {cls.__name__} needs {key}, which dml fills in from the run; "
                    "build it with the run's data (dml.training.run.build_run)"
                )
            kwargs[key] = run[key]
        elif value is not None and run[key] is not None:
            _check_run_value(key, value, run[key])
    return cls, _resolve_auto(kwargs, {k: v for k, v in run.items() if v is not None})


def _check_run_value(key: str, value: Any, actual: int) -> None:
    """A num_classes below the train split's class count, or an embedding_size other than the
    model's, would fail mid-training; say so now."""
    if key == "num_classes" and int(value) < actual:
        raise ConfigError(
            f"loss.num_classes={value} but the train split has {actual} classes; drop loss.num_classes "
            f"(dml fills it in) or set loss.num_classes=auto"
        )
    if key == "embedding_size" and int(value) != actual:
        raise ConfigError(
            f"loss.embedding_size={value} but embedding_dim={actual}; drop loss.embedding_size "
            "(dml fills it in from embedding_dim)"
        )


def build_loss(
    node: Mapping[str, Any],
    num_classes: int | None = None,
    embedding_dim: int | None = None,
) -> Any:
    """The loss object of a `loss` config node; bad arguments are a ConfigError naming them."""
    cls, kwargs = loss_arguments(node, num_classes, embedding_dim)
    try:
        return hydra.utils.instantiate(
            {"_target_": f"{cls.__module__}.{cls.__qualname__}", **kwargs}
        )
    except InstantiationException as err:
        if isinstance(err.__cause__, (ValueError, TypeError)):
            raise ConfigError(str(err.__cause__)) from err
        raise


def uses_class_weights(loss: Any) -> bool:
    """True for a loss that compares embeddings with learned per-class weights (proxies, class
    centres): pytorch-metric-learning's WeightMixin losses. They take no reference embeddings
    (no cross-batch memory), and a sampler's tuples only weight their items."""
    try:
        from pytorch_metric_learning.losses.mixins import WeightMixin
    except ImportError:  # pragma: no cover - pytorch-metric-learning is a dependency
        return False
    return isinstance(loss, WeightMixin)


def takes_references(loss: Any) -> bool:
    """False for the pytorch-metric-learning losses that refuse `ref_emb` (the class-weight losses
    and FastAP): they cannot use a cross-batch memory."""
    if uses_class_weights(loss):
        return False
    try:
        from pytorch_metric_learning.losses import FastAPLoss
    except ImportError:  # pragma: no cover
        return True
    return not isinstance(loss, FastAPLoss)
