"""DP-SGD local training on private records with Opacus (Abadi et al., CCS 2016).

Per-sample gradients are clipped to ``max_grad_norm`` C and Gaussian noise N(0, σ²C²) is
added to their sum; minibatches are Poisson samples of the private records only (rate
q = 1/⌈n/B⌉ ≈ B/n, never diluted by public anchors), which is what the accountants assume.
The logical batch B is independent of memory: BatchMemoryManager splits it into physical
batches of at most ``max_physical_batch_size`` and the optimizer steps once per logical
batch.  The steps are counted by the optimizer's own accounting hook and returned as
:class:`~fedkd.privacy.accounting.DPSteps`, so what is accounted is what was taken.

Every value the mechanism draws — each step's Poisson mask and Gaussian noise — comes
from one :class:`~fedkd.privacy.csprng.ChaCha20Stream` (256-bit key, fresh per call
unless a caller passes a flagged reproducible one), never from a ``torch.Generator``:
the masks from :class:`~fedkd.privacy.poisson_sampler.CsprngPoissonSampler`, the noise
from :func:`~fedkd.privacy.secure_noise.noise_like` (a sum of normals against
floating-point attacks).  Opacus still clips, steps and accounts.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.optimizers.optimizer import DPOptimizer, _check_processed_flag, _mark_as_processed
from opacus.utils.batch_memory_manager import BatchMemoryManager
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fedkd.distill.settings import OptimiserConfig
from fedkd.privacy import conv_grad_sample  # noqa: F401  (registers the Conv2d grad sampler)
from fedkd.privacy.accounting import DPSteps
from fedkd.privacy.clipping import CLIPPING_MODES, ClippingMode, clipping_mode
from fedkd.privacy.csprng import ChaCha20Stream
from fedkd.privacy.output_grads import unsupported_layers
from fedkd.privacy.poisson_sampler import CsprngPoissonSampler
from fedkd.privacy.sampling import sample_rate
from fedkd.privacy.secure_noise import noise_like

GRAD_SAMPLE_MODES = tuple(CLIPPING_MODES)
"""Every clipping mode registered (:mod:`fedkd.privacy.clipping`), plugins included."""


class PrivacyConfigError(ValueError):
    """A model or setting that DP-SGD cannot run with; the message names the cause."""


def validate_private_model(model: nn.Module) -> None:
    """Raise :class:`PrivacyConfigError` naming every layer Opacus cannot make private."""
    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        details = "; ".join(str(e) for e in errors)
        raise PrivacyConfigError(f"model is not DP-SGD compatible: {details}")


def default_grad_sample_mode(model: nn.Module) -> str:
    """The fastest valid mode for ``model`` (measured by simulations/bench_dp_throughput.py).

    ``output-grads`` (:mod:`fedkd.privacy.output_grads`: one backward pass without batched
    parameter gradients, Linear layers clipped without per-sample gradients, the
    grouped-kernel Conv2d sampler) is fastest wherever it applies.  For the models it
    does not serve (layers without a grad sampler, shared layers) ghost clipping is next
    on Linear-only models and ``hooks`` on convolutional ones.  All three take the empty
    batches Poisson sampling can draw.
    """
    if not unsupported_layers(model):
        return "output-grads"
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    return "hooks" if has_conv else "ghost"


class _TensorRows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """In-memory records that a DataLoader fetches a whole batch at a time.

    ``__getitems__`` indexes the tensors once per batch; the default per-record fetch and
    collate costs more than a small model's forward and backward pass.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        return [self.x[rows], self.y[rows]]


