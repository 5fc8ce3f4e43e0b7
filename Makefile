# Vigil — see README.md. Every target runs on a fresh Debian machine as root:
# `make deps` (called by test, demo and bench) installs what they need.

GO       ?= go
BIN      := bin/vigil
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
PKGS     := ./...
FUZZTIME ?= 30s
DEB_DEPS := socat iproute2

.PHONY: all build test lint bench fuzz demo deps clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vigil

# Debian packages the tests and the demo use (socat makes the serial
# cables of the lab). Installed only when missing.
deps:
	@missing=""; for p in $(DEB_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# Unit, fuzz-seed, race and network-namespace lab tests. The lab tests need
# root; CI runs as root so they always run there.
test: deps lint
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Benchmarks: codec micro-benchmarks, detection latency after kill -9
# (median/p99 over 20 kills) and one daemon's idle CPU/RSS with 3 peers at
# keepalive 10ms over a 30 s window.
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./cluster/...
	$(GO) test -run '^$$' -bench Detection -benchtime 20x ./test/lab/
	$(GO) test -run '^$$' -bench Idle -benchtime 1x ./test/lab/

# Each fuzz target for FUZZTIME; new crashers land in testdata/fuzz.
fuzz:
	@for t in FuzzParseHA FuzzParseResources FuzzPositions FuzzAuthkeys; do \
		$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./cluster/config/ || exit 1; done
	@for t in FuzzDecode FuzzCOBSDecode; do \
		$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./cluster/heartbeat/ || exit 1; done

# A three-node cluster in network namespaces: status, a UDP cut survived
# over a serial cable, a crash detected; then everything is removed.
demo: deps build
	$(GO) run ./test/demo -vigil $(BIN)

clean:
	rm -rf bin
