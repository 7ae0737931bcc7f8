# vigil — make run starts the embedded default; make test runs every test.
GO      ?= go
BIN     := bin/vigil
PKGS    := ./...
FUZZTIME ?= 60s

.PHONY: all build run test test-unit bench lint fuzz clean services-up services-down

all: build

build:
	$(GO) build -o $(BIN) ./cmd/vigil

## run: build and start vigil on the embedded default (127.0.0.1:8080)
run: build
	./$(BIN) serve

## test: start Kafka and ClickHouse on loopback (installed on first use),
## run all tests with the race detector, stop the services
test: lint
	deploy/services.sh up
	env $$(deploy/services.sh env) $(GO) test -race -count=1 -timeout 30m $(PKGS); \
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
	$(GO) test -count=1 $(PKGS)

## bench: the benchmarks in bench/ and the packages
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## fuzz: run the event decoder fuzz target for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./engine/event

clean:
	rm -rf bin
