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
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: node_modules/.installed ## Install dependencies (Node 24 included) with npm ci.

.PHONY: build
build: install ## Compile TypeScript to dist/.
	$(NPM) run build

.PHONY: testbed
testbed: ## Build (once, cached in ~/.cache/remediator) etcd, kube-apiserver, kubectl and helm for the test bed.
	bash hack/testbed/build.sh >/dev/null

.PHONY: test
test: install testbed ## Run unit and integration tests against a real kube-apiserver, etcd and moto.
	$(NPM) test

.PHONY: test-unit
test-unit: install ## Run only the unit tests.
	$(NPM) run test:unit

.PHONY: lint
lint: install ## Type-check and verify generated manifests are current.
	$(NPM) run lint
	$(NPM) run build >/dev/null && node_modules/.bin/node dist/hack/gen-manifests.js --check

.PHONY: manifests
manifests: install ## Regenerate CRDs from src/api/v1alpha1.
	$(NPM) run manifests

.PHONY: demo
demo: install testbed ## Run the whole job locally: control plane, AWS emulator, controller, alerts, timeline.
	$(NPM) run demo

.PHONY: bench
bench: install ## Benchmarks: work queue, template rendering, reconcile throughput and memory per request.
	$(NPM) run bench
