#!/usr/bin/env python3
"""Regenerate the gRPC/protobuf stubs shipped in ``posterior_client._pb``.

    python clients/python/scripts/gen_stubs.py          # write them
    python clients/python/scripts/gen_stubs.py --check  # fail if stale (CI)

The package ships generated code because a user's machine has no protoc:
``pip install ./clients/python`` must work with PyPI alone. The stubs are
generated with grpcio-tools (its bundled protoc) and mypy-protobuf (the
``.pyi`` files that make ``mypy --strict`` useful on calls into them), both
pinned below: another version writes other code (and another runtime
version check), so --check would flag a difference that is not a change of
the protos. Imports are rewritten to be package-relative: the protos'
package ``posterior.v1`` is not a Python package of ours.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.metadata
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

# The generator versions. Changing them changes the runtime lower bounds in
# pyproject.toml: grpcio >= GRPCIO_TOOLS (the generated *_grpc.py refuses an
# older grpcio) and protobuf >= the "Protobuf Python Version" the *_pb2.py
# headers name (an older runtime refuses the gencode).
GRPCIO_TOOLS = "1.85.1"
MYPY_PROTOBUF = "5.1.0"

ROOT = Path(__file__).resolve().parents[3]
PROTO_DIR = ROOT / "proto"
PROTOS = ["posterior/v1/bandit.proto", "posterior/v1/optimizer.proto"]
OUT = ROOT / "clients" / "python" / "src" / "posterior_client" / "_pb"


def require(dist: str, version: str) -> None:
    try:
        have = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"gen_stubs: {dist} is not installed: pip install {dist}=={version}")
    if have != version:
        sys.exit(
            f"gen_stubs: {dist} {have} is installed, the stubs are generated with "
            f"{version}: pip install {dist}=={version}"
        )


def generate(dest: Path) -> None:
    """Run protoc (grpcio-tools) into dest and flatten posterior/v1/ there."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    raw = dest / "raw"
    raw.mkdir()
    bindir = Path(sys.executable).parent
    plugin = bindir / "protoc-gen-mypy_grpc"
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={raw}",
        f"--grpc_python_out={raw}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--mypy_out={raw}",
        f"--plugin=protoc-gen-mypy_grpc={plugin}",
        f"--mypy_grpc_out={raw}",
        *PROTOS,
    ]
    if protoc.main(args) != 0:
        sys.exit("gen_stubs: protoc failed")
    for src in sorted((raw / "posterior" / "v1").iterdir()):
        text = src.read_text()
        # `from posterior.v1 import bandit_pb2 as x` -> `from . import bandit_pb2 as x`
        text = re.sub(r"^from posterior\.v1 import ", "from . import ", text, flags=re.M)
        text = re.sub(r"^import posterior\.v1\.(\w+)", r"from . import \1", text, flags=re.M)
        (dest / src.name).write_text(text)
    shutil.rmtree(raw)
    (dest / "__init__.py").write_text(
        '"""Generated from proto/posterior/v1 by scripts/gen_stubs.py: do not edit."""\n'
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="fail if the shipped stubs differ")
    a = p.parse_args()
    require("grpcio-tools", GRPCIO_TOOLS)
    require("mypy-protobuf", MYPY_PROTOBUF)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "_pb"
        fresh.mkdir()
        generate(fresh)
        names = sorted(f.name for f in fresh.iterdir())
        if a.check:
            shipped = sorted(
                f.name for f in OUT.iterdir() if f.is_file() and f.suffix in (".py", ".pyi")
            ) if OUT.is_dir() else []
            _, mismatch, errors = filecmp.cmpfiles(fresh, OUT, names, shallow=False)
            extra = sorted(set(shipped) - set(names))
            if mismatch or errors or extra:
                print(
                    "gen_stubs --check: the stubs in "
                    f"{OUT.relative_to(ROOT)} do not match proto/: "
                    f"differ {mismatch}, missing {errors}, extra {extra}. "
                    "Run: python clients/python/scripts/gen_stubs.py",
                    file=sys.stderr,
                )
                return 1
            print(f"gen_stubs --check: {len(names)} files match proto/")
            return 0
        if OUT.exists():
            shutil.rmtree(OUT)
        shutil.copytree(fresh, OUT)
        print(f"gen_stubs: wrote {len(names)} files to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
