# Two commands for a fresh machine with Python >= 3.11 and pip (see README):
#   make start   install the runtime into .venv and run `actorctl start`
#   make test    install runtime + dev tools into .venv and run lint (the layering contract
#                included), types and the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
# The editable install's bytecode, written once here: a service whose source tree it may not
# write (systemd's ProtectSystem/ProtectHome, PYTHONDONTWRITEBYTECODE) would otherwise compile
# every module at every start, about 0.3 s of a restart (docs/performance.md).
PACKAGES := actors app config runtime sim supervisors
COMPILE := $(BIN)/python -m compileall -q -j 0 $(PACKAGES)

.PHONY: start test lint typecheck pytest chaos bench bench-check bench-mailbox install install-dev clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "actortrade needs Python >= 3.11, found " + sys.version.split()[0] + " (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)

$(STAMP_RUN): $(BIN)/python requirements/run.lock pyproject.toml
	$(PIP) install --require-hashes -r requirements/run.lock
	$(PIP) install --no-deps -e .
	$(COMPILE)
	@touch $@

$(STAMP_DEV): $(BIN)/python requirements/dev.lock pyproject.toml
	$(PIP) install --require-hashes -r requirements/dev.lock
	$(PIP) install --no-deps -e .
	$(COMPILE)
	@touch $@ $(STAMP_RUN)

# Run again after a `git pull`: the packages are installed once, their bytecode is brought up
# to date each time (compileall compiles only what changed).
install: $(STAMP_RUN)
	@$(COMPILE)
install-dev: $(STAMP_DEV)
	@$(COMPILE)

start: $(STAMP_RUN)
	$(BIN)/actorctl start $(ARGS)

# lint-imports: the layering contract of pyproject.toml ([tool.importlinter], docs/architecture.md)
lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

# pytest exits 5 when it collected no test: for this project that means the suite did not load
# (an import-mode or path mistake), so it is reported and kept as a failure.
pytest: $(STAMP_DEV)
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; treating that as a failure" >&2; fi; \
	exit $$rc

test: lint typecheck pytest

# Chaos (docs/chaos.md): SEEDS simulated scenarios, KILLS SIGKILLs of actorctl start, and the
# bad-input cases. A failure prints the command that reproduces it; exit 1 if anything failed.
SEEDS ?= 200
KILLS ?= 5
JOBS  ?= 2
chaos: $(STAMP_RUN)
	$(BIN)/python -m app.chaos --seeds $(SEEDS) --jobs $(JOBS) --kills $(KILLS) --bad-input

# The bench suite (docs/performance.md): one table, and bench/results/suite.json stamped with the
# git SHA, versions and machine. ARGS="--quick" for a short smoke, "--only throughput,recovery"
# for some groups. bench-check runs the suite and fails when a same-run ratio worsened beyond
# its tolerance against the committed bench/results/suite.json.
bench: $(STAMP_DEV)
	$(BIN)/python bench/suite.py $(ARGS)

bench-check: $(STAMP_DEV)
	$(BIN)/python bench/suite.py --check $(ARGS)

bench-mailbox: $(STAMP_DEV)
	$(BIN)/python bench/mailbox_latency.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
