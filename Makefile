# GeoCLIP for QGIS: every target installs what it needs on first use and is safe to re-run.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS  ?= /usr/bin/python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.geoclip-ready
# One pinned set per platform (constraints/<platform>.txt), chosen from /etc/os-release, never by hand.
PLATFORM    ?= $(shell . /etc/os-release 2>/dev/null && echo "$${ID}$${VERSION_ID%%.*}")
CONSTRAINTS := constraints/$(PLATFORM).txt
APT_PKGS    := qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-venv python3-pip python3-pyproj proj-data xvfb \
               pyqt5-dev-tools qttools5-dev-tools
# Debian 13: torch from Debian (CPU build) with OpenBLAS (else the reference BLAS, ~50x slower matmuls)
APT_PKGS_debian13 := python3-torch libopenblas0-openmp
APT_PKGS    += $(APT_PKGS_$(PLATFORM))
GEOCLIP_WHL := geoclip==1.3.0
QGIS_ENV    := QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PROJ_DATA=/usr/share/proj \
               PYTHONPATH=$(CURDIR) XDG_RUNTIME_DIR=/tmp/runtime-$$(id -u)
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PROFILE_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins
PHOTOS      ?=

.PHONY: help install system-deps test lint bench demo package release-check repo deploy clean chroot-deps \
        test-qgis340 test-qgis344 translations

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "%-14s %s\n", $$1, $$2}'

install: $(STAMP)  ## Debian packages + venv with pinned deps + GeoCLIP weights

system-deps:  ## Debian's QGIS and GDAL (apt, only when missing)
	@[ -f "$(CONSTRAINTS)" ] || { echo "make install: no pinned package set for platform '$(PLATFORM)' ($(CONSTRAINTS) missing); supported: $$(ls constraints | sed 's/.txt//' | tr '\n' ' ')" >&2; exit 1; }
	@if dpkg -s $(APT_PKGS) >/dev/null 2>&1; then echo "system packages present: $(APT_PKGS)"; \
	else echo ">> installing Debian packages: $(APT_PKGS)"; \
	  { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(APT_PKGS); } \
	  || { echo "make install FAILED at step 'apt-get install $(APT_PKGS)': check network access to Debian mirrors and root/sudo rights." >&2; exit 1; }; fi

# The stamp is written only after every step succeeded, so a half-made venv is never trusted:
# a failed run removes the stamp and the next run starts that venv again from scratch.
$(STAMP): requirements.txt requirements-dev.txt $(CONSTRAINTS) | system-deps
	@rm -f $(STAMP)
	@set -o pipefail; step() { echo ">> $$1"; }; fail() { echo "make install FAILED at step '$$1'. $$2" >&2; rm -rf $(VENV); exit 1; }; \
	step "create venv on $(PYTHON_SYS) (--system-site-packages, to see qgis and osgeo)"; \
	  [ -x $(PY) ] || $(PYTHON_SYS) -m venv --system-site-packages $(VENV) || fail "venv" "Is python3-venv installed?"; \
	step "pip install pinned requirements ($(CONSTRAINTS))"; \
	  $(PY) -m pip install -q -r requirements-dev.txt -c $(CONSTRAINTS) || fail "pip install" "Check access to PyPI."; \
	step "pip install $(GEOCLIP_WHL) --no-deps (pretrained GeoCLIP weights)"; \
	  $(PY) -m pip install -q --no-deps $(GEOCLIP_WHL) || fail "geoclip wheel" "Check access to PyPI."; \
	step "use Debian's pyproj (one libproj in the process with QGIS)"; \
	  $(PY) -m pip uninstall -y -q pyproj >/dev/null 2>&1 || true; \
	step "check imports"; \
	  PROJ_DATA=/usr/share/proj $(PY) -c "import torch, transformers, numpy, pyproj, shapely, PIL, pillow_heif, sklearn, qgis.core, osgeo.gdal, osgeo.gdal_array, importlib.metadata; importlib.metadata.version('basemap-data'); assert pyproj.__file__.startswith('/usr/lib/python3/'), 'pyproj must come from Debian python3-pyproj, which shares the libproj of QGIS'" \
	  || fail "import check" "A package is installed but does not import; see the error above."; \
	touch $(STAMP); echo "install complete: $(VENV)"

