# Stratus — build, test and benchmark.
#
#   make demo    train logistic regression on a9a with the embedded default backend
#   make test    install the pinned test servers, then run every test
#
# Tools are pinned and installed into .tools/bin, which every target puts first on
# PATH; nothing is installed system-wide except Debian packages (see .ci/run).

GO      ?= go
TOOLS   := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(PATH)
export GOBIN := $(TOOLS)

# Pinned tool versions.
MINIO_VERSION              := v0.0.0-20260212201848-7aac2a2c5b7c
RIE_VERSION                := v0.0.0-20261030222936-bef5c4ba774d
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1

.PHONY: all build test test-short race lint bench demo tools proto clean

all: lint build test

build:
	$(GO) build -o bin/stratus ./cmd/stratus

# The test command README.md gives and .ci/run calls. STRATUS_REQUIRE_TOOLS makes a
# missing test server a failure rather than a skip.
test: tools
	STRATUS_REQUIRE_TOOLS=1 $(GO) test -timeout 20m ./...

test-short:
	$(GO) test -short ./...

# The race detector on the concurrent core (slow; run before sending a change).
race:
	$(GO) test -race -timeout 20m ./executor/... ./psstore/... ./state/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

demo: build
	./bin/stratus apply -auto-approve pipelines/a9a

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x ./planner/

# Pinned tools, installed once into .tools/bin (a version stamp makes reinstalls
# happen only when a pin changes).
tools: $(TOOLS)/.minio-$(MINIO_VERSION) $(TOOLS)/.rie-$(RIE_VERSION)

$(TOOLS)/.minio-$(MINIO_VERSION):
	@mkdir -p $(TOOLS)
	@echo "installing minio $(MINIO_VERSION) (a few minutes the first time)"
	$(GO) install github.com/minio/minio@$(MINIO_VERSION)
	@touch $@

$(TOOLS)/.rie-$(RIE_VERSION):
	@mkdir -p $(TOOLS)
	$(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)
	@touch $@

clean:
	rm -rf bin
