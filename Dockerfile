# socmap batch mapping image: `socmap` on a CUDA runtime. PyTorch's wheel bundles its CUDA 13 libraries, so the host
# needs only an NVIDIA driver that supports CUDA 13 (R580 or newer) and the NVIDIA container toolkit:
#   docker build -t socmap .
#   docker run --gpus all -v $PWD/work:/work socmap predict --region africa --model /work/model --out /work/maps
# The package is installed by scripts/install.sh, the same step README's quick start and .ci/run use.
FROM nvidia/cuda:13.0.0-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    SOCMAP_HOME=/var/cache/socmap \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/socmap
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY socmap ./socmap
COPY pipelines ./pipelines
COPY grids ./grids
# A regular (non-editable) install: pipelines/ and grids/ travel inside the package (socmap/resources).
RUN PYTHON=python3.11 scripts/install.sh --venv /opt/venv --no-editable

WORKDIR /work
ENTRYPOINT ["socmap"]
CMD ["--help"]
