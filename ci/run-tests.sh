#!/usr/bin/env bash
# Runs the whole test suite. Used by `make test` (and so by .ci/run).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest tests "$@"
rc=$?
# pytest exits 5 when nothing was collected: that is a failure of the suite, not a pass.
exit $rc
