# moonhook: `make run` and `make test` set up everything they need on Debian 12, then build.
# Both are idempotent: they install only what is missing.

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the build and the tests need.
APT_PACKAGES := liblua5.4-dev libssl-dev pkg-config python3 python3-venv
# What only the tests need: stock Lua 5.4, the oracle of the differential test; PostgreSQL, whose
# server the tests start themselves in a temporary folder (scripts/test-postgres.sh); openssl for
# its self-signed certificate; Prometheus, whose promtool checks the example alert rules and whose
# server scrapes a test server; Chromium and its driver (same Debian version), the console's browser.
TEST_APT_PACKAGES := lua5.4 postgresql openssl prometheus chromium chromium-driver
# Swift from swift.org, where the toolchain image puts it, when it is not on PATH already.
SWIFT := $(shell command -v swift 2>/dev/null || ls /opt/swift/usr/bin/swift 2>/dev/null || echo swift)
CONFIGURATION ?= debug
# The senders' own signing libraries, which the tests sign requests with (scripts/sign.py).
# browser-use-sdk 3.x no longer ships its webhook module, hence the pin.
# prometheus-client's text parser reads /metrics in the tests; selenium drives the browser
# (pinned: the console's browser test is written against its API).
PIP_PACKAGES := standardwebhooks==1.1.0 svix stripe slack-sdk browser-use-sdk==2.0.15 twilio==9.13.0 prometheus-client selenium==4.40.0
VENV := $(CURDIR)/.build-venv
export MOONHOOK_PYTHON := $(VENV)/bin/python3

.PHONY: all deps test-deps build run demo try test screenshots fuzz-lua bench asan clean

all: build

# Installs the Debian packages of PACKAGES that are missing (none: nothing runs).
define apt_install
	@missing=""; \
	for package in $(1); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
endef

deps:
	$(call apt_install,$(APT_PACKAGES))
	@$(SWIFT) --version >/dev/null 2>&1 || { echo "Swift 6 is required: https://www.swift.org/install/linux/"; exit 1; }

# A virtual environment with the signing libraries, made once.
test-deps: deps
	$(call apt_install,$(TEST_APT_PACKAGES))
	@[ -x $(MOONHOOK_PYTHON) ] || python3 -m venv $(VENV)
	@$(MOONHOOK_PYTHON) -c "import standardwebhooks, svix, stripe, slack_sdk, browser_use_sdk.lib.webhooks, twilio.request_validator, prometheus_client.parser, selenium.webdriver" 2>/dev/null || \
	  $(MOONHOOK_PYTHON) -m pip install --quiet --disable-pip-version-check $(PIP_PACKAGES)

build: deps
	$(SWIFT) build -c $(CONFIGURATION) --product moonhook

# Serves the example handlers/ on 127.0.0.1:8080. The example sources read their secrets from the
# environment; unless you set them, these development values are used (`make demo` uses them too).
export BROWSER_USE_WEBHOOK_SECRET ?= dev-browser-use-secret
export INDUCED_WEBHOOK_TOKEN ?= dev-induced-token
# Where the Browser Use example posts "task finished"; empty: it only logs.
export CHAT_WEBHOOK_URL ?=
BIN = $$($(SWIFT) build -c $(CONFIGURATION) --show-bin-path)/moonhook

run: build
	@echo "moonhook: serving handlers/ on http://127.0.0.1:8080 (Ctrl-C stops; 'make demo' in another terminal sends the fixtures)"
	@$(BIN) serve

# Signs every fixture as its sender would and posts it to the server that `make run` started.
demo: build
	@for fixture in fixtures/*/*.json; do \
	  source=$$(basename $$(dirname $$fixture)); \
	  echo "== $$fixture"; \
	  $(BIN) send http://127.0.0.1:8080/hooks/$$source $$source $$fixture || exit 1; \
	done

# Runs every example handler once against its fixture, without a server.
try: build
	@for fixture in fixtures/*/*.json; do \
	  source=$$(basename $$(dirname $$fixture)); type=$$(basename $$fixture .json); \
	  echo "== $$source/$$type"; \
	  $(BIN) run handlers/$$source/$$type.lua --event $$fixture || exit 1; \
	done

# Suites that run real servers under load, kill them or stop their database, and time what they
# see: each runs on its own after the others, so that thirty suites sharing two cores do not
# stretch their timings.
SYSTEM_SUITES := CrashTests CrashLoopTests SlowSenderTests DatabaseOutageTests InstanceWakeupTests InstanceLimitTests MultiInstanceTests BacklogMemoryTests PrometheusTests ConsoleBrowserTests LiveStreamLoadTests

# Builds, starts a throwaway PostgreSQL cluster on a free loopback port, runs every test against it
# (and SQLite), and stops the cluster whatever the outcome.
test: test-deps
	$(SWIFT) build --build-tests
	@echo "== the example handlers' own tests (moonhook test handlers/)"
	@$$($(SWIFT) build --show-bin-path)/moonhook test handlers/
	@pgdir=$$(mktemp -d /tmp/moonhook-postgres.XXXXXX); \
	  trap 'scripts/test-postgres.sh stop '"$$pgdir" EXIT; \
	  url=$$(scripts/test-postgres.sh start $$pgdir) || exit 1; \
	  echo "PostgreSQL for the tests: $$url"; \
	  export MOONHOOK_TEST_POSTGRES_URL=$$url MOONHOOK_TEST_POSTGRES_DIR=$$pgdir; \
	  system="$$(echo $(SYSTEM_SUITES) | sed 's/ /|/g')"; \
	  failed=0; \
	  SWIFT=$(SWIFT) scripts/swift-test.sh 1200 --skip-build --skip "$$system" || failed=1; \
	  for suite in $(SYSTEM_SUITES); do \
	    echo "== $$suite, on its own"; \
	    SWIFT=$(SWIFT) scripts/swift-test.sh 600 --skip-build --filter "MoonhookTests.$$suite" || failed=1; \
	  done; \
	  exit $$failed

# The console's screenshots for docs/console.md: the browser test takes them (under
# .build/console-screenshots/); this copies them to docs/images/.
screenshots: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --filter "MoonhookTests.ConsoleBrowserTests"
	@mkdir -p docs/images
	cp .build/console-screenshots/{overview,deliveries,delivery,sources,refusals,live}.png docs/images/
	@echo "copied to docs/images/"

# The differential test against stock Lua with more cases and a new seed each run (make test runs
# 10,000 pattern cases with a fixed seed). A failure prints its seed: SEED=... reruns it, and
# MOONHOOK_FUZZ_DUMP=file.lua keeps the generated program.
FUZZ_CASES ?= 200000
fuzz-lua: test-deps
	$(SWIFT) build --build-tests
	MOONHOOK_FUZZ_CASES=$(FUZZ_CASES) MOONHOOK_FUZZ_SEED=$${SEED:-$$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')} \
	  $(SWIFT) test --skip-build --filter DifferentialTests

# Release-build benchmarks; figures go to docs/benchmarks.md.
bench: deps
	$(SWIFT) build -c release --product LuaRuntimeBenchmark
	$$($(SWIFT) build -c release --show-bin-path)/LuaRuntimeBenchmark

# The whole test suite under AddressSanitizer, in its own build folder.
asan: test-deps
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=suppressions=$(CURDIR)/.asan-suppressions LSAN_OPTIONS=suppressions=$(CURDIR)/.lsan-suppressions \
	  $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan

clean:
	rm -rf .build .build-asan
