"""fedkd: federated, privacy-preserving knowledge distillation."""

__version__ = "0.1.0"
