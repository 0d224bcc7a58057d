# socmap batch mapping image. GPU: run with `docker run --gpus all ...` (PyTorch's CUDA 13 build is bundled).
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    SOCMAP_HOME=/var/cache/socmap

WORKDIR /opt/socmap
COPY pyproject.toml README.md ./
COPY socmap ./socmap
COPY pipelines ./pipelines
COPY grids ./grids
# A regular (non-editable) install: pipelines/ and grids/ travel inside the package (socmap/resources).
RUN pip install . && socmap --help > /dev/null

WORKDIR /work
ENTRYPOINT ["socmap"]
CMD ["--help"]
