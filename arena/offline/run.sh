#!/usr/bin/env bash
# On a host without network, from the repository root:
#   bash arena/offline/run.sh BUNDLE +matrix=nvidia [python -m arena settings ...]
# installs BUNDLE/wheels (python -m arena.offline BUNDLE, made where there is network) into BUNDLE/venv,
# a virtual environment that also sees the host's own packages (its torch, JAX), and runs Arena from this
# checkout. PYTHON picks the host's interpreter (default python3).
set -euo pipefail
bundle=$1
shift
"${PYTHON:-python3}" -m venv --system-site-packages "$bundle/venv"
"$bundle/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps \
    --find-links "$bundle/wheels" -r "$bundle/wheels/requirements.txt"
exec "$bundle/venv/bin/python" -m arena "$@"
