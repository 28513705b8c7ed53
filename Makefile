# Keep every target documented with '## ': `make help` prints them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
export AIGW_CACHE_DIR ?= $(HOME)/.cache/ai-gateway-py

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

.PHONY: setup
setup: $(VENV)/.installed system-packages ## Create .venv with the project and the dev tools; install dnsmasq, redis-server and wrk if missing

.PHONY: system-packages
system-packages: ## Install the system programs the tests need (dnsmasq-base, redis-server, wrk) when missing: apt-get as root, else print the command
	@bash hack/system-packages.sh

.PHONY: run
run: setup ## Try it: the gateway on real Envoy with 3 demo model servers, no cluster (ARGS="FILES --port N ...")
	exec $(PY) -m aigw.cli run $(ARGS)

.PHONY: envtest
envtest: ## Build kube-apiserver, etcd and kubectl from the Go module proxy into the cache (idempotent)
	bash hack/setup-envtest.sh

.PHONY: test
test: setup envtest helm registry ## The test command: unit and integration tests (builds the control plane, helm and the registry if missing)
	$(PYTEST) -q tests/unit tests/integration

.PHONY: test-unit
test-unit: setup ## Unit tests only (no real parts needed)
	$(PYTEST) -q tests/unit

.PHONY: test-integration
test-integration: setup envtest helm registry ratelimit ## Integration tests against the real kube-apiserver, etcd, Envoy and DNS
	$(PYTEST) -q tests/integration

.PHONY: envoy-gateway
envoy-gateway: setup ## Build envoy-gateway v1.9.0 (go install) and seed Envoy 1.39.0 for its Host infrastructure (idempotent)
	bash hack/setup-envoy-gateway.sh >/dev/null

.PHONY: ratelimit
ratelimit: ## Build Envoy's rate limit service (github.com/envoyproxy/ratelimit, Envoy Gateway v1.9.0's pin; go install) into the cache (idempotent)
	bash hack/setup-ratelimit.sh >/dev/null

.PHONY: epp
epp: ## Build the Inference Extension's endpoint picker (EPP v1.5.0, go install) and its CRDs into the cache (idempotent)
	bash hack/setup-epp.sh >/dev/null

.PHONY: test-e2e
test-e2e: setup envtest envoy-gateway ratelimit ## End-to-end: real API server, Envoy Gateway, Envoy, DNS, rate limit service + Redis, our controller and ext_proc (serial; root)
	$(PYTEST) -q -p no:cacheprovider tests/e2e

.PHONY: helm
helm: ## Build helm v4 from the Go module proxy into the cache (idempotent; hack/setup-helm.sh)
	bash hack/setup-helm.sh >/dev/null

.PHONY: helm-lint
# The helm binary of `make helm` (expanded only when a recipe uses it, after `helm` has built it).
HELM ?= $(shell bash hack/setup-helm.sh 2>/dev/null)
HELM_CHARTS_DIR ?= _out/charts

helm-lint: helm ## helm lint --strict both charts (charts/ai-gateway-py-crds, charts/ai-gateway-py)
	$(HELM) lint --strict charts/ai-gateway-py-crds charts/ai-gateway-py

.PHONY: helm-package
helm-package: helm ## Package both charts into _out/charts/*.tgz (HELM_CHARTS_DIR=...), for `helm push <tgz> oci://<registry>/<repo>`
	$(HELM) package charts/ai-gateway-py-crds charts/ai-gateway-py --destination $(HELM_CHARTS_DIR)

.PHONY: registry
registry: ## Build the CNCF Distribution OCI registry (go install) into the cache: the helm tests push charts to it
	bash hack/setup-registry.sh >/dev/null

.PHONY: docker-engine base-images image
docker-engine: ## Opt-in, as root: install docker.io if missing, its runtime shim (CAP_SYS_RESOURCE) as default runtime, start dockerd
	bash hack/setup-docker.sh

base-images: ## aigw.local/debian:trixie and aigw.local/python:trixie from debootstrap (no image registry needed; cached)
	bash hack/build-base-images.sh

AIGW_IMAGE_PREFIX ?= aigw.local
BASE_IMAGE ?= $(AIGW_IMAGE_PREFIX)/python:trixie
image: base-images ## Build our image $(IMG) from ./Dockerfile on $(BASE_IMAGE) (BASE_IMAGE=python:3.11-slim where a registry is reachable)
	nice -n 19 ionice -c3 docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMG) .

