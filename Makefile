# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv/ and installs
# what is missing first (Debian's ffmpeg for ffmpeg + ffprobe, then the pinned Python packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test serve bench system-deps install clean

demo: $(STAMP)
	$(VENV)/bin/mediaflow demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

serve: $(STAMP)
	$(VENV)/bin/mediaflow serve

bench: $(STAMP)
	$(VENV)/bin/python bench/asr.py

install: $(STAMP)

system-deps:
	@if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then \
	  echo "installing ffmpeg (Debian package: ffmpeg + ffprobe)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ffmpeg >/dev/null; \
	fi

$(STAMP): requirements.lock pyproject.toml | system-deps
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements.lock
	$(VENV)/bin/python -m pip install -q --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

clean:
	rm -rf $(VENV) data
