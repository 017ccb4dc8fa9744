# openblock.storage: one entry point for the demo, the tests and their parts.
# `make demo` boots the built-in lab and converges playbooks/site.yml on it;
# `make test` runs everything CI runs.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV    := .venv
BIN     := $(VENV)/bin
# The controller Python of every venv: the newest of at least 3.12 on PATH or in pyenv (what
# ansible-core 2.20 and later require of a controller).
PYTHON  := $(or $(PYTHON),$(shell scripts/find-python.sh 3.12))
STAMP   := $(VENV)/.installed
# The controller matrix: .venv has the ansible-core of requirements.txt (the newest supported) and
# every other tool, and runs the labs; each older version of CORE_MATRIX gets a venv of its own with
# only ansible-core and pytest, for ansible-test sanity and the unit tests.
CORE_MATRIX := 2.19.14 2.20.10
CORE_VENVS  := $(foreach v,$(CORE_MATRIX),.build/core-$(v))
NO_PYTHON   := echo "make: the controller needs a Python of 3.12 or newer (ansible-core 2.20 and later) and none was found."; \
	  echo "      Install one (Debian 13: apt install python3-venv; Debian 12: pyenv install 3.13)"; \
	  echo "      and name it if it is not on PATH: make PYTHON=/path/to/python3.13 ..."; exit 1
LABCTL  := $(BIN)/python lab/labctl
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help venv core-venvs host-packages demo plan test lint sanity unit matrix docs docs-check integration system lifecycle site-scenario check-fresh bench build clean lab-down

help:
	@echo "make demo         boot the lab and converge playbooks/site.yml on it"
	@echo "make test         everything CI runs: integration and system side by side, with lint, sanity, unit, docs-check and the core matrix beside them"
	@echo "make plan         what site.yml would change, by host (check and diff mode, nothing changes)"
	@echo "make docs         the HTML docsite in .build/docs/build/html"
	@echo "make matrix       sanity and unit tests on every older ansible-core of CORE_MATRIX ($(CORE_MATRIX))"
	@echo "make lint | sanity | unit | docs-check | integration | system | lifecycle | site-scenario | check-fresh | bench | build | clean"

$(STAMP): requirements.txt
	@if [ -z "$(PYTHON)" ]; then $(NO_PYTHON); fi
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	# Link the collection into site-packages, where ansible-core's collection loader finds it:
	# ansible-doc, ansible-playbook and pytest then all see openblock.storage.
	site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	mkdir -p "$$site/ansible_collections/openblock"; \
	ln -sfn "$(CURDIR)" "$$site/ansible_collections/openblock/storage"
	# ansible.cfg's collections_path: the working tree and nothing else.
	mkdir -p $(VENV)/collections/ansible_collections/openblock
	ln -sfn "$(CURDIR)" $(VENV)/collections/ansible_collections/openblock/storage
	touch $@

venv: $(STAMP)