.PHONY: kind-images test-kind
kind-images: base-images ## kind and its node image aigw.local/kind-node:v1.36.3, built here from Debian and the Go module proxy (cached)
	bash hack/setup-kind.sh >/dev/null
	bash hack/build-kind-node.sh >/dev/null

test-kind: setup ## The kind tier (tests/kind): engine, images, and chat through the cluster's Envoy Pod (needs `sudo make docker-engine`, `make kind-up AIGW_KIND_LOCAL=1`)
	$(PYTEST) -q -p no:cacheprovider tests/kind

.PHONY: kind-up kind-down
kind-up: setup ## A real kind cluster: Envoy Gateway via helm with our extensionManager, then our Helm charts (AIGW_INSTALL=kustomize: `make deploy`; needs docker; AIGW_KIND_LOCAL=1: every image built here)
	bash hack/kind-up.sh

KIND_CLUSTER ?= ai-gateway-py
kind-down: ## Delete the kind cluster $(KIND_CLUSTER) (images stay cached in docker)
	PATH="$$PATH:$$(dirname "$$(bash hack/setup-kind.sh | tail -n 1)")" kind delete cluster --name $(KIND_CLUSTER)

.PHONY: deploy
IMG ?= ai-gateway-py:dev
deploy: ## Install our CRDs, RBAC and controller (config/) into the current kubectl context, image $(IMG)
	kubectl apply --server-side -f config/crd
	kubectl kustomize config/default | sed 's|ai-gateway-py:dev|$(IMG)|g' | kubectl apply --server-side -f -

.PHONY: lint
lint: setup ## ruff, mypy --strict, and the package layers (import-linter contracts in pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check api controller extproc aigw tests bench hack
	$(VENV)/bin/mypy api controller extproc aigw
	$(VENV)/bin/lint-imports --no-cache

.PHONY: fmt
fmt: setup ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format api controller extproc aigw tests bench hack
	$(VENV)/bin/ruff check --fix .

.PHONY: manifests
manifests: setup ## Generate the CRDs (config/crd, the CRD chart's crds/) from api/; copy config/rbac's ClusterRole into the chart
	$(PY) -m api.crdgen config/crd charts/ai-gateway-py-crds/crds
	cp config/rbac/role.yaml charts/ai-gateway-py/files/clusterrole.yaml

.PHONY: generate
generate: setup ## Regenerate controller/extensionserver/_generated (Envoy Gateway extension API) from its .proto
	$(PY) -m controller.extensionserver.codegen

.PHONY: bench-extproc
bench-extproc: setup ## Benchmark: CEL cost CPU per evaluation (vs cel-python); Envoy alone vs Envoy + our ext_proc (1 KB, 100 KB), ratios; the picker's CPU cost (ARGS=--picker-only: only that)
	PYTHONPATH=. $(PY) -m bench.extproc.cel
	PYTHONPATH=. $(PY) -m bench.extproc.run $(ARGS)

.PHONY: bench-runtime
bench-runtime: setup envtest ## Benchmark controller.runtime on the real API server: 10,000 CRs, sync, reconciles/s, latency
	PYTHONPATH=. $(PY) -m bench.runtime.run $(ARGS)

.PHONY: bench-routing
bench-routing: setup envtest epp ## Routing quality: same traces via random, least-request, our pickers and the EPP (ARGS="--quick", "--workload W.yaml --sim S.yaml")
	PYTHONPATH=. flock /tmp/aigw-heavy.lock $(PY) -m bench.routing.run $(ARGS)

.PHONY: run-controller
run-controller: setup ## Run aigw-controller against $KUBECONFIG (ARGS="--enable-inference-extension --extproc-address 127.0.0.1:1063")
	$(VENV)/bin/aigw-controller --kubeconfig "$${KUBECONFIG:-$$HOME/.kube/config}" --health-probe-bind-address 127.0.0.1:8081 --metrics-bind-address 127.0.0.1:8080 --extension-server-address 127.0.0.1:1061 $(ARGS)

.PHONY: bench-controller
bench-controller: setup envtest ## Benchmark the AI Gateway controller: 50 Gateways, 1,000 routes, 100 pools; convergence, change p50/p99, writes, RSS
	PYTHONPATH=. $(PY) -m bench.controller.run $(ARGS)
