# remediator — every target works on a machine with only Node 20 + npm and Go:
# `npm ci` installs Node 24 as a devDependency, and npm scripts run on it.
SHELL := /bin/bash
NPM ?= npm
IMG ?= remediator:dev

.DEFAULT_GOAL := help

node_modules/.installed: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: node_modules/.installed ## Install dependencies (Node 24 included) with npm ci.

.PHONY: build
build: install ## Compile TypeScript to dist/ and bundle the controller (dist/controller/main.js).
	$(NPM) run build

.PHONY: testbed
testbed: ## Build (once, cached in ~/.cache/remediator) etcd, kube-apiserver, kubectl, helm, promtool, argocd-lua and Flux for the test bed.
	bash hack/testbed/build.sh >/dev/null
	bash hack/testbed/build-tools.sh >/dev/null
	bash hack/testbed/build-flux.sh >/dev/null

.PHONY: test
test: install testbed ## Run unit and integration tests against a real kube-apiserver, etcd and moto.
	$(NPM) test

.PHONY: test-unit
test-unit: install ## Run only the unit tests.
	$(NPM) run test:unit

.PHONY: lint
lint: install ## Type-check, lint (Biome, complexity and function-length ceilings), dead exports (knip), commit messages, generated files.
	$(NPM) run lint
	bash hack/check-commits.sh
	$(NPM) run build >/dev/null && node_modules/.bin/node dist/hack/gen-manifests.js --check

.PHONY: format
format: install ## Format and apply safe lint fixes (Biome).
	$(NPM) run format

.PHONY: argocd-health
argocd-health: install ## Regenerate the argocd-cm snippet in docs/gitops.md from charts/remediator/files/argocd/*.lua.
	$(NPM) run build >/dev/null
	node_modules/.bin/node dist/hack/argocd/gen-snippet.js --write

.PHONY: manifests
manifests: install ## Regenerate CRDs from src/api/v1alpha1.
	$(NPM) run manifests

.PHONY: demo
demo: install testbed ## Run the whole job locally: control plane, AWS emulator, controller, alerts, timeline.
	$(NPM) run demo

.PHONY: bench
bench: install ## Benchmarks: work queue, template rendering, reconcile throughput and memory per request.
	$(NPM) run bench

# ---- Packaging: the chart, config/ (kustomize), the image, the kubectl plugin ----------
# helm: the test bed's pinned helm (hack/testbed/build.sh; cached after the first run),
# unless HELM is given. kubectl for deploy/undeploy: the one on PATH, for your cluster.
HELM ?= $(shell bash hack/testbed/build.sh 2>/dev/null | sed -n 's/^helm=//p')
KUBECTL ?= kubectl
JEST := node_modules/.bin/node --enable-source-maps --disable-warning=ExperimentalWarning --experimental-vm-modules node_modules/jest/bin/jest.js

.PHONY: e2e
e2e: install testbed ## Run only the integration and end-to-end tests (real kube-apiserver, etcd, moto).
	$(NPM) run build >/dev/null
	$(JEST) --selectProjects integration

.PHONY: chart-config
chart-config: install ## Regenerate config/{rbac,manager,admission} and config/kustomization.yaml from charts/remediator.
	$(NPM) run build >/dev/null
	HELM="$(HELM)" node_modules/.bin/node dist/hack/chart/gen-config.js

.PHONY: helm-lint
helm-lint: install ## Lint the chart (helm lint --strict, helm template with default and ci/ values) and check config/ and the CRDs are generated from it.
	"$(HELM)" lint --strict charts/remediator
	"$(HELM)" lint --strict charts/remediator --values charts/remediator/ci/eks-values.yaml
	"$(HELM)" lint --strict charts/remediator --values charts/remediator/ci/runbooks-values.yaml
	"$(HELM)" template remediator charts/remediator --namespace remediator-system >/dev/null
	"$(HELM)" template remediator charts/remediator --namespace remediator-system --values charts/remediator/ci/eks-values.yaml >/dev/null
	"$(HELM)" template remediator charts/remediator --namespace remediator-system --values charts/remediator/ci/runbooks-values.yaml >/dev/null
	$(NPM) run build >/dev/null
	HELM="$(HELM)" node_modules/.bin/node dist/hack/chart/gen-config.js --check
	node_modules/.bin/node dist/hack/gen-manifests.js --check

.PHONY: docker-build
docker-build: install ## Build the image IMG with Docker when an engine is reachable; otherwise only lint the Dockerfile (and say so).
	@if docker info >/dev/null 2>&1; then \
		echo "docker build -t $(IMG) ."; docker build -t "$(IMG)" . ; \
	else \
		echo "docker-build: no Docker engine is reachable, so no image is built; linting the Dockerfile and the production imports instead."; \
		$(NPM) run build >/dev/null && node_modules/.bin/node dist/hack/image/lint-dockerfile.js; \
	fi

.PHONY: plugin
plugin: install ## Build the kubectl plugin as standalone executables (linux/darwin, amd64/arm64; no Node needed) with tar.gz archives and a krew manifest in dist/plugin/. PLUGIN_PLATFORMS=linux-amd64 for one.
	$(NPM) run build >/dev/null
	node_modules/.bin/node dist/hack/plugin/bundle.js

.PHONY: deploy
deploy: ## Apply config/ (CRDs, RBAC, admission policy, controller) to the current kubectl context with image IMG.
	KUBECTL="$(KUBECTL)" bash hack/chart/deploy.sh apply "$(IMG)"

.PHONY: undeploy
undeploy: ## Remove what deploy applied, except the CRDs (and the objects they hold) and the namespace (ledger, intake token).
	KUBECTL="$(KUBECTL)" bash hack/chart/deploy.sh delete

.PHONY: bench-e2e
bench-e2e: install testbed ## Benchmark the whole job against an honest floor (controller as the chart ships it, pooled references, writes until quiet); prints P1–P6. ARGS="--repeats 3 --bursts 100,1000,5000 --once 5000"
	$(NPM) run build >/dev/null || test -f dist/hack/bench-e2e.js
	node_modules/.bin/node --enable-source-maps dist/hack/bench-e2e.js $(ARGS)
