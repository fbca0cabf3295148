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
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION        := v0.8.2

.PHONY: all build test test-short race lint demo tools proto proto-tools web clean \
	bench bench-plan bench-data bench-load bench-psstore bench-executor bench-lambda bench-train bench-mf bench-tune bench-destroy bench-estimate

all: lint build test

build:
	$(GO) build -o bin/stratus ./cmd/stratus

# The test command README.md gives and .ci/run calls. STRATUS_REQUIRE_TOOLS makes a
# missing test server a failure rather than a skip. The parameter server and the
# wave runner are also run under the race detector.
test: tools
	STRATUS_REQUIRE_TOOLS=1 $(GO) test -timeout 20m ./...
	STRATUS_REQUIRE_TOOLS=1 $(GO) test -race -timeout 20m ./psstore/ ./executor/ ./state/

test-short:
	$(GO) test -short ./...

# The race detector on the concurrent core (slow; run before sending a change).
race:
	$(GO) test -race -timeout 20m ./executor/... ./psstore/... ./state/...

# gofmt, vet, staticcheck (pinned; staticcheck.conf says which checks and why,
# unused code included) and the layering rule of DESIGN.md (internal/layers).
lint: $(TOOLS)/.staticcheck-$(STATICCHECK_VERSION)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...
	$(GO) test -count=1 ./internal/layers/

demo: build
	./bin/stratus apply -auto-approve pipelines/a9a

# Benchmarks print their figures beside a reference measured in the same run.
bench: bench-plan bench-data bench-load bench-psstore bench-executor bench-lambda bench-train bench-mf bench-tune bench-destroy bench-estimate bench-sharedcache bench-elastic bench-sizing

bench-plan:
	$(GO) test -run '^$$' -bench BenchmarkPlan -benchmem ./planner/

bench-data:
	GOMAXPROCS=1 $(GO) test -run '^$$' -bench 'ParseLIBSVM|ParseCriteo' -benchtime 2s ./dataset/
	dataset/bench-formats.sh
	$(GO) test -run '^$$' -bench . ./dataset/partition/

bench-load: build
	STRATUS=$(CURDIR)/bin/stratus operators/load/bench.sh

bench-psstore:
	$(GO) test -run '^$$' -bench PullPush -benchtime 5000x ./psstore/
	psstore/bench.sh

bench-executor: tools
	executor/lambda/bench.sh

# The a9a train stage on the serverless stack (MinIO, psstore serve, emulators
# running the deployed function) beside the local backend, in one run.
bench-lambda: tools
	STRATUS_BENCH=1 STRATUS_REQUIRE_TOOLS=1 $(GO) test -count=1 -run '^TestBenchServerlessTrain$$' -v ./cmd/stratus/ | grep -v -E '^(=== RUN|--- PASS|PASS)'

bench-train: build
	$(GO) test -run '^$$' -bench Iteration -benchtime 20000x ./operators/train/
	STRATUS=$(CURDIR)/bin/stratus operators/train/bench.sh

bench-mf: build
	STRATUS=$(CURDIR)/bin/stratus operators/train/bench-mf.sh

# softmax against liblinear's one-vs-rest -s 0 and scikit-learn's multinomial
# LogisticRegression on a generated 5-class set (ROWS=200000 by default).
.PHONY: bench-softmax
bench-softmax: build
	STRATUS=$(CURDIR)/bin/stratus operators/train/bench-softmax.sh

# Two teammates on one shared stage cache (MinIO on loopback): the first apply
# beside the adopting one, at 300k and 1M generated rows (SIZES=...), outputs and
# predictions compared; the target is an adopting apply under 10% of the first.
.PHONY: bench-sharedcache
bench-sharedcache: build tools
	STRATUS=$(CURDIR)/bin/stratus MINIO=$(TOOLS)/minio cmd/stratus/sharedcache-bench.sh

# Elastic training (workers = "auto") against 1, 2 and 4 fixed workers on a9a:
# wall, GB-s, cost and test log loss, with ratios (RUNS=3 applies each).
.PHONY: bench-elastic
bench-elastic: build
	STRATUS=$(CURDIR)/bin/stratus operators/train/bench-elastic.sh

# Pinned tools, installed once into .tools/bin (a version stamp makes reinstalls
# happen only when a pin changes).
tools: $(TOOLS)/.minio-$(MINIO_VERSION) $(TOOLS)/.rie-$(RIE_VERSION)

$(TOOLS)/.minio-$(MINIO_VERSION):
	@mkdir -p $(TOOLS)
	@echo "installing minio $(MINIO_VERSION) (a few minutes the first time)"
	$(GO) install github.com/minio/minio@$(MINIO_VERSION)
	@touch $@

$(TOOLS)/.staticcheck-$(STATICCHECK_VERSION):
	@mkdir -p $(TOOLS)
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@touch $@

$(TOOLS)/.rie-$(RIE_VERSION):
	@mkdir -p $(TOOLS)
	$(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)
	@touch $@

# Rebuild the dashboard's front-end bundle from npm packages pinned in
# dashboard/web/package-lock.json (needs Node.js and npm). The bundle is committed,
# so building stratus never needs Node.
web:
	cd dashboard/web && npm ci && npm run build

# Trials per minute on the a9a grid under each early-stopping rule, side by side.
bench-tune:
	$(GO) test -run '^$$' -bench GridSearchA9A -benchtime 3x ./operators/gridsearch/

# Plan's estimates against the measured applies, per stage, on the local backend
# and the serverless stack (MinIO, psstore serve, emulators running the deployed
# function): generated data at 10k, 300k and 2M rows (STRATUS_BENCH_ROWS=...)
# and the example pipelines, fresh and from history; one table per backend.
bench-estimate: tools
	STRATUS_BENCH=1 STRATUS_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 120m -run '^TestBenchEstimates$$' -v ./cmd/stratus/ | grep -v -E '^(=== RUN|--- PASS|PASS)'

.PHONY: bench-sizing
# The planner's workers against a hand sweep (1, 2, 4, 8), cost to the same log loss.
bench-sizing:
	STRATUS_BENCH=1 $(GO) test -count=1 -timeout 30m -run '^TestBenchSizing$$' -v ./cmd/stratus/ | grep -v -E '^(=== RUN|--- PASS|PASS)'

# destroy's deletes on a real MinIO: one at a time (the reference) and concurrent.
bench-destroy:
	$(GO) test -run '^$$' -bench DestroyDeletes -benchtime 3x ./cmd/stratus/

# Regenerate psstore's gRPC code (needs Debian's protobuf-compiler).
proto: proto-tools
	psstore/proto/gen.sh

proto-tools:
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

clean:
	rm -rf bin
