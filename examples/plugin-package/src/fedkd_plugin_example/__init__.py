"""Example fedkd plugin: fedkd imports its modules through the entry points in
pyproject.toml; importing a module registers what it defines."""