.build/core-%/.installed: requirements.txt
	@if [ -z "$(PYTHON)" ]; then $(NO_PYTHON); fi
	rm -rf .build/core-$*
	$(PYTHON) -m venv .build/core-$*
	# The pins of requirements.txt constrain what ansible-core and pytest pull in, save ansible-core.
	grep -v '^ansible-core==' requirements.txt > .build/core-$*/constraints.txt
	.build/core-$*/bin/pip install -q --upgrade pip
	.build/core-$*/bin/pip install -q -c .build/core-$*/constraints.txt ansible-core==$* pytest
	site=$$(.build/core-$*/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	mkdir -p "$$site/ansible_collections/openblock"; \
	ln -sfn "$(CURDIR)" "$$site/ansible_collections/openblock/storage"
	touch $@

core-venvs: $(foreach v,$(CORE_VENVS),$(v)/.installed)

host-packages:
	scripts/host-packages.sh

lint: venv
	$(BIN)/ansible-lint --profile production

sanity: venv host-packages
	scripts/sanity.sh $(VENV)

unit: venv
	$(BIN)/pytest -q tests/unit $(wildcard tests/lab)

# The same sanity and unit tests on each older ansible-core; every version runs even after a failure.
matrix: core-venvs host-packages
	failed=; for v in $(CORE_VENVS); do \
	  echo "=== make matrix: $$v"; \
	  scripts/sanity.sh $$v || failed="$$failed [$$v sanity]"; \
	  PATH=$(CURDIR)/$$v/bin:$$PATH $$v/bin/pytest -q -p no:cacheprovider tests/unit $(wildcard tests/lab) \
	    || failed="$$failed [$$v unit]"; \
	done; \
	if [ -n "$$failed" ]; then echo "make matrix: failed:$$failed"; exit 1; fi

# The HTML docsite (antsibull-docs + Sphinx, warnings are errors): .build/docs/build/html.
docs: venv
	scripts/build-docs.sh

# What users get: docs lint, changelog lint, the docsite, the built artifact installed into an
# empty path with ansible-doc run from there, the ansible-runner example of the docs, and the
# Vagrantfile of the lab.
docs-check: venv host-packages docs
	$(BIN)/antsibull-docs lint-collection-docs --plugin-docs --skip-rstcheck .
	$(BIN)/antsibull-changelog lint
	$(BIN)/pytest -q tests/packaging tests/docs
	cd lab && VAGRANT_CHECKPOINT_DISABLE=1 vagrant validate

# The Debian releases of the lab (lab/lablib.py builds one image of each). The module tests run on
# each. The site scenarios run on a Debian 13 `cinder` lab (what a new server gets today) whose
# compute1 runs Debian 12, as in a fleet in the middle of its upgrade: every compute role, the shared
# VG (created by the Debian 12 host, joined by the Debian 13 one) and the faults then run on both
# releases in one boot, at no extra CPU time.
LAB_RELEASES := bookworm trixie
SYSTEM_RELEASE := trixie
SYSTEM_NODE_RELEASES := compute1=bookworm
LAB_RELEASE ?= $(SYSTEM_RELEASE)

# Module tests on the `single` lab topology of LAB_RELEASE, booted once for all of them.
integration: venv host-packages
	@if [ -z "$$(ls tests/integration/test_*.py 2>/dev/null)" ]; then echo "no integration tests yet"; exit 0; fi; \
	export LAB_DIR=$(CURDIR)/.build/lab-single-$(LAB_RELEASE) LAB_RELEASE=$(LAB_RELEASE); \
	trap '$(LABCTL) down' EXIT; \
	$(LABCTL) up single; \
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 tests/integration

# Everything that needs the whole site, on one boot of the mixed `cinder` lab above, in
# an order that lets each step use what the one before left: the lab's smoke test, site.yml --check
# on the still fresh VMs (it must report changes and change nothing), the site scenario `default`
# (converge, verify, then a -vvv converge that must change nothing and show no secret), the shared
# VG scenario (locks, reboot, recovery), then the faults on the converged lab. Every step runs even
# after a failure, so one run reports all of them; the target fails at the end, naming the failed
# steps. The day-2 scenario `lifecycle` is not part of it yet (make lifecycle): after the shared VG
# scenario's reboot of compute2, tgt kept a stale I_T nexus of compute2's old session to
# compute2-disk, and the scenario's delete of that volume was refused; it also needs about 13 more
# minutes than the 60-minute budget of make test has left.
system: venv host-packages
	export LAB_DIR=$(CURDIR)/.build/lab-cinder-system LAB_RELEASE=$(SYSTEM_RELEASE) \
	  LAB_NODE_RELEASES=$(SYSTEM_NODE_RELEASES) LAB_KEEP=1; \
	trap '$(LABCTL) down' EXIT; \
	$(LABCTL) up cinder; \
	failed=; step() { echo "=== make system: $$*"; "$$@" || failed="$$failed [$$*]"; }; \
	step $(BIN)/molecule test -s lab_smoke; \
	step $(BIN)/pytest -q -s --durations=10 tests/system/test_check_mode_fresh.py; \
	step $(BIN)/molecule test -s default; \
	step $(BIN)/molecule test -s shared_lvm; \
	step $(BIN)/pytest -q -s --durations=10 tests/system/test_faults.py; \
	if [ -n "$$failed" ]; then echo "make system: failed:$$failed"; exit 1; fi

# The day-2 scenario on a lab of its own: the `default` converge, then `lifecycle` (a plan checked
# against its run, detach refused while mounted, move, delete, retire, grow and CHAP rotation under a
# writer), on the same mixed releases as `system`. About 22 min from a bare lab.
lifecycle: venv host-packages
	export LAB_DIR=$(CURDIR)/.build/lab-cinder-lifecycle LAB_RELEASE=$(SYSTEM_RELEASE) \
	  LAB_NODE_RELEASES=$(SYSTEM_NODE_RELEASES) LAB_KEEP=1; \
	trap '$(LABCTL) down' EXIT; \
	$(BIN)/molecule test -s default && $(BIN)/molecule test -s lifecycle
# The site scenario `default` alone on a `cinder` lab of LAB_RELEASE, every node on that release.
site-scenario: venv host-packages
	export LAB_DIR=$(CURDIR)/.build/lab-cinder-$(LAB_RELEASE) LAB_RELEASE=$(LAB_RELEASE); \
	trap '$(LABCTL) down' EXIT; \
	$(BIN)/molecule test -s default

# The fresh-lab check of `make system` alone, on a lab of its own (of LAB_RELEASE).
check-fresh: venv host-packages
	export LAB_DIR=$(CURDIR)/.build/lab-check LAB_RELEASE=$(LAB_RELEASE); \
	trap '$(LABCTL) down' EXIT; \
	$(BIN)/pytest -q -s tests/system/test_check_mode_fresh.py

# The lab passes run side by side on the machine's 5 VM slots: the module tests on a `single` VM of
# each release in the background (lines prefixed with [single-RELEASE]), while `system` runs on a
# `cinder` lab of SYSTEM_RELEASE (3 VMs), whose bare VMs get their packages from the roles. Each
# starts as soon as its lab is up. With 5 VMs on 2 cores the whole takes about 51 min here; the site
# scenario on a Debian 12 `cinder` lab after `system` would add about 15 more, so it is not part of
# it (`make site-scenario LAB_RELEASE=bookworm`). The `cinder` side is the longer path and much of
# it waits (reboots, path checkers, lease timeouts), so the `single` sides run at a low CPU priority
# (nice 10, which labctl gives their VMs' scheduling groups too, once they are up): they take the
# CPU the cinder VMs leave, and finish on both cores once `system` is done. Before labctl did so,
# nice counted for nothing against the VMs: the `single` sides ended 10 min before `system`, and the
# cores idled through its last 8 min. The checks that need no VM (lint, sanity, unit, docs-check,
# then the core matrix; -k: each runs even after a failure) run from the start at the lowest
# priority (nice 19, lines prefixed with [checks]); that orders them only within make's own
# scheduling group, which weighs as much as one VM. `make test` waits for them at the end and fails
# if any failed.
NICE_SINGLE := nice -n 10
NICE_CHECKS := nice -n 19
test: venv host-packages
	mkdir -p .build; exec > >(tee .build/make-test.log) 2>&1; \
	trap '$(MAKE) --no-print-directory lab-down' EXIT; \
	( $(NICE_CHECKS) $(MAKE) --no-print-directory -k lint sanity unit docs-check matrix 2>&1 | sed -u 's/^/[checks] /' ) & checks=$$!; \
	singles=; for release in $(LAB_RELEASES); do \
	  ( $(NICE_SINGLE) $(MAKE) --no-print-directory integration LAB_RELEASE=$$release 2>&1 \
	    | sed -u "s/^/[single-$$release] /" ) & singles="$$singles $$!"; \
	done; \
	rc=0; $(MAKE) --no-print-directory system || rc=$$?; \
	for pid in $$singles; do wait $$pid || rc=$$((rc ? rc : 1)); done; \
	started=$$SECONDS; wait $$checks || rc=$$((rc ? rc : 1)); \
	echo "make test: waited $$((SECONDS - started)) s for the checks after the labs"; \
	if [ $$rc -ne 0 ]; then echo "make test: what failed (the whole output is in .build/make-test.log):"; \
	  sleep 1; grep -a -E '(FAILED|ERROR) [^ ]*tests?/|failed:|\*\*\* \[' .build/make-test.log | tail -n 30 || true; fi; \
	exit $$rc

demo: venv host-packages
	@if [ ! -f playbooks/site.yml ]; then \
	  echo "make demo: playbooks/site.yml and the roles it runs do not exist yet."; exit 1; fi
	LAB_DIR=.build/lab-cinder $(LABCTL) up cinder
	LAB_DIR=.build/lab-cinder $(LABCTL) inventory --output inventories/lab/hosts.yml
	$(BIN)/ansible-playbook playbooks/demo.yml

# What site.yml would change on the inventory of ansible.cfg (the lab's; another with
# ANSIBLE_INVENTORY=...), as one report by host at the end: check and diff mode, nothing changes.
plan: venv
	ANSIBLE_CALLBACKS_ENABLED=openblock.storage.plan_report $(BIN)/ansible-playbook playbooks/site.yml --check --diff

# Ours against the peer on the `bench` lab topology: bench/RESULTS.md and bench/scale.png.
bench: venv host-packages
	@if [ ! -f bench/run.py ]; then echo "make bench: no benchmarks exist yet (bench/run.py)."; exit 1; fi
	$(BIN)/pip install -q -r bench/requirements.txt
	# The peer (ansible 12.x with community.general) in a venv of its own, never in .venv.
	test -x .build/bench/peer-venv/bin/pip || $(PYTHON) -m venv .build/bench/peer-venv
	.build/bench/peer-venv/bin/pip install -q -r bench/requirements-peer.txt
	$(BIN)/python bench/run.py

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path .build/dist

lab-down: venv
	-for dir in .build/lab-single* .build/lab-cinder* .build/lab-check; do \
	  if [ -d $$dir ]; then LAB_DIR=$$dir $(LABCTL) down; fi; done

clean: lab-down
	rm -rf .build
