# One image for the controller (aigw-controller, the default command) and the per-Gateway ext_proc
# (aigw-extproc, --extproc-image). Built and loaded into kind by hack/kind-up.sh; config/manager runs it as
# ai-gateway-py:dev with a read-only root filesystem as a non-root user.
# BASE_IMAGE: any image with python3 (>= 3.11) and its venv module. The default is the usual slim Python image;
# `make image` on a machine without an image registry passes aigw.local/python:trixie (Debian's python3, built
# by hack/build-base-images.sh).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/aigw/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api api
COPY controller controller
COPY extproc extproc
COPY aigw aigw
# A venv, so Debian's externally-managed python3 takes the install too; its bin/ is first on PATH.
RUN python3 -m venv /opt/aigw && pip install --no-cache-dir . && rm -rf /src
WORKDIR /
USER 65532:65532
CMD ["aigw-controller"]
