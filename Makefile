# clickgate — see README.md. `make run` serves demo links; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
KAFKA := configs/kafka/kafka.sh
FUZZTIME ?= 10s

.PHONY: all build run test python-plugin fuzz bench bench-full bench-conversions bench-micro bench-tools lint vet proto proto-check kafka-fetch kafka-up kafka-down kafka-clean clean

all: build

PLUGINS := $(filter-out example,$(notdir $(patsubst %/main.go,%,$(wildcard plugins/*/main.go))))

# bin/clickgate and every built-in forwarder in bin/plugins/.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/clickgate ./cmd/clickgate
	@mkdir -p bin/plugins
	@for p in $(PLUGINS); do \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o bin/plugins/$$p ./plugins/$$p || exit 1; \
	done

# Serve the demo links from configs/ on the embedded default (Badger in ./data, no Kafka).
run: build
	CLICKGATE_SEED_LINKS=configs/demo-links.json CLICKGATE_LOG_FORMAT=text \
	CLICKGATE_INGEST_TOKENS=$${CLICKGATE_INGEST_TOKENS:-demo-ingest-token-change-me} ./bin/clickgate serve

# Every test: unit, end to end over real TCP and Badger, crash tests with kill -9, the
# Kafka tests against a real broker, and the Python plugin through the real host. Test
# packages that need Kafka start their own broker through configs/kafka/kafka.sh (or use
# CLICKGATE_TEST_KAFKA_BROKERS); the jars are fetched once here, before packages run in
# parallel.
test: vet kafka-fetch python-plugin
	CLICKGATE_REQUIRE_PYTHON_PLUGIN=1 $(GO) test -count=1 -timeout 14m ./...

# The Python example forwarder's virtualenv (bin/python-plugin-venv: pinned gRPC packages
# from PyPI, stubs generated from the .proto files); a quick no-op when it is current.
python-plugin:
	plugins/python-example/setup.sh

kafka-fetch:
	$(KAFKA) fetch

vet:
	$(GO) vet ./...

# Run every fuzz target for FUZZTIME each (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

# The load benchmark suite (bench/README.md): bin/clickgate under a separate load
# generator, beside nginx `return 302` (or a bare fasthttp handler) measured in the same
# run. `make bench` is the quick suite (under 3 minutes); `make bench-full` the whole set
# (1,000,000 links, the 5-minute memory soak). Extra flags: BENCHFLAGS='-only hot,bots'.
BENCHFLAGS ?=
bench: build bench-tools
	bin/clickbench $(BENCHFLAGS)

bench-full: build bench-tools
	bin/clickbench -full $(BENCHFLAGS)

bench-tools:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/clickbench ./bench/cmd/clickbench
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/baseline302 ./bench/cmd/baseline302

# Conversion intake with attribution over 10,000,000 stored clicks (about 5 minutes, most
# of it storing the clicks): conversions/s one per request and in batches, p99, CPU, and
# the campaign report's latency.
bench-conversions:
	CLICKGATE_BENCH_CLICKS=10000000 CLICKGATE_BENCH_SECONDS=20 $(GO) test -run '^$$' -bench ConversionIntake -benchtime 1x -timeout 60m ./bench/

# Micro-benchmarks of the hot code (redirect handler, click IDs, UTM merge, commit).
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./proxy/... ./storage/...

# Regenerate the plugin protocol's Go code (needs protoc; the Go generators are pinned).
PROTO_DIR := sdk/internal/forwarderv1
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
proto:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(CURDIR)/bin/tools $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/bin/tools $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH=$(CURDIR)/bin/tools:$$PATH protoc -I $(PROTO_DIR) --go_out=$(PROTO_DIR) --go_opt=paths=source_relative \
	  --go-grpc_out=$(PROTO_DIR) --go-grpc_opt=paths=source_relative $(PROTO_DIR)/forwarder.proto

# Fails when the committed generated code differs from what `make proto` produces.
proto-check: proto
	@git diff --exit-code -- $(PROTO_DIR) || { echo "generated protocol code is stale: run make proto and commit"; exit 1; }

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# A local broker on 127.0.0.1:9092. kafka-down stops it and keeps its topics (so an
# outage can be staged with down/up); kafka-clean also deletes its data.
kafka-up:
	$(KAFKA) up

kafka-down:
	$(KAFKA) stop

kafka-clean:
	$(KAFKA) down

clean:
	rm -rf bin
