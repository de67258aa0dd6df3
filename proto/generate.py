"""Regenerate the committed Python code for the wire schema in ``proto/fedkd/v1``.

``protoc`` writes imports after the proto package (``from fedkd.v1 import ...``); the
generated modules live in ``fedkd/wire/v1`` so those imports are rewritten to match.
Run ``python proto/generate.py`` (``make proto``); ``--check`` exits non-zero when the
committed code is stale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
SCHEMA_DIR = PROTO_ROOT / "fedkd" / "v1"
TARGET_DIR = ROOT / "fedkd" / "wire" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi")


def generate() -> dict[str, str]:
    """Compile every schema file and return ``{file name: generated text}``."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in SCHEMA_DIR.glob("*.proto"))
    with tempfile.TemporaryDirectory() as out:
        include = Path(protoc.__file__).parent / "_proto"
        rc = protoc.main(
            [
                "protoc",
                f"-I{PROTO_ROOT}",
                f"-I{include}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                *protos,
            ]
        )
        if rc != 0:
            raise SystemExit(f"protoc failed with exit code {rc}")
        generated = {}
        for path in sorted((Path(out) / "fedkd" / "v1").iterdir()):
            text = path.read_text().replace("from fedkd.v1 import", "from fedkd.wire.v1 import")
            generated[path.name] = text
    return generated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    generated = generate()
    if args.check:
        stale = [
            name
            for name, text in generated.items()
            if not (TARGET_DIR / name).exists() or (TARGET_DIR / name).read_text() != text
        ]
        extra = [
            p.name
            for p in TARGET_DIR.iterdir()
            if p.name.endswith(GENERATED_SUFFIXES) and p.name not in generated
        ]
        if stale or extra:
            print(f"stale generated code: {stale + extra}; run `make proto`", file=sys.stderr)
            return 1
        return 0
    TARGET_DIR.mkdir(parents=True, exist_ok=True)
    for path in TARGET_DIR.iterdir():
        if path.name.endswith(GENERATED_SUFFIXES):
            path.unlink()
    for name, text in generated.items():
        (TARGET_DIR / name).write_text(text)
    (TARGET_DIR / "__init__.py").write_text(
        '"""Generated protobuf modules (``make proto``); do not edit."""\n'
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
