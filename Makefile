# vigil — make run starts the embedded default; make test runs every test.
GO      ?= go
BIN     := bin/vigil
PKGS    := ./...
FUZZTIME ?= 30s
# every fuzz target, package:function (go test fuzzes one target at a time)
FUZZ_TARGETS := ./engine/event:FuzzDecode ./engine/event:FuzzDecodeFast ./engine/event:FuzzContainsPAN ./features:FuzzParse ./rules:FuzzCompile ./rules:FuzzParseTestFile ./rules:FuzzLowering ./rules/yamlsyntax:FuzzErrors \
	./signals:FuzzSegmentDecoder ./signals:FuzzRecordPayload ./signals:FuzzDecodeLabels \
	./engine/stream/loadgen:FuzzReadJSONL ./engine/stream/loadgen:FuzzReadCSV \
	./engine/replay:FuzzReadCSV ./engine/replay:FuzzReadLabels ./engine:FuzzDecodeConfig

# the profile go build applies to the binary (profile-guided optimization;
# regenerate with make pgo)
PGO     := $(CURDIR)/cmd/vigil/default.pgo
# the benchmarks profiled for it: the score path, decoding, features, rules
PGO_BENCH := BenchmarkScore$$|BenchmarkHTTPScore$$|BenchmarkDecode$$|BenchmarkDecodeLoadgen$$|FeaturesObserve|FeaturesReplayFDH|RulesEvaluate

.PHONY: all build run test test-unit bench pgo lint fuzz clean services-up services-down

all: build

# the commit the binary is built from, shown by vigil version
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/vigil

## run: build and start vigil on the embedded default (127.0.0.1:8080)
run: build
	./$(BIN) serve

## test: start Kafka and ClickHouse on loopback (installed on first use),
## run all tests with the race detector, stop the services. Test binaries
## are built without the profile (-pgo=off: the same code, and no second
## race build of every package); the binary the tests run is built as
## make build does.
test: lint
	deploy/services.sh up
	env $$(deploy/services.sh env) $(GO) test -pgo=off -race -count=1 -timeout 30m $(PKGS); \
	status=$$?; deploy/services.sh down >/dev/null; exit $$status

## services-up / services-down: the real services alone (for local runs:
## `export $$(deploy/services.sh env)` then go test)
services-up:
	deploy/services.sh up
	@deploy/services.sh env
services-down:
	deploy/services.sh down

## test-unit: tests without the race detector (quick)
test-unit:
	$(GO) test -pgo=off -count=1 $(PKGS)

## bench: the benchmarks in bench/ and the packages, built with the
## binary's profile
bench:
	$(GO) test -pgo=$(PGO) -run '^$$' -bench . -benchmem $(PKGS)

## pgo: profile the hot paths into cmd/vigil/default.pgo (commit it); the
## profile in place is replaced only when every benchmark ran
pgo:
	cd bench && $(GO) test -pgo=off -o $${TMPDIR:-/tmp}/vigil-pgo.test -run '^$$' \
		-bench '$(PGO_BENCH)' -benchtime 3s -cpuprofile $(PGO).new . \
		&& mv $(PGO).new $(PGO) || { rm -f $(PGO).new; exit 1; }

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## fuzz: run every parser and decoder fuzz target for FUZZTIME each
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

clean:
	rm -rf bin
