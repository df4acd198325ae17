# Every target sets itself up: a venv in .venv with requirements.txt installed (re-installed only when
# requirements.txt changes), so `make train` and `make test` work on a fresh clone and are idempotent.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install train test test-fast clean-logs

$(STAMP): requirements.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

## Train the default model (R3GAN with its digits preset) on the embedded digits, offline. Extra overrides: make train ARGS="model=wgan_gp"
train: install
	$(PYTHON) train.py $(ARGS)

## The whole test suite (what CI runs)
test: install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

## Skip the slow end-to-end tests
test-fast: install
	$(PYTHON) -m pytest -m "not slow" $(PYTEST_ARGS)

clean-logs:
	rm -rf logs
