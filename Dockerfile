# lgfn image. CPU by default:
#   docker build -t lgfn .
# CUDA: pick a CUDA base and the matching PyTorch wheel index, e.g.
#   docker build -t lgfn:cuda --build-arg BASE_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04 \
#     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
# Run the main job with the task data mounted:
#   docker run --rm -v "$PWD/../shared/data:/data:ro" -v "$PWD/runs:/runs" lgfn \
#     fit --config configs/qm9.yaml --trainer.default_root_dir /runs
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 LGFN_DATA_DIR=/data
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python-is-python3 \
      && rm -rf /var/lib/apt/lists/*; fi
WORKDIR /opt/lgfn
COPY pyproject.toml README.md ./
COPY lgfn ./lgfn
COPY registry ./registry
COPY configs ./configs
COPY examples ./examples
RUN python -m pip install --index-url "${TORCH_INDEX}" "torch>=2.2,<3" \
    && python -m pip install .
ENTRYPOINT ["lgfn"]
CMD ["--help"]
