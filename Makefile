# One entry point for everything: `make test` (what CI runs), `make dev`, `make bench`.
# Tools are installed on first use into the repo (.venv, tests/browser/node_modules);
# only Chromium comes from Debian, and only when /usr/bin/chromium is missing.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := $(CURDIR)/.venv
TOOLS_STAMP := $(VENV)/.installed
BROWSER_DIR := tests/browser
BROWSER_STAMP := $(BROWSER_DIR)/node_modules/.installed
WEB_STAMP := web/node_modules/.installed
WEB_SDK := web/vendor/momento-sdk-web.js
OUT := $(CURDIR)/test-output

export PATH := $(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

# Ports for `make dev` (override: make dev DEV_PORT=9100 STANDIN_PORT=9190).
DEV_PORT ?= 9000
STANDIN_PORT ?= 9090
export DEV_PORT STANDIN_PORT

.PHONY: test setup tools browser-tools web lint unit packaging spec-lint sam-build sam-local browser bench-smoke dev bench clean-tools

## test: install what the tests need, then fmt, clippy, all tests, packaging checks, browser test
test: setup lint unit packaging sam-local browser bench-smoke
	@echo "make test: all green"

setup: tools browser-tools

tools: $(TOOLS_STAMP)
$(TOOLS_STAMP): tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

## web: build Momento's web SDK into web/vendor/momento-sdk-web.js for web/index.html (npm + esbuild; not committed)
web: $(WEB_SDK)
$(WEB_SDK): $(WEB_STAMP) web/momento-sdk-entry.js
	cd web && npm run --silent build
$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --silent --no-audit --no-fund
	touch $@

browser-tools: $(BROWSER_STAMP)
$(BROWSER_STAMP): $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian's chromium"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	cd $(BROWSER_DIR) && npm ci --silent --no-audit --no-fund
	touch $@

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## unit: unit, integration (real SDK clients) and process (real binary) tiers, plus packaging consistency
unit:
	cargo test --workspace

## packaging: spec checks, both x86_64 test builds, and `sam package` of each into a loopback S3 (moto)
packaging: tools spec-lint sam-build
	$(VENV)/bin/python tests/tools/sam-package.py $(TEST_BUILD_DIR) $(EXAMPLE_BUILD_DIR)

spec-lint: tools
	sam validate --lint
	cfn-lint template.yaml $(EXAMPLE)/template.yaml
	cd $(EXAMPLE) && sam validate --lint
	$(VENV)/bin/python tests/tools/sam-translate.py
	$(VENV)/bin/python tests/tools/example-translate.py $(EXAMPLE)
	$(VENV)/bin/python tests/tools/check-readme.py
	# Each spec as API Gateway receives it, with and without a user pool (the example's too).
	mkdir -p $(OUT)/openapi
	for mode in open with-user-pool; do \
		for spec in order-openapi.yaml admin-openapi.yaml $(EXAMPLE)/order-openapi.yaml $(EXAMPLE)/admin-openapi.yaml; do \
			out=$(OUT)/openapi/$$mode-$$(echo $$spec | tr / -); \
			$(VENV)/bin/python tests/tools/render-openapi.py $$mode $$spec $$out; \
			openapi-spec-validator $$out; \
		done; \
	done

# No aarch64 Rust standard library here, so the test builds are x86_64, each in its own build
# directory: `.aws-sam/build`, where a plain `sam deploy` (arm64 by default) reads, never holds
# one. The example app (examples/pizza-app, the template nested in an existing app) is built too.
TEST_BUILD_DIR := .aws-sam/build-x86_64
EXAMPLE := examples/pizza-app
EXAMPLE_BUILD_DIR := $(CURDIR)/.aws-sam/build-pizza-app-x86_64
export TEST_BUILD_DIR EXAMPLE EXAMPLE_BUILD_DIR
sam-build: tools
	sam build --build-dir $(TEST_BUILD_DIR) --parameter-overrides Architecture=x86_64
	tests/tools/check-arch.sh $(TEST_BUILD_DIR)/TokenVendingMachineFunction/bootstrap x86_64
	@ls -l $(TEST_BUILD_DIR)/TokenVendingMachineFunction/bootstrap
	# Amazon Linux 2023 has glibc 2.34: the built bootstrap must need nothing newer,
	# and the check must be able to fail (a limit below what any binary needs).
	tests/tools/check-glibc.sh $(TEST_BUILD_DIR)/TokenVendingMachineFunction/bootstrap 2.34
	! tests/tools/check-glibc.sh $(TEST_BUILD_DIR)/TokenVendingMachineFunction/bootstrap 2.2 2>/dev/null
	# The leftover build can be deployed only as what it is (sam build leaves the default at arm64).
	$(VENV)/bin/python tests/tools/pin-arch.py x86_64 $(TEST_BUILD_DIR)/template.yaml
	cd $(EXAMPLE) && sam build --beta-features --build-dir $(EXAMPLE_BUILD_DIR) --parameter-overrides Architecture=x86_64
	tests/tools/check-arch.sh $(EXAMPLE_BUILD_DIR)/TokenVendingMachine/TokenVendingMachineFunction/bootstrap x86_64
	$(VENV)/bin/python tests/tools/pin-arch.py x86_64 $(EXAMPLE_BUILD_DIR)/template.yaml $(EXAMPLE_BUILD_DIR)/TokenVendingMachine/template.yaml
	# Where `sam deploy` reads: no build at all, or the default arm64 one.
	if [ -e .aws-sam/build/TokenVendingMachineFunction/bootstrap ]; then \
		tests/tools/check-arch.sh .aws-sam/build/TokenVendingMachineFunction/bootstrap aarch64; \
	else echo ".aws-sam/build holds no bootstrap"; fi

## sam-local: sam local invoke of every event and sam local start-api + curl, in Docker (starts and stops its own dockerd when none runs)
sam-local: tools sam-build
	tests/tools/sam-local.sh

## browser: dev server + stand-in, cargo lambda invoke of every event, headless Chromium cross-origin test
browser: tools browser-tools web
	mkdir -p $(OUT)
	node --test $(BROWSER_DIR)/tvm-client.test.mjs $(BROWSER_DIR)/order-updates.test.mjs
	node $(BROWSER_DIR)/browser.test.mjs

# Each benchmark once, in the test profile: proves the bench code builds and runs (no timings).
bench-smoke:
	cargo test --bench handler --bench process --bench crowd --bench cpu --bench momento_tls

## dev: run the function locally (stand-in Momento unless MOMENTO_API_KEY or SECRET_ID is set)
dev: tools
	tests/tools/dev.sh

## bench: handler and process benchmarks; prints a table and writes test-output/bench.json
bench: tools
	cargo bench --bench handler
	cargo bench --bench process
	cargo bench --bench crowd
	cargo bench --bench cpu
	cargo bench --bench momento_tls
