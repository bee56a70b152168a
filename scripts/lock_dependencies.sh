#!/usr/bin/env bash
# Regenerates the hashed lock files from pyproject.toml and clients/pyproject.toml, for Python 3.11:
#   requirements-test.lock  server, client and the `test` and `bench` extras: the README's test command and
#                           CI (the benchmark harness's smoke test runs the pgqueuer reference too)
#   requirements.lock       server and client alone, at the same versions: the Dockerfile
# Run it after adding or changing a dependency:  scripts/lock_dependencies.sh
# Pins already in the lock files are kept where they still fit; `--upgrade` moves every pin to
# the newest release allowed, `--upgrade-package NAME` one of them.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet "uv==$UV_VERSION"

compile() {
  # The two local distributions are installed from the tree after the locked ones, so they are left out.
  "$tools/venv/bin/uv" pip compile - --quiet --generate-hashes --python-version 3.11 \
    --no-emit-package jobqueue-client --no-emit-package queue-service \
    --custom-compile-command scripts/lock_dependencies.sh "$@"
}
printf -- '-e ./clients\n-e .[test,bench]\n' | compile --output-file requirements-test.lock "$@"
printf -- '-e ./clients\n-e .\n' | compile --constraint requirements-test.lock --output-file requirements.lock
echo "wrote requirements-test.lock and requirements.lock"
