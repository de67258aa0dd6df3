"""What a node takes from the run config: the protocol it trains and releases under.

The server's run config (:class:`fedkd.config.RunConfig`) holds everything a run is; a
node needs only a part of it — the privacy the run asks for, the optimiser, distillation
and swing settings, the public data to find, the round count and the seed.  The entry
point that parsed the run config (the ClientApp, the CLI, a simulation) hands the node
this view (``RunConfig.protocol()``); the node never imports the server's settings, so
what only the server decides (strategy and its parameters, timeouts, where results go,
who takes part) cannot leak into what a node computes.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedkd.data.public import PublicDataSpec
from fedkd.distill.settings import DistillConfig, OptimiserConfig
from fedkd.privacy.policy import PrivacyRequest
from fedkd.privacy.recipe import PrivateTraining
from fedkd.privacy.swing_config import SwingConfig


@dataclass(frozen=True)
class RunProtocol:
    """One run's protocol, as every node of the run follows it."""

    fingerprint: str
    """What makes two runs one run (``RunConfig.fingerprint``): it keys the node's reply
    cache and round progress, so a resumed run gets its answered rounds back."""
    seed: int
    num_server_rounds: int
    max_payload_bytes: int
    public: PublicDataSpec
    """The public data the run names (a node may hold its own copy of the bundle)."""
    model: str
    """The run's architecture; a node's own ``model`` key overrides it."""
    privacy: PrivacyRequest
    """The privacy the run asks for; the node's policy decides what it grants."""
    optimiser: OptimiserConfig
    """Local training without DP."""
    local_epochs: int
    private_training: PrivateTraining
    """DP-SGD's settings (0: the recipe's), as the server plans and checks them."""
    distill: DistillConfig
    swing: SwingConfig | None
    """Swing release settings, or None when releases are plain softmax(z / τ)."""
    swing_receive: bool
    global_test_size: int
    """Public test rows a node evaluates on (0: all)."""
