PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean debs

# Debian packages the test suite needs; installed only when missing.
DEB_PACKAGES := dovecot-imapd chromium postgresql
# Only the benchmarks compare against rclone.
BENCH_DEB_PACKAGES := rclone

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

debs:
	@missing=""; for p in $(DEB_PACKAGES) $(EXTRA_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

demo: $(STAMP)
	$(BIN)/migrator demo --workdir demo

test: $(STAMP) debs
	$(BIN)/ruff check --quiet .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(MAKE) debs EXTRA_DEBS="$(BENCH_DEB_PACKAGES)"
	$(BIN)/python -m bench
	$(BIN)/python -m bench.mail
	$(BIN)/python -m bench.files
	$(BIN)/python -m bench.chat
	$(BIN)/python -m bench.ledger --postgres
	$(BIN)/python -m bench.calendar
	$(BIN)/python -m bench.department
	$(BIN)/python -m bench.memory

clean:
	rm -rf $(VENV) demo .pytest_cache .hypothesis
