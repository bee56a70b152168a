"""Generate the Python stubs under clients/ from protos/.

Run `python scripts/generate_protos.py` after editing a .proto file; the test
suite fails when the checked-in stubs drift from what this script produces.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "clients"
PACKAGE_DIRS = ("jobqueue/v1",)


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto; return the written files."""
    import grpc_tools
    from grpc_tools import protoc

    import google.rpc.status_pb2

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # google/rpc/*.proto ship with googleapis-common-protos, which grpcio-status already requires.
    googleapis = Path(google.rpc.status_pb2.__file__).parents[2]
    protos = [str(path.relative_to(PROTO_ROOT)) for path in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"-I{googleapis}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    for package in PACKAGE_DIRS:
        init = out_dir / package / "__init__.py"
        init.write_text('"""Generated protobuf and gRPC stubs; see scripts/generate_protos.py."""\n')
    return sorted(p for package in PACKAGE_DIRS for p in (out_dir / package).iterdir() if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output root (default: clients/)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path.relative_to(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
