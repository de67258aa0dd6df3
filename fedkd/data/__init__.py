"""Offline data: sources, partitioning, the public transfer set, the federated builder."""
