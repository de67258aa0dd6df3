"""Summaries, comparison tables and plots built from run directories."""
