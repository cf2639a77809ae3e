# Secrets Store Injector. `make help` lists the targets.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO      ?= go
BIN     := $(CURDIR)/bin
PKG     := github.com/ssinjector/ssi

# Pinned tool versions. Changing a pin rebuilds the tool.
CONTROLLER_GEN_VERSION := v0.23.0
GOLANGCI_LINT_VERSION  := v2.15.0
HELM_VERSION           := v3.22.0
VAULT_SDK_VERSION      := v0.9.2

# Integration tests find kube-apiserver and etcd here (envtest).
export KUBEBUILDER_ASSETS := $(BIN)

# Everything is built static: the images need it, and one setting for tests,
# images and test binaries lets them share the Go build cache.
export CGO_ENABLED := 0

CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT  := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM           := $(BIN)/helm-$(HELM_VERSION)

CONTROL_PLANE := $(BIN)/kube-apiserver $(BIN)/etcd
NODE_BINS     := $(BIN)/kubelet $(BIN)/kube-controller-manager $(BIN)/kube-scheduler $(BIN)/kube-proxy
TOOLS_MOD     := test/tools/go.mod test/tools/go.sum

CHART := charts/secrets-store-injector

##@ Everyday

.PHONY: help
help: ## Show this list.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_\/.%-]+:.*##/ {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2} /^##@/ {printf "\n%s\n", substr($$0, 5)}' $(MAKEFILE_LIST)

.PHONY: demo
demo: build $(CONTROL_PLANE) $(BIN)/vault ## Run the whole flow locally: control plane, Vault, webhook, agent, rotation.
	$(GO) run ./test/demo

.PHONY: test
test: $(CONTROL_PLANE) $(BIN)/vault $(HELM) ## Run unit and integration tests (builds the control plane and Vault on first use).
	@echo ">> go test (unit + integration against a real kube-apiserver, etcd and Vault)"
	$(GO) test -count=1 -timeout 40m ./...

.PHONY: test-unit
test-unit: ## Run only the unit tests (no servers).
	$(GO) test -short -count=1 ./...

# The race detector needs cgo, so this pass cannot share the static build
# cache of the other targets; it runs the unit tier only (-short).
.PHONY: test-race
test-race: ## Run the unit tests with the race detector (needs a C compiler).
	CGO_ENABLED=1 $(GO) test -race -short -count=1 ./...

.PHONY: build
build: $(BIN)/ssi-webhook $(BIN)/ssi-agent ## Build ssi-webhook and ssi-agent into bin/.

# No -trimpath: the same compile flags as `go test` share its build cache
# (the Dockerfiles add -trimpath for release images).
$(BIN)/ssi-webhook: FORCE
	CGO_ENABLED=0 $(GO) build -o $@ ./webhook
$(BIN)/ssi-agent: FORCE
	CGO_ENABLED=0 $(GO) build -o $@ ./agent

.PHONY: FORCE
FORCE:

