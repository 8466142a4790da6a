# Two commands on a fresh machine (Python 3.11 and make): `make demo`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the tests need: the browser test (the annotator's UI in headless Chromium), the
# scaled-out judge loop and Label Studio's database (PostgreSQL, Redis: real servers the session starts
# on loopback), a real compose implementation that validates docker/compose.yaml, and the ML backend's
# real-speech corpus (sox with its MP3/Ogg formats, espeak-ng; scripts/local/corpus.py).
DEB_TEST := chromium postgresql redis-server docker-compose sox libsox-fmt-all espeak-ng

.PHONY: install ls-env vllm-env test-deps test test-unit demo demo-stop clean

install: $(VENV)/.installed

# label-studio-ml 1.0.9 (the newest on PyPI) pins Flask 1.1.2 / Werkzeug 2.0.2 / Jinja2 3.0.3, which
# have published CVEs; its base class runs on current Flask (docs/platform-notes.md), so it is installed without its
# pins and its real needs come from our `ml` extra. `pip check` reports those pins; that is expected.
LS_ML := label-studio-ml==1.0.9

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,ml,report,postgres,redis]'
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps $(LS_ML)
	touch $@

ls-env: install
	$(VENV)/bin/clesc ls install

# vLLM (CPU build) in its own environment, for the tests' real LLM server (SmolLM2-135M-Instruct, a tiny random Mixtral).
vllm-env: install
	$(VENV)/bin/clesc vllm-install

test-deps:
	@for p in $(DEB_TEST); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

test: install ls-env vllm-env test-deps
	$(VENV)/bin/python -m pytest

# The fast loop: every unit test and doctest, no server (no Label Studio, vLLM or browser).
test-unit: install
	$(VENV)/bin/python -m pytest -m "not ls and not vllm and not browser and not postgres and not redis"

demo: install ls-env
	$(VENV)/bin/clesc demo

demo-stop: install
	$(VENV)/bin/clesc demo --stop

clean:
	rm -rf $(VENV) .venv-ls .venv-vllm .clesc test-artifacts .pytest_cache
