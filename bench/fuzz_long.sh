#!/usr/bin/env bash
# A longer property-based fuzzing run of the whole API (the suite runs 20 examples per operation).
set -euo pipefail
cd "$(dirname "$0")/.."
LONGRUN_FUZZ_EXAMPLES=${LONGRUN_FUZZ_EXAMPLES:-500} exec .venv/bin/python -m pytest -q tests/contract "$@"
