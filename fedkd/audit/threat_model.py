"""Who attacks, holding what: the three views every audit result is reported under.

The audit never reaches into a client.  Each view uses only what that party holds in an
ordinary run:

* ``server`` — the coordinating server: every round, the target's released soft labels on
  that round's anchors (as received, after dequantisation).  It never sees the target's
  model, so it distils a surrogate model from the releases (anchors → released soft
  labels) and scores canaries on the surrogate.
* ``peer`` — another hospital: its own final model, which learned from the fused targets
  it received (into which the target's releases were mixed).
* ``model-holder`` — anyone holding the target's final model (a deployment, a leak),
  querying it as a black box: class probabilities for an input.

The unit of privacy is one record of the target's private training data; a canary
repeated ``k`` times is a group of ``k`` records, and its bound is about that group.
"""

from __future__ import annotations

from enum import StrEnum


class View(StrEnum):
    SERVER = "server"
    PEER = "peer"
    MODEL_HOLDER = "model-holder"

    @property
    def holds(self) -> str:
        return _HOLDS[self]


_HOLDS = {
    View.SERVER: "the target's released soft labels on the anchors, every round "
    "(scored on a surrogate distilled from them)",
    View.PEER: "another hospital's own final model, distilled from its fused targets",
    View.MODEL_HOLDER: "the target's final model, queried as a black box",
}

UNIT_OF_PRIVACY = "one record of the target client's private training data"


def threat_model_text(delta: float | None) -> str:
    """The opening of every audit result."""
    lines = [
        "Threat model. Three attackers, each with only what it holds in an ordinary run:",
        *(f"- {view.value}: {view.holds}" for view in View),
        f"Unit of privacy: {UNIT_OF_PRIVACY}; δ = {delta if delta is not None else 'n/a'}.",
        "An empirical ε lower bound from a black-box attack is expected to sit far below the "
        "accountant's ε: the accountant bounds the worst case over all data and attackers; "
        "the audit measures what these attackers got from these canaries. A lower bound "
        "above the claimed ε means the guarantee is broken.",
    ]
    return "\n".join(lines)


def not_covered(*, target: int, seed: int, shadows: int, repeats: int) -> list[str]:
    """What this audit did not test, so that no one reads more into it."""
    items = [
        f"one target node (partition {target}): other hospitals' records were not canaried",
        "final models only for the model holder and the peer: no attack on intermediate "
        "rounds' models (the server view does read every round's releases)",
        "black-box attacks only: no white-box (gradient or weight) attack, no attacker "
        "who chooses the public anchors or the fused targets",
        f"one seed for the run and the canaries (audit seed {seed}): another draw of the "
        "data, the partition or the coins can move every figure",
        "two canary kinds (out-of-distribution noise, mislabelled records): worst-case "
        "records for other data can leak more",
        "one collusion pattern per view: the server and a peer colluding, or several "
        "peers pooling their models, were not attacked",
    ]
    if not shadows:
        items.append("no shadow runs: no LiRA, no likelihood test on the releases")
    if repeats > 1:
        items.append(
            f"canaries were repeated {repeats}×: figures are about groups of {repeats} "
            "records, not one record"
        )
    items.append(
        "a bound below the claim is not proof of privacy: only the accountant's ε bounds "
        "every attacker"
    )
    return items
