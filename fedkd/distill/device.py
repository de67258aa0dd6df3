"""Device choice and seeding shared by every loop."""

from __future__ import annotations

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else is passed to torch."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator for shuffling, independent of torch's global RNG."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
