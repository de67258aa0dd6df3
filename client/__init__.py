"""Flower ClientApp for fedkd."""
