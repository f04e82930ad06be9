# keepwatch — build and test. `make test` sets up what the suite needs
# (PostgreSQL) on a fresh Debian machine, then runs vet and every test.

# bash with pipefail, so a test piped through grep still fails the target.
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c

GO       ?= go
PG_URL   ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export KEEPWATCH_TEST_POSTGRES ?= $(PG_URL)

# Tests run without -race, in a step of their own (see test).
NORACE := TestDemo|TestBenchFleet|TestAgentSpoolSurvivesKill9|TestDriveSeriesStayBoundedOverAYear|TestPruneHistoryKeepsThePeriodAndOpenIncidents

.PHONY: all build test vet deps fuzz demo clean screenshots soak

all: build

build:
	$(GO) build -o bin/keepwatch ./cmd/keepwatch

deps:
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-packaging.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }

# Every test, none skipped: PostgreSQL-backed tests fail if it is missing.
test: deps vet
	bash scripts/check-deps.sh
	# go.mod and go.sum say exactly what the code imports.
	$(GO) mod tidy -diff
	cd deploy/check && $(GO) mod tidy -diff
	# The agent runs on Windows next to the VMS: everything must build there.
	GOOS=windows $(GO) build ./...
	GOOS=windows $(GO) vet ./internal/agent ./cmd/keepwatch
	KEEPWATCH_REQUIRE_ALL=1 $(GO) test -race -count=1 -timeout 15m -skip '^($(NORACE))' ./...
	# The demo and the agent's spool drained after kill -9 (whole processes
	# driven end to end), a simulated year of drive samples and of history
	# pruning (one goroutine, thousands of statements): minutes under
	# -race, so on their own without it.
	KEEPWATCH_REQUIRE_ALL=1 $(GO) test -count=1 -timeout 10m -run '^($(NORACE))' ./...
	# 10,000 simulated servers for a minute: too heavy under -race, so on its own.
	KEEPWATCH_REQUIRE_ALL=1 KEEPWATCH_SIM_FULL=1 $(GO) test -count=1 -timeout 10m -run '^TestSimulateTenThousandServers$$' ./cmd/keepwatch
	# A one-minute soak: a fleet at full rate while the overview is read.
	# Its log is long: the summary is shown, the whole log when it fails.
	KEEPWATCH_REQUIRE_ALL=1 KEEPWATCH_SOAK=60s $(GO) test -count=1 -timeout 5m -run '^TestSoak$$' -v ./cmd/keepwatch > soak.log 2>&1; \
		code=$$?; grep -E '^(=== RUN|--- |PASS|FAIL|ok)|soak_test' soak.log; \
		if [ $$code -ne 0 ]; then grep -v 'level=INFO' soak.log | tail -n 80; fi; rm -f soak.log; exit $$code
	# Three nodes, a kill -9, a PostgreSQL restart and replays: nothing
	# lost, nothing declared twice, every notification delivered.
	KEEPWATCH_REQUIRE_ALL=1 KEEPWATCH_CHAOS=1 $(GO) test -count=1 -timeout 10m -run '^TestChaos$$' ./cmd/keepwatch
	KEEPWATCH_REQUIRE_ALL=1 $(GO) test -count=1 -run '^$$' -fuzz FuzzEnvelope -fuzztime 10s ./internal/protocol
	KEEPWATCH_REQUIRE_ALL=1 $(GO) test -count=1 -run '^$$' -fuzz FuzzPayload -fuzztime 10s ./internal/ingest
	KEEPWATCH_REQUIRE_ALL=1 $(GO) test -count=1 -run '^$$' -fuzz FuzzRequestBodies -fuzztime 10s ./internal/api
	KEEPWATCH_REQUIRE_ALL=1 $(GO) test -count=1 -run '^$$' -fuzz FuzzLocalAPIBodies -fuzztime 10s ./internal/agent
	# The Grafana dashboard and alert rules, checked with Prometheus' own
	# parser in a module of their own (deploy/check/go.mod).
	cd deploy/check && $(GO) vet ./... && KEEPWATCH_REQUIRE_ALL=1 $(GO) test -count=1 ./...

# Ten minutes of a fleet at full rate while the overview is read: memory
# flat, no goroutine left behind, heartbeat p99 reported.
soak:
	KEEPWATCH_SOAK=$${SOAK:-10m} $(GO) test -count=1 -timeout 30m -run '^TestSoak$$' -v ./cmd/keepwatch | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|soak_test'

# Longer fuzzing of the decoders.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzEnvelope -fuzztime 5m ./internal/protocol
	$(GO) test -run '^$$' -fuzz FuzzPayload -fuzztime 5m ./internal/ingest
	$(GO) test -run '^$$' -fuzz FuzzRequestBodies -fuzztime 5m ./internal/api
	$(GO) test -run '^$$' -fuzz FuzzLocalAPIBodies -fuzztime 5m ./internal/agent

demo:
	$(GO) run ./cmd/keepwatch demo

clean:
	rm -rf bin
	rm -rf $(DIST)

# Release artifacts, reproducible (same commit, same bytes): the Debian
# package, the Windows agent's MSI, a CycloneDX SBOM of each and
# SHA256SUMS, into $(DIST). VERSION defaults to keepwatch.Version (plus the
# commit for a -dev version); SIGN_CERT and SIGN_KEY (PEM) sign the MSI and
# keepwatch.exe. See scripts/packages.sh.
DIST ?= dist
.PHONY: packages
packages:
	bash scripts/ensure-packaging.sh
	OUT='$(DIST)' VERSION='$(VERSION)' SIGN_CERT='$(SIGN_CERT)' SIGN_KEY='$(SIGN_KEY)' \
		SIGN_PASS_FILE='$(SIGN_PASS_FILE)' SIGN_URL='$(SIGN_URL)' bash scripts/packages.sh

# Screenshots of the dashboard (laptop and phone) for the README and docs.
screenshots: deps
	KEEPWATCH_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestScreenshots$$' ./internal/web
