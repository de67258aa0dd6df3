"""Deployment on Flower's SuperLink and SuperNodes: certificates, node identities, keys."""
