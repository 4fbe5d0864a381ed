# Two commands: `make run` serves, `make test` checks everything. Both set up what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests need: a real browser, an independent PDF validator, a PKCS#11 token,
# ffmpeg to check that recordings play, NSS tools to give pdfsig a trust store, and a CJK font
# for reports that name Chinese signers and sites.
SYSTEM_PACKAGES := chromium poppler-utils softhsm2 ffmpeg libnss3-tools fonts-wqy-microhei
PYTEST_ARGS ?=

.PHONY: run test lint typecheck pytest sysdeps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/rtc-server serve $(ARGS)

# Installs the Debian packages when running as root with apt; otherwise says what is missing.
sysdeps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages (install them as root):$$missing"; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: $(STAMP) sysdeps lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