##@ Quality

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy code and CRDs (manifests/crds and the chart's files/crds).
	$(CONTROLLER_GEN) object paths=./api/...
	rm -rf manifests/crds && $(CONTROLLER_GEN) crd:crdVersions=v1 paths=./api/... output:crd:dir=manifests/crds
	rm -rf $(CHART)/files/crds && mkdir -p $(CHART)/files/crds && cp manifests/crds/*.yaml $(CHART)/files/crds/

.PHONY: csidriver
csidriver: ## Generate the node shim's CSIDriver into manifests/csi/ (from internal/csi).
	@mkdir -p manifests/csi
	$(GO) run ./hack/csidriver --out manifests/csi/csidriver.yaml

.PHONY: manifests
manifests: generate webhook-config csidriver sync-rbac $(HELM) ## Regenerate every generated manifest (CRDs, webhook, CSIDriver, rendered chart).
	$(GO) run ./hack/render --helm $(HELM) --chart $(CHART) --out manifests

.PHONY: webhook-config
webhook-config: ## Generate the MutatingWebhookConfiguration into manifests/webhook/ (from internal/webhook).
	@mkdir -p manifests/webhook
	$(GO) run ./hack/webhookconfig --out manifests/webhook/mutatingwebhookconfiguration.yaml

.PHONY: sync-rbac
sync-rbac: ## Write the sync controller's RBAC and admission policy (manifests/sync/rbac.yaml).
	$(GO) run ./hack/syncrbac --out manifests/sync/rbac.yaml

# Tracked files larger than this are build outputs or data that belong
# elsewhere; `make verify` fails on them unless their path is listed in
# LARGE_FILES_ALLOWED (space-separated paths, each under a testdata directory).
MAX_TRACKED_FILE_BYTES := 1048576
LARGE_FILES_ALLOWED    :=

.PHONY: check-large-files
check-large-files: ## Fail when a tracked file is larger than 1 MiB (build outputs must not be committed).
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | \
	  awk -v max=$(MAX_TRACKED_FILE_BYTES) -v allow="$(LARGE_FILES_ALLOWED)" \
	    'BEGIN { n = split(allow, a, " "); for (i = 1; i <= n; i++) ok[a[i]] = 1 } \
	     $$1 > max { name = substr($$0, index($$0, " ") + 1); if (!(name in ok)) print $$1 " bytes: " name }'); \
	test -z "$$big" || { echo "tracked files over $(MAX_TRACKED_FILE_BYTES) bytes (build outputs? remove them, or allow-list a testdata file in LARGE_FILES_ALLOWED):"; echo "$$big"; exit 1; }

.PHONY: verify
verify: manifests check-large-files ## Regenerate everything and fail if the tree changed; check gofmt and file sizes.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@git diff --exit-code -- api manifests $(CHART) || { echo "generated files are stale: run make manifests and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api manifests $(CHART))" || { git status --porcelain -- api manifests $(CHART); echo "untracked generated files: run make manifests and commit"; exit 1; }

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (pinned) and go vet.
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

.PHONY: fuzz
fuzz: ## Fuzz the parameter parsers, NodePublishVolume, plugin responses and template rendering for FUZZTIME each (default 60s).
	set -e; for t in spc:FuzzParseAWS spc:FuzzParseAzure spc:FuzzParseGCP spc:FuzzParseVault \
	  csi:FuzzNodePublishVolume provider/plugin:FuzzPluginResponse render:FuzzRender; do \
	  $(GO) test ./internal/$${t%%:*} -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $${FUZZTIME:-60s}; done

.PHONY: bench
bench: $(CONTROL_PLANE) $(BIN)/vault ## Run the benchmarks and print their figures.
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-agent
bench-agent: $(CONTROL_PLANE) $(BIN)/vault $(BIN)/ssi-agent ## Agent figures: memory, cold start, CPU per rotation, side by side with vault agent.
	SSI_AGENT_BIN=$(BIN)/ssi-agent $(GO) test -run '^$$' -bench '^BenchmarkAgent$$' -benchtime 1s -timeout 30m ./internal/agent

.PHONY: bench-csi
bench-csi: $(CONTROL_PLANE) $(BIN)/vault $(BIN)/ssi-agent ## Node shim memory (root): bin/ssi-agent csi idle, with 100 and 300 pods' Vault volumes, after unpublishing.
	SSI_AGENT_BIN=$(BIN)/ssi-agent $(GO) test -run '^$$' -bench '^BenchmarkShimMemory$$' -benchtime 1x -timeout 30m -v ./internal/csi

.PHONY: bench-webhook
bench-webhook: $(CONTROL_PLANE) $(BIN)/ssi-webhook ## Webhook CPU per HTTPS admission of the bin/ssi-webhook process alone, and latency.
	SSI_WEBHOOK_BIN=$(BIN)/ssi-webhook $(GO) test -run '^$$' -bench '^BenchmarkAdmissionServer$$' -benchtime 1x -timeout 15m ./internal/webhook

.PHONY: bench-rotation
bench-rotation: $(CONTROL_PLANE) ## Calls, bytes and values downloaded per unchanged rotation cycle, per provider and kind of object.
	$(GO) test -count=1 -v -run '^TestUnchangedRotationCost$$' ./internal/provider/vault ./internal/provider/aws ./internal/provider/azure ./internal/provider/gcp | grep -E 'rotation cost:|cycles:|FAIL|^ok'

##@ Test binaries (cached in bin/, rebuilt when their pins change)

.PHONY: control-plane
control-plane: $(CONTROL_PLANE) ## Build kube-apiserver and etcd from the pinned Kubernetes module.

$(BIN)/kube-apiserver: $(TOOLS_MOD)
	@echo ">> building kube-apiserver from k8s.io/kubernetes (pinned in test/tools/go.mod; ~5 min cold)"
	cd test/tools && $(GO) build -o $@ k8s.io/kubernetes/cmd/kube-apiserver
$(BIN)/etcd: $(TOOLS_MOD) test/tools/etcd/main.go
	@echo ">> building etcd from go.etcd.io/etcd/server/v3 (pinned in test/tools/go.mod)"
	cd test/tools && $(GO) build -o $@ ./etcd
$(BIN)/kubelet $(BIN)/kube-controller-manager $(BIN)/kube-scheduler $(BIN)/kube-proxy: $(TOOLS_MOD)
	@echo ">> building $(notdir $@) from k8s.io/kubernetes (pinned in test/tools/go.mod)"
	cd test/tools && $(GO) build -o $@ k8s.io/kubernetes/cmd/$(notdir $@)

.PHONY: vault
vault: $(BIN)/vault ## Build a real Vault server (v1.14.1, MPL-2.0) for tests and the demo.

$(BIN)/vault: test/vault/go.mod test/vault/go.sum
	@echo ">> preparing github.com/hashicorp/vault/sdk $(VAULT_SDK_VERSION) without its start-up panic"
	rm -rf $(BIN)/vault-sdk && mkdir -p $(BIN)
	cp -r "$$(cd test/vault && $(GO) mod download -json github.com/hashicorp/vault/sdk@$(VAULT_SDK_VERSION) | sed -n 's/.*"Dir": "\(.*\)",/\1/p')" $(BIN)/vault-sdk
	chmod -R u+w $(BIN)/vault-sdk
	sed -i 's|panic(fmt.Sprintf("Pattern %v defines a CreateOperation but no ExistenceCheck", p.Pattern))|// check removed for the test build|' $(BIN)/vault-sdk/framework/backend.go
	@grep -q "check removed for the test build" $(BIN)/vault-sdk/framework/backend.go
	@echo ">> building vault from github.com/hashicorp/vault v1.14.1 (~5 min cold)"
	cd test/vault && $(GO) build -o $@ github.com/hashicorp/vault

$(CONTROLLER_GEN):
	GOBIN=$(BIN)/.tmp-cg $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/.tmp-cg/controller-gen $@ && rm -rf $(BIN)/.tmp-cg

$(GOLANGCI_LINT):
	GOBIN=$(BIN)/.tmp-gl $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/.tmp-gl/golangci-lint $@ && rm -rf $(BIN)/.tmp-gl

$(HELM):
	GOBIN=$(BIN)/.tmp-helm $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/.tmp-helm/helm $@ && rm -rf $(BIN)/.tmp-helm

##@ End to end

.PHONY: e2e
e2e: $(CONTROL_PLANE) $(NODE_BINS) $(BIN)/vault $(HELM) ## Bring up a real single-node cluster (root), run the e2e suite, tear it down.
	@test "$$(id -u)" = 0 || { echo "make e2e needs root (containerd, kubelet, iptables)"; exit 1; }
	@echo ">> e2e: images are built from this tree; logs go to test/e2e/logs/<timestamp>/"
	@# One package, so that go test streams its output (the helper packages' tests run in make test).
	$(GO) test -tags e2e -count=1 -timeout 40m -v ./test/e2e

.PHONY: e2e-clean
e2e-clean: ## Remove what a killed e2e run left (containers, mounts, bridge, iptables chains, work dir).
	$(GO) run ./test/e2e/cleanup