def _already_batched(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch


@dataclass(frozen=True)
class PrivateTraining:
    loss: float
    spent: DPSteps


def train_private(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    cfg: OptimiserConfig,
    noise_multiplier: float,
    max_grad_norm: float,
    grad_sample_mode: str | None = None,
    max_physical_batch_size: int = 256,
    randomness: ChaCha20Stream | None = None,
    nominal_records: int | None = None,
) -> PrivateTraining:
    """``epochs`` epochs of DP-SGD on the private records ``(x, y)``, updating ``model``.

    ``randomness`` alone determines the Poisson sampling masks and the Gaussian noise
    (nothing comes from global random state); ``None`` keys a stream with fresh OS
    entropy, which is what every release that claims ε must use.

    ``nominal_records`` (the node's published record count) fixes the mechanism: sample
    rate ``q = 1/⌈nominal/B⌉``, ``⌈nominal/B⌉`` steps per epoch and the gradient average's
    denominator ``nominal·q`` all come from it, so the actual number of records changes
    nothing but which records are drawn.  ``None`` uses the actual count (and so the
    mechanism, like the reply's q and steps, depends on it).

    Returns the mean loss of the last epoch and the DP steps actually taken.
    """
    if len(x) == 0:
        raise PrivacyConfigError("DP-SGD needs at least one private record")
    if not noise_multiplier > 0 or not max_grad_norm > 0:
        raise PrivacyConfigError(
            f"noise multiplier and max grad norm must be > 0, "
            f"got {noise_multiplier} and {max_grad_norm}"
        )
    try:
        mode = clipping_mode(grad_sample_mode or default_grad_sample_mode(model))
    except ValueError as exc:
        raise PrivacyConfigError(str(exc)) from None
    stream = randomness or ChaCha20Stream.fresh()
    mechanism_records = nominal_records or len(x)
    rate = sample_rate(mechanism_records, cfg.batch_size)
    model.train()
    validate_private_model(model)
    # Opacus derives q and the steps from the actual record count; the mechanism's come
    # from the nominal one, so the actual count changes only which records are drawn.
    loader = DataLoader(
        _TensorRows(torch.from_numpy(x), torch.from_numpy(y)),
        batch_sampler=CsprngPoissonSampler(
            num_samples=len(x), sample_rate=rate, steps=round(1 / rate), stream=stream
        ),
        collate_fn=_already_batched,
    )
    optimiser = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    with warnings.catch_warnings():
        for message in _HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        engine = PrivacyEngine(accountant="rdp", secure_mode=False)
        loss = _run_epochs(
            engine,
            model,
            loader,
            optimiser,
            epochs=epochs,
            mode=mode,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            max_physical_batch_size=max_physical_batch_size,
            stream=stream,
            expected_batch_size=max(1, round(mechanism_records * rate)),
        )
    return PrivateTraining(loss=loss, spent=_taken(engine, noise_multiplier, rate))


# Opacus warns that its RNG is not cryptographically secure (its secure_mode needs
# torchcsprng; the stream here replaces every draw it would make) and that full backward
# hooks fire on inputs that need no grad; neither changes what is computed or accounted.
_HARMLESS_WARNINGS = (
    r".*[Ss]ecure RNG turned off.*",
    r".*Full backward hook is firing.*",
    r".*[Uu]sing a non-full backward hook.*",
)


def _run_epochs(
    engine: PrivacyEngine,
    model: nn.Module,
    loader: DataLoader[tuple[torch.Tensor, ...]],
    optimiser: torch.optim.Optimizer,
    *,
    epochs: int,
    mode: ClippingMode,
    noise_multiplier: float,
    max_grad_norm: float,
    max_physical_batch_size: int,
    stream: ChaCha20Stream,
    expected_batch_size: int,
) -> float:
    device = next(model.parameters()).device
    made = engine.make_private(
        module=model,
        optimizer=optimiser,
        criterion=nn.CrossEntropyLoss(),
        data_loader=loader,
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        # The loader already samples Poisson batches from the stream.
        poisson_sampling=False,
        grad_sample_mode=mode.opacus_mode,
    )
    if mode.opacus_mode == "ghost":  # ghost clipping wraps the loss for its second pass
        private_model, dp_optimiser, criterion, dp_loader = made
    else:
        private_model, dp_optimiser, dp_loader = made
        criterion = None
    backward = mode.attach(private_model, model, criterion, max_grad_norm=max_grad_norm)
    dp_optimiser.add_noise = _noise_from(stream, dp_optimiser)
    # The gradient average's denominator is the nominal expected batch, never the actual.
    dp_optimiser.expected_batch_size = expected_batch_size
    trainable = [p for p in model.parameters() if p.requires_grad]
    private_model.train()
    last = float("nan")
    try:
        for _ in range(epochs):
            total, count = 0.0, 0
            with BatchMemoryManager(
                data_loader=dp_loader,
                max_physical_batch_size=max_physical_batch_size,
                optimizer=dp_optimiser,
            ) as batches:
                for xb, yb in batches:
                    xb, yb = xb.to(device), yb.to(device)
                    dp_optimiser.zero_grad(set_to_none=True)
                    if not len(xb) and not mode.runs_empty_batches:
                        loss = _no_records(trainable)
                    else:
                        loss = backward(xb, yb)
                    dp_optimiser.step()
                    if len(xb):  # an empty Poisson sample still steps (noise only)
                        total += float(loss.detach()) * len(xb)
                        count += len(xb)
            last = total / count if count else float("nan")
    finally:
        # Leave the caller's model as it was given: no hooks, no grad_sample attributes.
        backward.close()
        private_model.remove_hooks()
        private_model.cleanup()
    return last


def _no_records(trainable: list[nn.Parameter]) -> torch.Tensor:
    """An empty batch's per-sample gradients (none), for the modes that cannot run one."""
    for p in trainable:
        p.grad_sample = p.new_zeros((0, *p.shape))  # type: ignore[attr-defined]
    return torch.zeros(())


def _noise_from(stream: ChaCha20Stream, optimiser: DPOptimizer) -> Callable[[], None]:
    """The optimizer's ``add_noise`` with every draw from ``stream``: as Opacus's,
    ``p.grad = Σ clip(g_i) + N(0, σ²C²)`` for every parameter."""

    def add_noise() -> None:
        params = optimiser.params
        for p in params:
            _check_processed_flag(p.summed_grad)
        std = optimiser.noise_multiplier * optimiser.max_grad_norm
        noises = noise_like(stream, [p.summed_grad for p in params], std)
        for p, noise in zip(params, noises, strict=True):
            p.grad = (p.summed_grad + noise).view_as(p)
            _mark_as_processed(p.summed_grad)

    return add_noise


def _taken(engine: PrivacyEngine, noise_multiplier: float, rate: float) -> DPSteps:
    """The steps Opacus's accountant hook counted, at the mechanism's q (the hook's own q
    comes from the actual record count, which the mechanism does not use)."""
    history = engine.accountant.history
    if not history:
        raise RuntimeError("DP-SGD took no step; nothing was trained or accounted")
    steps = sum(s for _, _, s in history)
    return DPSteps(noise_multiplier=noise_multiplier, sample_rate=rate, steps=steps)
