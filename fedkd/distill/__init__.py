"""Client-side loops: local training, soft-label extraction, distillation, evaluation."""
