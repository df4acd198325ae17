# Every target sets itself up: a venv in .venv with requirements.txt installed (re-installed only when
# requirements.txt changes), so `make train` and `make test` work on a fresh clone and are idempotent.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
ARGS ?=
PYTEST_ARGS ?=
# The suite runs on every core, up to 4 (pytest-xdist). Whole files go to one worker (--dist loadfile), so a
# module's fixture that starts a batch of subprocesses (tests/test_errors.py) runs once, not once per worker.
# TEST_WORKERS= (empty) runs it in one process.
TEST_WORKERS ?= -n auto --maxprocesses=4 --dist loadfile

.PHONY: install train test test-fast gpu-wheels clean-logs

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
	$(PYTHON) -m pytest $(TEST_WORKERS) $(PYTEST_ARGS)

## Skip the slow end-to-end tests
test-fast: install
	$(PYTHON) -m pytest -m "not slow" $(TEST_WORKERS) $(PYTEST_ARGS)

## Wheels for an offline GPU machine that has torch and Lightning but not Hydra (benchmarks/gpu_check.py):
## the pure-Python packages this project adds, in .whl/ (GPU_PYTHON: that machine's Python version)
GPU_PYTHON ?= 3.12
gpu-wheels: install
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
		--implementation cp --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.2 omegaconf==2.3.0 torch-fidelity==0.4.0
	# antlr4's runtime 4.9.3 (what omegaconf 2.3 needs) is published as a source archive only
	$(PYTHON) -m pip wheel --quiet --no-deps -w .whl antlr4-python3-runtime==4.9.3

clean-logs:
	rm -rf logs
