"""The server's coordinator, in parts: a short conductor over request planning, reply
verification, privacy claims, names, the knowledge kept between rounds, and checkpoints.
"""

from fedkd.coordinator.claims import CLAIM_TOLERANCE, PrivacyClaims, composed_epsilon
from fedkd.coordinator.conductor import Coordinator
from fedkd.coordinator.knowledge import KnowledgeKeeper, ReleaseObserver
from fedkd.coordinator.names import NodeNames
from fedkd.coordinator.plan import RoundPlan
from fedkd.coordinator.round import BOUNDARY_RULE, Delivery, NodeRound, RoundOutcome
from fedkd.coordinator.state import CoordinatorState, ResumeRefused
from fedkd.coordinator.verification import ReplyVerifier

__all__ = [
    "BOUNDARY_RULE",
    "CLAIM_TOLERANCE",
    "Coordinator",
    "CoordinatorState",
    "Delivery",
    "KnowledgeKeeper",
    "NodeNames",
    "NodeRound",
    "PrivacyClaims",
    "ReleaseObserver",
    "ReplyVerifier",
    "ResumeRefused",
    "RoundOutcome",
    "RoundPlan",
    "composed_epsilon",
]
