# One-command setup and checks. `make install` is idempotent: a second run only verifies.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# fairseq 0.12.2 does not import on Python >= 3.11; fairseq-fixed is a maintained fork of it.
FAIRSEQ_SPEC := $(shell $(PYTHON) -c 'import sys; print("fairseq-fixed==0.12.3.1" if sys.version_info >= (3, 11) else "fairseq==0.12.2")')

# Debian's Chromium and its WebDriver drive the page of `ofa-sic serve` in tests/test_serve_page.py.
BROWSER_PACKAGES := chromium chromium-driver
APT_GET := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: install browser test demo clean-venv

install: $(VENV)/.installed browser

# Installs the browser packages when chromium or chromedriver is missing (apt-get update only if the first try fails).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "chromium and chromedriver are installed"; \
	else \
		$(APT_GET) install -y $(BROWSER_PACKAGES) || ($(APT_GET) update && $(APT_GET) install -y $(BROWSER_PACKAGES)); \
	fi

$(VENV)/.installed: requirements.txt requirements-interop.txt setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel
	$(BIN)/pip install torch==$(TORCH_VERSION)
	$(BIN)/pip install -r requirements.txt -r requirements-interop.txt
	$(BIN)/python -c "import fairseq" 2>/dev/null || $(BIN)/pip install --no-deps --no-build-isolation "$(FAIRSEQ_SPEC)"
	# SacreEOS names the SCST reward configuration; its metadata asks for the `typing` backport, which
	# Python 3 has built in, hence --no-deps (its other needs, torch and numpy, are installed above).
	$(BIN)/pip install --no-deps sacreeos==1.0.2
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	# fairseq resolves a relative --user-dir against site-packages too: with this link,
	# `fairseq-train --user-dir ofa_sic` works from any folder, as after a regular install.
	ln -sfn "$(CURDIR)/ofa_sic" "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ofa_sic"
	$(BIN)/python -c "import torch, fairseq, ofa_sic; print('torch', torch.__version__, 'fairseq', fairseq.__version__)"
	@! $(BIN)/pip show torchvision torchaudio 2>/dev/null | grep -q Name || (echo "torchvision/torchaudio must not be installed" && exit 1)
	@$(BIN)/python -c "import sys, torch; v = torch.__version__; sys.exit(None if v.split('+')[0] == '$(TORCH_VERSION)' else 'a requirement replaced torch $(TORCH_VERSION) by ' + v)"
	touch $@

test: install
	$(BIN)/python -m pytest -q tests

demo:
	bash run_scripts/demo.sh

clean-venv:
	rm -rf $(VENV)
