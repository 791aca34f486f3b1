# One command sets up and runs the demo; one runs the tests. See README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-bot stack test lint gallery bench clean lock

# Installs locks/dev.txt: every package pinned with its hashes, so this machine, CI and
# the deployed functions (locks/webhook.txt, locks/worker.txt: the same versions) run
# what was tested. The direct requirements are requirements.txt (the functions) and
# requirements-dev.txt; after changing either, `make lock` (tests/test_locks.py fails
# until the locks agree with them).
$(STAMP): locks/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r locks/dev.txt
	touch $(STAMP)

# uv resolves for Python 3.11 on any platform (--universal: markers, not this machine's
# answers) and records the hashes of every file of each pinned version.
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --universal \
	--python-version 3.11 --custom-compile-command "make lock"
lock: $(STAMP)
	$(LOCK) requirements-dev.txt -o locks/dev.txt
	$(LOCK) -c requirements.txt locks/webhook.in -o locks/webhook.txt
	$(LOCK) -c requirements.txt locks/worker.in -o locks/worker.txt

# dlib with OpenBLAS and AVX2, faster per descriptor, and nmslib with AVX2, faster per
# query (figures in docs/performance.md): compiled once into a cache outside the
# repository and installed over the PyPI wheels, which stay the fallback where they
# cannot be built (rm $(FAST_WHEELS) to retry). The tests and benchmarks wait for them;
# the demos start at once with whichever build is installed (both give the same
# descriptors and the same index files).
FAST_WHEELS := $(VENV)/.fast-wheels
$(FAST_WHEELS): $(STAMP) packaging/build_dlib_wheel.sh packaging/build_nmslib_wheel.sh packaging/wheels.sh
	for name in dlib nmslib; do \
	  wheel=$$(PYTHON=$(PYTHON) packaging/build_$${name}_wheel.sh) \
	    && $(PY) -m pip install --quiet --force-reinstall --no-deps "$$wheel" \
	    || echo "$$name wheel not built or not installed: the PyPI wheel stays" >&2; \
	done
	touch $(FAST_WHEELS)

demo: $(STAMP)
	$(PY) main.py match demo/samples/*.jpg --draw demo-output.png

# The bot on this machine: emulators, a local Bot API server and both functions
# (see README.md, "Run the bot locally"). demo-bot sends a sample photo and stops.
demo-bot: $(STAMP)
	$(PY) -m stack demo demo/samples/Barack_Obama_fr_obama2.jpg --out demo-bot-reply.jpg

stack: $(STAMP)
	$(PY) -m stack up

test: $(FAST_WHEELS)
	@command -v shellcheck >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update -qq && apt-get install -y -qq shellcheck)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

# ruff, and mypy over main.py, functions/, shared/ and index_builder/ (pyproject.toml).
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

gallery: $(STAMP)
	$(PY) demo/build_gallery.py

# Every benchmark of docs/performance.md; BENCH_ARGS=--million adds the 1M-entry index.
bench: $(FAST_WHEELS)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache demo-output*.png demo-bot-reply.jpg
