#!/usr/bin/env bash
# Checks that a Python client generated from proto/ can drive the contact service, and runs the
# client example (example.py) against `charla up`. Uses CHARLA_CONTACT_BIN and CHARLA_BIN, else
# charla-contact and charla in ${CARGO_TARGET_DIR:-$HOME/.cache/charla/target}/debug.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CHARLA_CONTACT_BIN="${CHARLA_CONTACT_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/charla/target}/debug/charla-contact}"
# Keep the source tree clean: no __pycache__, no .pytest_cache.
export PYTHONDONTWRITEBYTECODE=1

# A virtual environment of our own: works where the system Python refuses pip installs (PEP 668).
venv="${CHARLA_PYTHON_VENV:-$HOME/.cache/charla/python-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"

status=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$here" "$here" || status=$?
exit "$status"
