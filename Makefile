# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both go through `make setup`: a .venv at the repository root (so .venv/bin/mcuc is the CLI)
# and, when run as root, the Debian packages later stages need.

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2
DEBS := gcc-arm-none-eabi libnewlib-arm-none-eabi picolibc-arm-none-eabi gcc-riscv64-unknown-elf \
        picolibc-riscv64-unknown-elf qemu-system-arm qemu-system-misc clang chromium

.PHONY: setup debs venv test demo bench clean

setup: debs venv

debs:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "setup: Debian packages present"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "setup: installing $$missing"; \
	  apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; \
	else \
	  echo "setup: missing Debian packages: $$missing"; \
	  echo "setup: run 'sudo apt-get install $$missing' (tests that need them will skip)"; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: nothing may resolve it to a CUDA build later.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: setup
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) tests

demo: setup
	$(PY) examples/digits/demo.py

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info demo-out