test: $(STAMP)  ## run the whole suite in headless QGIS (offline)
	@mkdir -p /tmp/runtime-$$(id -u) && chmod 700 /tmp/runtime-$$(id -u)
	$(QGIS_ENV) $(PY) -m pytest $(PYTEST_ARGS)

chroot-deps:  ## debootstrap for the QGIS 3.40 / 3.44 chroots (apt, only when missing)
	@command -v debootstrap >/dev/null || { echo ">> installing debootstrap"; \
	  { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends debootstrap; } >/dev/null \
	  || { echo "make test-qgis3xx: could not install debootstrap (needs root and access to Debian's mirror)" >&2; exit 1; }; }

test-qgis340: chroot-deps  ## lint + the whole suite on QGIS 3.40 LTR in a Debian 13 chroot (built on first use)
	tools/qgis_chroot.sh qgis340 lint test PYTEST_ARGS="$(PYTEST_ARGS)"

test-qgis344: chroot-deps  ## the same on QGIS 3.44 from trixie-backports
	tools/qgis_chroot.sh qgis344 lint test PYTEST_ARGS="$(PYTEST_ARGS)"

lint: $(STAMP)  ## ruff + Qt6 readiness (resolved in PyQt6) + plugins.qgis.org's scans + module/function size, import cycles
	$(VENV)/bin/ruff check geoclip_qgis model_utils tests tools
	QT_QPA_PLATFORM=offscreen PYTHONPATH=$(CURDIR) $(PY) tools/qt6_check.py
	PYTHONPATH=$(CURDIR) $(PY) tools/security_scan.py
	$(PY) -m tools.structure_check

translations:  ## i18n/geoclip_qgis.ts: every text of the plugin, extracted by pylupdate5, for translators
	$(PY) -m tools.translations --out i18n/geoclip_qgis.ts

bench: $(STAMP)  ## benchmarks -> bench/results.md + bench/results.json
	@mkdir -p /tmp/runtime-$$(id -u) && chmod 700 /tmp/runtime-$$(id -u)
	$(QGIS_ENV) $(PY) -m tools.bench --out bench

demo: $(STAMP)  ## the main job, headless -> demo_output/
	@mkdir -p /tmp/runtime-$$(id -u) && chmod 700 /tmp/runtime-$$(id -u)
	@QT_QPA_PLATFORM=offscreen PROJ_DATA=/usr/share/proj PYTHONPATH=$(CURDIR) XDG_RUNTIME_DIR=/tmp/runtime-$$(id -u) \
	  $(PY) -m tools.demo --out demo_output $(if $(PHOTOS),--photos "$(PHOTOS)")

package:  ## dist/geoclip_qgis.zip for Plugin Manager > Install from ZIP (system Python only: no venv, no torch)
	$(PYTHON_SYS) tools/package.py --out dist/geoclip_qgis.zip

release-check: $(STAMP) package  ## dist/geoclip_qgis.zip against plugins.qgis.org's validator rules and scans
	QT_QPA_PLATFORM=offscreen PYTHONPATH=$(CURDIR) $(PY) tools/release_check.py dist/geoclip_qgis.zip

REPO_URL ?=
repo:  ## dist/repo: plugins.xml + ZIP, a plugin repository to host (REPO_URL=where it is served; default file://)
	$(PYTHON_SYS) tools/plugin_repo.py --out dist/repo $(if $(REPO_URL),--url "$(REPO_URL)")

deploy:  ## link the plugin into the default QGIS profile
	@mkdir -p "$(PROFILE_DIR)"
	@ln -sfn "$(CURDIR)/geoclip_qgis" "$(PROFILE_DIR)/geoclip_qgis"
	@echo "linked $(PROFILE_DIR)/geoclip_qgis -> $(CURDIR)/geoclip_qgis (enable it in Plugins > Manage)"

clean:  ## remove build outputs (keeps the venv)
	rm -rf dist demo_output bench/*.tmp .pytest_cache
