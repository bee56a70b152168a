"""Generate the Python stubs under clients/ and the TypeScript stubs under clients/node from protos/.

Run `python scripts/generate_protos.py` after editing a .proto file; the test
suite fails when the checked-in stubs drift from what this script produces.
The TypeScript half runs grpcio-tools' protoc with the ts-proto plugin from
clients/node/node_modules (`cd clients/node && npm ci` installs it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "clients"
PACKAGE_DIRS = ("jobqueue/v1",)
NODE_PACKAGE = ROOT / "clients" / "node"
DEFAULT_TS_OUT = NODE_PACKAGE / "src" / "generated"
TS_PROTO_PLUGIN = NODE_PACKAGE / "node_modules" / ".bin" / "protoc-gen-ts_proto"
# Compiled in for the client's typed errors, though no proto of ours imports it.
EXTRA_TS_PROTOS = ("google/rpc/error_details.proto",)
TS_PROTO_OPTIONS = ",".join(
    (
        "outputServices=grpc-js",
        "env=node",
        "esModuleInterop=true",
        "importSuffix=.js",
        "forceLong=number",
        "useDate=true",
        "useOptionals=messages",
        "outputJsonMethods=false",
        "oneof=unions-value",
    )
)


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def include_dirs() -> list[str]:
    import google.rpc.status_pb2
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # google/rpc/*.proto ship with googleapis-common-protos, which grpcio-status already requires.
    googleapis = Path(google.rpc.status_pb2.__file__).parents[2]
    return [f"-I{PROTO_ROOT}", f"-I{well_known}", f"-I{googleapis}"]


def run_protoc(args: list[str]) -> None:
    from grpc_tools import protoc

    if protoc.main(["grpc_tools.protoc", *include_dirs(), *args]) != 0:
        raise RuntimeError("protoc failed")


def generate(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto; return the written files."""
    protos = [str(path.relative_to(PROTO_ROOT)) for path in proto_files()]
    run_protoc([f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *protos])
    for package in PACKAGE_DIRS:
        init = out_dir / package / "__init__.py"
        init.write_text('"""Generated protobuf and gRPC stubs; see scripts/generate_protos.py."""\n')
    return sorted(p for package in PACKAGE_DIRS for p in (out_dir / package).iterdir() if p.is_file())


def require_ts_proto() -> None:
    if not TS_PROTO_PLUGIN.exists():
        raise SystemExit(
            f"{TS_PROTO_PLUGIN.relative_to(ROOT)} is missing: run `npm ci` in clients/node first "
            "(the TypeScript stubs are generated with its ts-proto)"
        )


def generate_typescript(out_dir: Path = DEFAULT_TS_OUT) -> list[Path]:
    """Write a .ts module per proto (and the google ones they need) with ts-proto; return the written files.

    The output directory is emptied first, so a deleted proto leaves no stale module behind.
    """
    require_ts_proto()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    protos = [str(path.relative_to(PROTO_ROOT)) for path in proto_files()]
    run_protoc(
        [
            f"--plugin=protoc-gen-ts_proto={TS_PROTO_PLUGIN}",
            f"--ts_proto_out={out_dir}",
            f"--ts_proto_opt={TS_PROTO_OPTIONS}",
            *protos,
            *EXTRA_TS_PROTOS,
        ]
    )
    return sorted(path for path in out_dir.rglob("*.ts") if path.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Python output root (default: clients/)")
    parser.add_argument(
        "--ts-out",
        type=Path,
        default=DEFAULT_TS_OUT,
        help="TypeScript output directory (default: clients/node/src/generated)",
    )
    args = parser.parse_args(argv)
    require_ts_proto()  # before writing anything, so that both halves always change together
    for path in generate(args.out):
        print(path.relative_to(args.out))
    for path in generate_typescript(args.ts_out):
        print(path.relative_to(args.ts_out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
