# Everything a newcomer needs, on a fresh Debian/Ubuntu machine with Python 3.11:
#
#   make demo   create .venv, install the project (CPU torch) and run `dfcseg demo`
#   make test   install Xvfb, the GL libraries, dcm2niix and dicom3tools, the test extras
#               (slicer-core included), run all tests
#
# Both are idempotent: a second run only re-installs what pyproject.toml changed.
# CI (.ci/run) runs `make test` and nothing else.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pinned on purpose: this exact version is the CPU build on these machines;
# an unpinned torch pulls a multi-GB CUDA build. GPU users install their own torch.
TORCH ?= torch==2.13.0
DEMO_DIR ?= demo-output
PYTEST_ARGS ?=
# napari needs an X server with 24-bit colour for its OpenGL canvas
XVFB_RUN ?= xvfb-run -a -s "-screen 0 1280x1024x24"

# Xvfb + what PyQt5/vispy load headless, dcm2niix (tests cross-check DICOM geometry with it)
# and dicom3tools (dciodvfy validates the DICOM SEG we write)
APT_PACKAGES := xvfb xauth libgl1 libgl1-mesa-dri libegl1 libglib2.0-0 libx11-xcb1 \
	libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
	libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 \
	libdbus-1-3 libfontconfig1 fonts-dejavu-core dcm2niix dicom3tools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test test-fast install install-test system-deps clean help

help:
	@echo "make demo   install into $(VENV) and run the demo (writes $(DEMO_DIR)/)"
	@echo "make test   install test dependencies (apt + pip) and run the whole test suite"
	@echo "make test-fast   the inner loop: every test not marked slow (pytest -m 'not slow')"

demo: $(VENV)/.installed-napari
	$(BIN)/dfcseg demo $(DEMO_DIR)

# pytest exit 5 = no tests collected: not a failure of the set-up; every other non-zero fails
test: system-deps $(VENV)/.installed-test
	rc=0; $(XVFB_RUN) $(BIN)/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests were collected"; exit 0; fi; exit $$rc

test-fast: system-deps $(VENV)/.installed-test
	$(XVFB_RUN) $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

install: $(VENV)/.installed-napari
install-test: $(VENV)/.installed-test

system-deps:
	@if ! command -v dpkg-query >/dev/null; then \
		echo "not a Debian system: install Xvfb, the GL/xcb libraries and dcm2niix yourself"; exit 0; fi; \
	missing=""; for p in $(APT_PACKAGES); do \
		[ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "system packages: all installed"; exit 0; fi; \
	echo "installing system packages:$$missing"; \
	$(SUDO) apt-get update -q; \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { \
		echo "python venv is missing: installing python3-venv"; rm -rf $(VENV); \
		$(SUDO) apt-get update -q; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; \
		$(PYTHON) -m venv $(VENV); }

# torch first and pinned, so that nothing later resolves it to the CUDA build
$(VENV)/.installed-torch: | $(BIN)/python
	$(PIP) install "$(TORCH)"
	touch $@

$(VENV)/.installed-napari: pyproject.toml $(VENV)/.installed-torch
	$(PIP) install -e ".[napari]" "$(TORCH)"
	touch $@

# slicer-test: slicer-core (Slicer's MRML readers, ~1 GB; measured 61 s to install into a
# fresh venv) so that tests/test_slicer_interop.py runs instead of skipping
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-torch
	$(PIP) install -e ".[all,slicer-test]" "$(TORCH)"
	touch $@

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
