#!/usr/bin/env bash
# Set up everything the tests need, from scratch, then run the linters and the tests.
# CI runs exactly this (.ci/run). The first run compiles llama.cpp (about 8 minutes on
# 2 cores); pip's wheel cache makes later runs fast.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
# Python writes no bytecode where PYTHONDONTWRITEBYTECODE is set (as in our sandbox), so an
# editable install would compile every module from source at each start (~0.1 s of each
# `mirador` process): compile it once here, as pip does for an installed package.
.venv/bin/python -m compileall -q src

# The web page is tested in Debian's headless Chromium (no browser download); the
# run_python sandbox uses Debian's bubblewrap.
missing=()
if ! command -v chromium >/dev/null 2>&1 && [ -f scripts/needs-chromium ]; then
    missing+=(chromium)
fi
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports  # imports flow one way: the layer contract in pyproject.toml
.venv/bin/python -m pytest "$@"

# Federation (`mirador[federation]`, Flower): flwr 1.42 pins fastapi 0.138, starlette 1.3,
# uvicorn 0.49, protobuf <7, rich <15, typer <0.21, packaging <26 -- older than the main
# venv's -- so its tests run in a second venv where pip resolves both together (the run
# above skips tests/federation/test_round.py, saying why).
python3 -m venv .venv-federation
.venv-federation/bin/pip install --quiet --upgrade pip
.venv-federation/bin/pip install --quiet -e '.[test,federation]'
.venv-federation/bin/python -m pytest -p no:cacheprovider tests/federation tests/cli/test_federate.py
