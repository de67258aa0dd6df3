"""Flower ServerApp for fedkd."""
