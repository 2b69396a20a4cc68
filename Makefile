# LogPipeline — every command a developer or CI runs. `make help` lists them.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

LP_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/logpipeline
export LP_CACHE
# Node 24 from the npm `node` package, and the cached tools, come first on PATH:
# the machine's own Node (20) never runs the project.
export PATH := $(CURDIR)/node_modules/.bin:$(LP_CACHE)/bin:$(PATH)

STACK := hack/stack/stack.sh
# NODE=1 adds the node (kube-scheduler, containerd, kubelet, kube-proxy) to the stack.
ifeq ($(NODE),1)
export LP_NODE := 1
endif
NPM_STAMP := node_modules/.lp-installed

##@ Getting started

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

.PHONY: dev
dev: tools ## The whole system on the local node: stack + node, images, helm install, a LogPipeline, events; print where to look
	@bash hack/dev.sh

.PHONY: env
env: ## Print the line that puts the project's tools (kubectl, helm, Node 24) first on PATH and points kubectl at the stack: eval "$$(make -s env)"
	@printf 'export PATH="%s:%s:$$PATH" KUBECONFIG=%s\n' "$(CURDIR)/node_modules/.bin" "$(LP_CACHE)/bin" "$${LP_RUN_DIR:-/var/tmp/logpipeline-stack}/kubeconfig"

.PHONY: dev-down
dev-down: ## Stop what make dev started (port-forwards, then the stack with its node)
	@bash hack/dev.sh down
	@LP_NODE=1 bash $(STACK) down

.PHONY: test
test: tools ## Lint, type-check and verify generated files, then unit and integration tests against the real stack, then the e2e suite on the node
	@$(MAKE) --no-print-directory verify
	@bash hack/test.sh all

##@ Development

.PHONY: tools
tools: ## Install or build every tool into the cache (apt, npm, Maven, Go); cached by version
	@bash hack/tools/install.sh

.PHONY: npm
npm: ## Install npm packages (Node 24, native addons for its ABI)
	@bash hack/tools/npm.sh

.PHONY: build
build: npm ## Compile TypeScript to dist/
	npm run build

.PHONY: images
images: tools ## Build the operator and workload images (Docker; NODE_BASE=local|<image>) and load them into the node
	@bash hack/images/build.sh

.PHONY: run-operator
run-operator: npm ## Run the operator as a local process against the stack (CRD applied, leader election off)
	@test -f /var/tmp/logpipeline-stack/stack.env || { echo "the stack is not up: run make stack-up"; exit 1; }
	@source /var/tmp/logpipeline-stack/stack.env && \
	  kubectl apply --server-side -f crds/logpipeline.io_logpipelines.yaml >/dev/null && \
	  LEADER_ELECT=false HEALTH_PORT=$${HEALTH_PORT:-18081} METRICS_PORT=$${METRICS_PORT:-18080} \
	  exec node --import tsx operator/src/main.ts

.PHONY: generate
generate: npm ## Regenerate checked-in files (CRDs from operator/src/api)
	tsx hack/generate-crds.ts

.PHONY: verify
verify: generate ## Fail if generated files differ from what is checked in, or lint/types fail
	@git diff --exit-code -- crds/ || { echo "generated files are out of date: run make generate and commit"; exit 1; }
	$(MAKE) lint
	npm run typecheck

.PHONY: lint
lint: npm ## Lint (eslint) and check formatting (prettier)
	npm run lint

.PHONY: format
format: npm ## Format the code with prettier
	npm run format

##@ Tests

.PHONY: test-unit
test-unit: npm ## Unit tests of pure code (no servers)
	@bash hack/test.sh unit

.PHONY: test-integration
test-integration: tools ## Integration tests against the real stack (brought up if needed, stopped after if we started it)
	@bash hack/test.sh integration

.PHONY: test-e2e
test-e2e: tools ## The e2e suite on the local node: Helm install, a LogPipeline, 10,000 events from a pod, pod kills, HPA, edits, deletion
	@bash hack/test.sh e2e

.PHONY: e2e-kind
e2e-kind: npm ## The same e2e suite on kind (needs Docker, kind and a registry): Strimzi's chart, a Kafka, images via kind load
	@bash hack/kind/e2e.sh

.PHONY: test-full
test-full: tools ## The same suites at long-running scale (fault tests over 200,000 events)
	@LP_TEST_SCALE=full bash hack/test.sh all

.PHONY: bench
bench: tools ## Load the pipeline and its baselines in one run; print figures, write docs/benchmarks.{md,json}
	@node --import tsx test/bench/run.ts

.PHONY: bench-storage
bench-storage: tools ## The partitioned store at scale (BENCH_STORAGE_ROWS, default 10M): ingest vs COPY and the previous consumer, search, counts, drop, disk; writes docs/benchmarks.{md,json}
	@node --import tsx test/bench/storage.ts

.PHONY: bench-divergence
bench-divergence: tools ## The divergence check's cost: consumer throughput alone and with checks back to back; writes docs/benchmarks.md
	@node --import tsx test/bench/divergence.ts

.PHONY: bench-peer
bench-peer: tools ## Our exactly-once consumer vs Kafka Connect + Debezium's JDBC sink (upsert) over the same backlog (BENCH_PEER_EVENTS); installs the peer into the cache; writes docs/benchmarks.{md,json}
	@bash hack/tools/connect-peer.sh
	@node --import tsx test/bench/peer.ts

.PHONY: bench-explorer
bench-explorer: tools ## The log explorer in chromium: page weight, first render vs the API's time, long tasks while scrolling 10,000 events; writes docs/benchmarks.{md,json}
	@node --import tsx test/browser/bench.ts

.PHONY: explorer
explorer: npm ## Build the log explorer's page into dist/explorer (the query API serves it at /)
	@tsx hack/build-explorer.ts dist/explorer

.PHONY: bench-operator
bench-operator: tools ## The operator at 100/300/1,000 pipelines on the stack's API server, no node (BENCH_OPERATOR_SIZES, STEADY_MINUTES): convergence vs the API server's own apply time, audit-log request rates, RSS, spec-edit latency; writes docs/benchmarks.{md,json}
	@node --import tsx test/bench/operator-scale.ts

.PHONY: bench-operator-idle
bench-operator-idle: npm ## The operator's idle cost on a running cluster (make dev, in-cluster operator scaled to 0): reconciles, applies, status writes, requests per pipeline per minute; OPERATOR_ROOT=<tree> compares revisions
	@node --import tsx test/bench/operator-idle.ts

##@ Local stack (etcd, kube-apiserver, kube-controller-manager, Kafka, Strimzi topic operator, PostgreSQL, Redis)

.PHONY: stack-up
stack-up: tools ## Start the local stack (harmless when already up); NODE=1 adds a real node (scheduler, containerd, kubelet, kube-proxy)
	@bash $(STACK) up

.PHONY: stack-down
stack-down: ## Stop every stack process by its PID
	@bash $(STACK) down

.PHONY: stack-status
stack-status: ## One table: each component, version, PID, address and health
	@bash $(STACK) status

.PHONY: stack-clean
stack-clean: stack-down ## Stop the stack and delete its data (run dir)
	@bash -c 'source hack/stack/config.sh && echo "removing $$LP_RUN_DIR" && rm -rf "$$LP_RUN_DIR"'
