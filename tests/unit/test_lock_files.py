"""The lock files pin every dependency that pyproject.toml allows, with hashes, and the installs use them.

pyproject.toml keeps loose lower bounds for library users; the server, CI and the image install
the exact versions of requirements.lock / requirements-test.lock. After a dependency changes,
`scripts/lock_dependencies.sh` regenerates both; until then these tests fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.lock_files import canonical, locked_entries, locked_versions

ROOT = Path(__file__).resolve().parents[2]
SERVER_LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
LOCAL = {"jobqueue-client", "queue-service"}


def requirements(*, extras: bool) -> list[Requirement]:
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    client = tomllib.loads((ROOT / "clients" / "pyproject.toml").read_text())["project"]
    found = [*server["dependencies"], *client["dependencies"]]
    if extras:
        found += [item for group in server.get("optional-dependencies", {}).values() for item in group]
    return [Requirement(item) for item in found if canonical(Requirement(item).name) not in LOCAL]


@pytest.mark.parametrize(("lock", "extras"), [(SERVER_LOCK, False), (TEST_LOCK, True)], ids=["server", "test"])
def test_every_declared_dependency_is_locked_at_a_version_it_allows(lock, extras):
    locked = locked_versions(lock)
    for requirement in requirements(extras=extras):
        if requirement.marker and not requirement.marker.evaluate({"python_version": "3.11"}):
            continue
        name = canonical(requirement.name)
        assert name in locked, f"{name} is not in {lock.name}: run scripts/lock_dependencies.sh"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"{lock.name} pins {name}=={locked[name]}, outside {requirement}: run scripts/lock_dependencies.sh"
        )


@pytest.mark.parametrize("lock", [SERVER_LOCK, TEST_LOCK], ids=["server", "test"])
def test_every_line_is_a_hashed_pin(lock):
    text = lock.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+( ; [^-]+)? +--hash=sha256:", line), line
    entries = locked_entries(lock)
    assert entries and all(hashes for _, hashes in entries.values())
    assert not LOCAL & set(entries), "the local distributions are installed from the tree, not the lock"
    assert "scripts/lock_dependencies.sh" in lock.read_text().splitlines()[1]


def test_the_server_lock_agrees_with_the_test_lock():
    server, test = locked_versions(SERVER_LOCK), locked_versions(TEST_LOCK)
    assert {name: test.get(name) for name in server} == server


def test_the_regeneration_script_is_one_executable_command():
    script = ROOT / "scripts" / "lock_dependencies.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "--generate-hashes" in text and "requirements-test.lock" in text and "requirements.lock" in text


def test_the_readme_test_command_installs_the_test_lock_then_the_local_packages_alone():
    readme = (ROOT / "README.md").read_text()
    command = readme.split("<!-- test-command -->\n```bash\n", 1)[1].split("\n", 1)[0]
    steps = [step.strip() for step in command.split("&&")]
    locked = steps.index("pip install --require-hashes -r requirements-test.lock")
    local = steps.index("pip install --no-deps -e ./clients -e .")
    assert locked < local < next(i for i, step in enumerate(steps) if "pytest" in step)


def test_the_dashboard_test_client_imports_without_a_deprecation_warning():
    # Starlette's TestClient warns when it finds httpx instead of httpx2 (the test extra's choice).
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import starlette.testclient"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
