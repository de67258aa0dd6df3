"""The codebase's shape, measured at any commit: what a refactor claims to improve.

    python simulations/code_metrics.py                 # the working tree
    python simulations/code_metrics.py --commit v1.2   # any commit, read through git
    python simulations/code_metrics.py --json          # machine-readable

Everything is read statically (``ast``), nothing is imported, so any two commits compare
on the same machine in a second.  "Rooms" are the package's first-level modules and
subpackages plus ``server`` and ``client``; each room sits on one floor of ``FLOORS``
(lowest first), the layering the code is meant to keep.  An import from a room to a room on
a higher floor "runs back up": a lower layer reaching into a higher one.
"""

from __future__ import annotations

import ast
import json
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
SOURCE_TOPS = ("fedkd", "server", "client")

FLOORS: tuple[tuple[str, ...], ...] = (
    ("__version__", "known_names", "model_names", "interrupt", "allocator", "plugins"),
    ("wire", "models", "data", "distill", "fusion", "participation", "version_check"),
    ("privacy",),
    ("node",),
    ("config", "config_registries", "simulated_nodes"),
    ("coordinator",),
    ("results", "reporting", "run_directory"),
    ("flower_glue", "server", "client", "deploy"),
    ("api",),
    ("audit",),
    ("cli", "fedkd"),
)
"""Lowest first: foundations, then payloads and algorithms, privacy, the node (which sees
only the run's protocol), the run config and the simulated nodes it writes, the server's
coordinator, the run's results, Flower and the apps, the Python API, the audit (which
drives whole runs through the API and only subscribes to the rest), and the CLI and
package root on top."""


app = typer.Typer(help=__doc__, add_completion=False)


@dataclass
class Metrics:
    commit: str
    run_config_fields: int
    run_config_importers: list[str]
    largest_function: dict[str, tuple[str, int]]
    rooms: int
    floors: int
    room_edges: int
    imports: int
    back_up: list[str] = field(default_factory=list)
    in_function_imports: int = 0
    circles: list[list[str]] = field(default_factory=list)
    circles_with_function_imports: list[list[str]] = field(default_factory=list)
    python_lines: int = 0


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def _sources(commit: str | None) -> dict[str, str]:
    """Every Python file under the source tops: path → text, at ``commit`` or on disk."""
    if commit is None:
        return {
            str(p.relative_to(ROOT)): p.read_text()
            for top in SOURCE_TOPS
            for p in sorted((ROOT / top).rglob("*.py"))
        }
    names = _git("ls-tree", "-r", "--name-only", commit, "--", *SOURCE_TOPS).split()
    return {name: _git("show", f"{commit}:{name}") for name in names if name.endswith(".py")}


def module_name(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> str | None:
    """The room a dotted module name belongs to; None outside the project."""
    parts = module.split(".")
    if parts[0] in ("server", "client"):
        return parts[0]
    if parts[0] != "fedkd":
        return None
    return parts[1] if len(parts) > 1 else "fedkd"


def imported_modules(tree: ast.Module) -> list[tuple[str, bool]]:
    """(module, inside a function) for every absolute import of the tree; ``from fedkd
    import x`` names ``fedkd.x`` (a submodule or a name re-exported by the root)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                if child.module == "fedkd":
                    found.extend((f"fedkd.{alias.name}", in_function) for alias in child.names)
                else:
                    found.append((child.module, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def _largest_method(trees: dict[str, ast.Module], class_name: str) -> tuple[str, int]:
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == class_name:
                sizes = [
                    (item.name, (item.end_lineno or item.lineno) - item.lineno + 1)
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                ]
                return max(sizes, key=lambda pair: pair[1])
    return ("(class absent)", 0)


def _run_config_fields(trees: dict[str, ast.Module]) -> int:
    tree = trees.get("fedkd/config.py")
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.ClassDef) and node.name == "RunConfig":
            return sum(isinstance(item, ast.AnnAssign) for item in node.body)
    return 0


def _circles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one room (Tarjan)."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def measure(commit: str | None = None) -> Metrics:
    sources = _sources(commit)
    trees = {path: ast.parse(text) for path, text in sources.items()}
    floor_of = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}
    edges: Counter[tuple[str, str]] = Counter()
    top_level_edges: set[tuple[str, str]] = set()
    importers: set[str] = set()
    in_function = 0
    for path, tree in trees.items():
        module = module_name(path)
        source_room = room_of(module)
        for target, nested in imported_modules(tree):
            if target == "fedkd.config" or target.startswith("fedkd.config."):
                importers.add(module)
            target_room = room_of(target)
            if target_room is None or target_room == source_room or source_room is None:
                continue
            edges[(source_room, target_room)] += 1
            in_function += nested
            if not nested:
                top_level_edges.add((source_room, target_room))
    unknown = sorted({r for edge in edges for r in edge} - set(floor_of))
    if unknown:
        raise typer.BadParameter(f"rooms on no floor: {unknown}; add them to FLOORS")
    back_up = sorted(f"{a} → {b} ({n})" for (a, b), n in edges.items() if floor_of[b] > floor_of[a])
    return Metrics(
        commit=commit or "working tree",
        run_config_fields=_run_config_fields(trees),
        run_config_importers=sorted(importers - {"fedkd.config"}),
        largest_function={
            name: _largest_method(trees, name) for name in ("Coordinator", "ClientNode")
        },
        rooms=len({r for edge in edges for r in edge}),
        floors=len({floor_of[r] for edge in edges for r in edge}),
        room_edges=len(edges),
        imports=sum(edges.values()),
        back_up=back_up,
        in_function_imports=in_function,
        circles=_circles(top_level_edges),
        circles_with_function_imports=_circles(set(edges)),
        python_lines=sum(text.count("\n") for text in sources.values()),
    )


def report(m: Metrics) -> str:
    lines = [
        f"# Code metrics at {m.commit}",
        f"- RunConfig fields: {m.run_config_fields}; "
        f"modules importing fedkd.config: {len(m.run_config_importers)}",
        *(
            f"- {cls}'s largest method: {name} ({size} lines)"
            for cls, (name, size) in m.largest_function.items()
        ),
        f"- rooms {m.rooms}, floors {m.floors}, room-to-room edges {m.room_edges} "
        f"({m.imports} import statements, {m.in_function_imports} inside functions), "
        f"running back up {len(m.back_up)} edges "
        f"({sum(int(e.rsplit('(', 1)[1][:-1]) for e in m.back_up)} imports)",
        f"- circles of module-level imports: {m.circles or 'none'}; counting imports inside "
        f"functions: {m.circles_with_function_imports or 'none'}",
        f"- Python lines under {', '.join(SOURCE_TOPS)}: {m.python_lines:,}",
        "- back up: " + ("; ".join(m.back_up) or "none"),
    ]
    return "\n".join(lines)


@app.command()
def main(
    commit: str | None = typer.Option(None, help="a git revision; default the working tree"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    metrics = measure(commit)
    if as_json:
        typer.echo(json.dumps(asdict(metrics), indent=2, ensure_ascii=False))
    else:
        typer.echo(report(metrics))


if __name__ == "__main__":
    app()
