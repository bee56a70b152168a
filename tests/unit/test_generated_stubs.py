"""The stubs checked in under clients/jobqueue/v1 and clients/node/src/generated are exactly what
scripts/generate_protos.py makes from protos/."""

import importlib.util
from pathlib import Path

from tests.node_package import installed_node_package

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_protos", ROOT / "scripts" / "generate_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_stubs_match_the_protos(tmp_path):
    generator = load_generator()
    generated = {path.relative_to(tmp_path).as_posix(): path.read_bytes() for path in generator.generate(tmp_path)}
    assert any(name.endswith("job_service_pb2.py") for name in generated), generated.keys()

    stale = [name for name, content in generated.items() if (CLIENTS / name).read_bytes() != content]
    missing = [name for name in generated if not (CLIENTS / name).exists()]
    checked_in = {
        path.relative_to(CLIENTS).as_posix()
        for package in generator.PACKAGE_DIRS
        for path in (CLIENTS / package).iterdir()
        if path.name.endswith(GENERATED_SUFFIXES)
    }
    orphaned = sorted(checked_in - set(generated))
    hint = "run `python scripts/generate_protos.py` and commit clients/jobqueue/v1"
    assert not missing, f"stubs missing for {missing}; {hint}"
    assert not stale, f"stubs differ from protos/ for {stale}; {hint}"
    assert not orphaned, f"stubs without a proto: {orphaned}; delete them"


def test_checked_in_typescript_stubs_match_the_protos(tmp_path):
    installed_node_package()  # the generator runs clients/node's ts-proto
    generator = load_generator()
    checked_in_root = generator.DEFAULT_TS_OUT
    out = tmp_path / "ts"
    generated = {path.relative_to(out).as_posix(): path.read_bytes() for path in generator.generate_typescript(out)}
    assert "jobqueue/v1/job_service.ts" in generated, generated.keys()
    assert "google/rpc/error_details.ts" in generated, generated.keys()

    checked_in = {path.relative_to(checked_in_root).as_posix() for path in checked_in_root.rglob("*.ts")}
    stale = sorted(
        name for name in generated if name in checked_in and (checked_in_root / name).read_bytes() != generated[name]
    )
    missing = sorted(set(generated) - checked_in)
    orphaned = sorted(checked_in - set(generated))
    hint = "run `python scripts/generate_protos.py` and commit clients/node/src/generated"
    assert not missing, f"TypeScript stubs missing for {missing}; {hint}"
    assert not stale, f"TypeScript stubs differ from protos/ for {stale}; {hint}"
    assert not orphaned, f"TypeScript stubs without a proto: {orphaned}; {hint}"
