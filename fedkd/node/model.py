"""A node's model: built from its architecture name, kept between messages as arrays."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fedkd.models import ModelSpec, build_model
from fedkd.privacy.private_files import owner_only
from fedkd.wire.types import ModelWeights


def init_model(
    architecture: str, *, input_shape: tuple[int, ...], num_classes: int, run_seed: int
) -> nn.Module:
    """``architecture``, initialised from the run seed and the architecture name.

    Nodes with the same architecture start from the same weights, as weight averaging
    requires (averaging independently initialised networks destroys both).  The seed is
    applied inside a forked RNG, so no global random state leaks out.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{run_seed}/init/{architecture}".encode()))
        spec = ModelSpec(input_shape=input_shape, num_classes=num_classes)
        return build_model(architecture, spec)


def model_state(model: nn.Module) -> ModelWeights:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_state(model: nn.Module, state: ModelWeights) -> None:
    """Load ``state`` into ``model``; a missing key, extra key or shape mismatch raises."""
    tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
    model.load_state_dict(tensors, strict=True)


MODEL_KEY_PREFIX = "state/"


def save_model(path: Path, architecture: str, state: ModelWeights) -> Path:
    """Write a node's model (architecture name and weights) atomically, as ``.npz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    arrays: dict[str, np.ndarray] = {f"{MODEL_KEY_PREFIX}{k}": v for k, v in state.items()}
    arrays["architecture"] = np.array(architecture)
    np.savez(owner_only(partial), **arrays)  # type: ignore[arg-type]
    os.replace(partial, path)
    return path


def load_model(path: Path, *, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A node's kept model (see :func:`save_model`), ready for inference on the CPU."""
    with np.load(path, allow_pickle=False) as f:
        architecture = str(f["architecture"])
        state = {
            k[len(MODEL_KEY_PREFIX) :]: f[k] for k in f.files if k.startswith(MODEL_KEY_PREFIX)
        }
    model = build_model(architecture, ModelSpec(input_shape=input_shape, num_classes=num_classes))
    load_state(model, state)
    return model.eval()
