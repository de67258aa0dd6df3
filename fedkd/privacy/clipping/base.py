"""What a per-sample clipping mode is, and the registry that names them.

DP-SGD needs, per logical batch, the sum of every record's gradient clipped to norm C
(Abadi et al., CCS 2016).  A mode is how that sum is computed: one of Opacus's
grad-sample modes (per-sample gradients materialised by hooks, expanded weights or
functorch; or ghost clipping's norms without them), or fedkd's own.  The optimiser adds
the noise and steps the same way whatever the mode, so a mode changes speed and memory,
never the mechanism.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Protocol

import torch
from torch import nn


class ClippedBackward(Protocol):
    """One attached mode: ``(x, y) → mean loss``, with the clipped per-sample gradients
    left where the DP optimiser takes them."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...

    def close(self) -> None: ...


class ClippingMode(abc.ABC):
    """A way to clip per-sample gradients, by name (``dp-grad-sample-mode``)."""

    name: ClassVar[str]
    opacus_mode: ClassVar[str]
    """The grad-sample mode Opacus's ``make_private`` is asked for."""
    runs_empty_batches: ClassVar[bool] = True
    """Whether the model may run on an empty Poisson batch (else the optimiser is handed
    empty per-sample gradients)."""

    @abc.abstractmethod
    def attach(
        self,
        private_model: nn.Module,
        model: nn.Module,
        criterion: nn.Module | None,
        *,
        max_grad_norm: float,
    ) -> ClippedBackward:
        """The mode's backward for one training call; ``criterion`` is what Opacus
        returned (ghost clipping's loss wrapper), else None."""


CLIPPING_MODES: dict[str, ClippingMode] = {}


def register_clipping_mode(cls: type[ClippingMode]) -> type[ClippingMode]:
    """Register ``cls`` under its ``name`` (decorator)."""
    if cls.name in CLIPPING_MODES:
        raise ValueError(f"clipping mode {cls.name!r} registered twice")
    CLIPPING_MODES[cls.name] = cls()
    return cls


def clipping_mode(name: str) -> ClippingMode:
    try:
        return CLIPPING_MODES[name]
    except KeyError:
        known = sorted(CLIPPING_MODES)
        raise ValueError(f"unknown clipping mode {name!r}; known: {known}") from None


class PlainBackward:
    """Forward, cross-entropy, backward: the per-sample work is the grad-sample hooks'."""

    def __init__(self, private_model: nn.Module, criterion: nn.Module) -> None:
        self.private_model = private_model
        self.criterion = criterion

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = self.criterion(self.private_model(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    def close(self) -> None:
        pass


class OpacusPerSample(ClippingMode):
    """A mode in which Opacus's grad-sample module computes the per-sample gradients:
    the backward is plain cross-entropy (``hooks``, ``ew``, ``functorch``)."""

    def attach(
        self,
        private_model: nn.Module,
        model: nn.Module,
        criterion: nn.Module | None,
        *,
        max_grad_norm: float,
    ) -> ClippedBackward:
        return PlainBackward(private_model, nn.CrossEntropyLoss())
