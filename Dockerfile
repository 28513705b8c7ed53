# One image for the controller (aigw-controller, the default command) and the per-Gateway ext_proc
# (aigw-extproc, --extproc-image). Built and loaded into kind by hack/kind-up.sh; config/manager runs it as
# ai-gateway-py:dev with a read-only root filesystem as a non-root user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api api
COPY controller controller
COPY extproc extproc
COPY aigw aigw
RUN pip install --no-cache-dir . && rm -rf /src
WORKDIR /
USER 65532:65532
CMD ["aigw-controller"]
