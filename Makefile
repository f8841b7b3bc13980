# mqnode: build/test entry points. `make test` is what CI (.ci/run) runs.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

MOSQUITTO_HINT := install mosquitto: apt-get install mosquitto mosquitto-clients

.DEFAULT_GOAL := help
.PHONY: help venv .venv sysdeps test check-mosquitto images rp2emu demo clean bench firmware build deploy flash logs

help:
	@echo "make venv    create .venv and install requirements.txt"
	@echo "make test    run pytest on CPython + MicroPython (64-bit, and the 32-bit host image) against mosquitto (PYTEST_ARGS=... to narrow)"
	@echo "make demo    broker + three simulated nodes on MicroPython + the fleet monitor"
	@echo "make bench   run the bench/ suite, heap32, write_split and heap (needs mosquitto; tables in bench/results/)"
	@echo "make firmware BOARD=host|rp2_pico_w|esp32  MicroPython image with the board's modules frozen, into build/<board>"
	@echo "make build  BOARD=esp32                    compile for a board into build/<board>"
	@echo "make deploy BOARD=esp32 PORT=/dev/ttyUSB0  copy what changed + firmware/config.json, secrets.json"
	@echo "make flash  BOARD=esp32 PORT=... FIRMWARE=file.bin   write MicroPython (rp2: FIRMWARE=x.uf2)"
	@echo "make logs   PORT=/dev/ttyUSB0              follow what the node prints"
	@echo "make clean   remove .venv, build/ and caches"

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -r requirements.txt
	touch $@

.venv venv: $(STAMP)

# The system packages the tests need (mosquitto, the firmware toolchains, node, chromium):
# installed when run as root with apt-get, else the one command to run is printed.
sysdeps:
	@bash tools/sysdeps.sh

check-mosquitto:
	@if ! command -v mosquitto >/dev/null 2>&1 && ! test -x /usr/sbin/mosquitto; then \
		echo "mosquitto not found on PATH or in /usr/sbin -- $(MOSQUITTO_HINT)" >&2; exit 1; fi
	@for c in mosquitto_pub mosquitto_sub mosquitto_passwd; do \
		if ! command -v $$c >/dev/null 2>&1 && ! test -x /usr/bin/$$c; then \
			echo "$$c not found -- $(MOSQUITTO_HINT)" >&2; exit 1; fi; done

# The RP2040 emulator the Pico W tests boot the firmware in (tests/rp2emu): rp2040js, pinned
# by tests/rp2emu/package-lock.json. Needs node >= 18 and npm (Debian: nodejs npm).
RP2EMU_STAMP := tests/rp2emu/node_modules/.package-lock.json
$(RP2EMU_STAMP): tests/rp2emu/package.json tests/rp2emu/package-lock.json
	cd tests/rp2emu && npm ci --no-audit --no-fund
	touch $@

rp2emu: $(RP2EMU_STAMP)

# The images the tests run: the host board's 32-bit unix port (the micropython32 runtime) and
# the Pico W's UF2. tools/firmware.py caches them outside the tree (~/.cache/mqnode/firmware),
# so this is instant when lib/, firmware/ and boards/ are unchanged.
images: $(STAMP)
	$(VENV)/bin/python tools/firmware.py --board host
	$(VENV)/bin/python tools/firmware.py --board rp2_pico_w

# pytest's own exit status is also left in build/pytest.status (make itself exits 2 on failure).
test: sysdeps $(STAMP) check-mosquitto images rp2emu
	@mkdir -p build; rm -f build/pytest.status
	@echo "$(VENV)/bin/python -m pytest $(PYTEST_ARGS)"
	@rc=0; $(VENV)/bin/python -m pytest $(PYTEST_ARGS) || rc=$$?; echo $$rc > build/pytest.status; exit $$rc

demo: $(STAMP)
	$(MQNODE) demo

clean:
	rm -rf $(VENV) build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.mpy' -not -path './.git/*' -delete

# Benchmarks print figures (and write bench/results/*.md); they never assert timings.
# bench/deps.py fetches the comparison clients of suite.py (umqtt.simple 1.3.4, mqtt_async)
# from PyPI into bench/.deps once (bench-only; not in requirements.txt). BENCH_ARGS: e.g.
# --lib-rev HEAD. heap32.py reads umqtt.simple 1.8.0 and mqtt_as 0.8.3 in ../shared/vendor/anchors.
bench: $(STAMP) check-mosquitto
	$(VENV)/bin/python bench/deps.py
	$(VENV)/bin/python bench/suite.py $(BENCH_ARGS)
	$(VENV)/bin/python bench/heap32.py
	$(VENV)/bin/python bench/write_split.py
	$(VENV)/bin/python bench/heap.py

# Boards: tools/mqnode.py (mpy-cross + mpremote + esptool). PORT may list several ports.
BOARD    ?= esp32
PORT     ?= /dev/ttyUSB0
CONFIG   ?= $(wildcard firmware/config.json)
SECRETS  ?= $(wildcard firmware/secrets.json)
MQNODE   := $(VENV)/bin/python tools/mqnode.py

firmware: $(STAMP)
	$(MQNODE) firmware --board $(BOARD)

build: $(STAMP)
	$(MQNODE) build --board $(BOARD)

deploy: $(STAMP)
	$(MQNODE) deploy --board $(BOARD) $(foreach p,$(PORT),--port $(p)) \
		$(if $(CONFIG),--config $(CONFIG)) $(if $(SECRETS),--secrets $(SECRETS))

flash: $(STAMP)
	$(MQNODE) flash --board $(BOARD) --port $(PORT) --firmware $(FIRMWARE)

logs: $(STAMP)
	$(MQNODE) logs --port $(PORT)
