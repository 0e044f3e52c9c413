# Build and install stonewall with the same file layout everywhere:
#   make                  man pages, shell completion and the libvirt hook into build/dist
#   make install DESTDIR=/tmp/root [PYTHON=python3.11]   the whole package (README: files list)
#   make deb              the Debian package (dpkg-buildpackage, debhelper + pybuild), then lintian
#   make rpm              the RPM (rpmbuild -bb dist/stonewall.spec), for Alma/Rocky 9
# debian/rules installs the Python part with pybuild and the rest with `make install-data`,
# so the two layouts cannot drift apart.

PYTHON ?= python3
PREFIX ?= /usr
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/stonewall
SYSCONFDIR ?= /etc
UNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo $(PREFIX)/lib/systemd/system)
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/vendor-completions
HOOKDIR ?= $(DATADIR)/stonewall/libvirt
DEFAULTSDIR ?= $(SYSCONFDIR)/default
# Debian's python3 installs under /usr/local unless told this is a system install.
export DEB_PYTHON_INSTALL_LAYOUT = deb_system

# The programs DRBD, Pacemaker and systemd call by absolute path, and stonewall itself
# (root's tool: it reads the SAN and the holder's root-only socket).
SBIN_PROGRAMS = stonewall fence_stonewall $(DRBD_HANDLERS)
DRBD_HANDLERS = stonewall-drbd-fence-peer stonewall-drbd-unfence-peer stonewall-drbd-split-brain
DOCS = README.md $(wildcard docs/*.md)

OUT = build/dist
# The repository root is the package: a directory holding `stonewall` -> root imports it
# from the source tree, with no install, for the build steps.
PYLIB = build/pylib
RUN_SOURCE = PYTHONPATH=$(CURDIR)/$(PYLIB) $(PYTHON)

# WITH_COMPLETION=no where shtab is not available (python3.11 on EL9).
WITH_COMPLETION ?= yes
COMPLETION_TARGET = $(if $(filter yes,$(WITH_COMPLETION)),completion)

.PHONY: all man completion hook install install-python install-data install-completion relocate-sbin deb rpm clean

all: man $(COMPLETION_TARGET) hook

$(PYLIB)/stonewall:
	mkdir -p $(PYLIB)
	ln -sfn $(CURDIR) $@

man: $(PYLIB)/stonewall
	$(RUN_SOURCE) scripts/build-manpages $(OUT)/man

completion: $(PYLIB)/stonewall
	PYTHONPATH=$(CURDIR)/$(PYLIB) PYTHON=$(PYTHON) scripts/build-completion $(OUT)/completion

# The guard exactly as `stonewall vm hook install` writes it; shipped inactive (a guard that
# refuses starts before the node is configured would stop every guest on the host).
hook: $(PYLIB)/stonewall
	mkdir -p $(OUT)/libvirt
	$(RUN_SOURCE) -c 'import sys; from stonewall.vm.hook_install import GUARD_NAME, guard_script; open(sys.argv[1] + "/" + GUARD_NAME, "w").write(guard_script(["$(SBINDIR)/stonewall", "vm", "hook", "run"], {}))' $(OUT)/libvirt

install: install-python relocate-sbin install-data

install-python:
	rm -rf build/wheel
	$(PYTHON) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir build/wheel .
	# installer where it is packaged (Debian: python3-installer); elsewhere pip installs the
	# same wheel (EL9 has no python3.11-installer).
	if $(PYTHON) -c 'import installer' 2>/dev/null; then \
	    $(PYTHON) -m installer --destdir "$(DESTDIR)" --prefix $(PREFIX) build/wheel/stonewall-*.whl; \
	else \
	    $(PYTHON) -m pip install --quiet --no-deps --no-index --root "$(DESTDIR)" --prefix $(PREFIX) build/wheel/stonewall-*.whl; \
	fi

relocate-sbin:
	install -d "$(DESTDIR)$(SBINDIR)"
	for program in $(SBIN_PROGRAMS); do mv "$(DESTDIR)$(PREFIX)/bin/$$program" "$(DESTDIR)$(SBINDIR)/"; done
	rmdir --ignore-fail-on-non-empty "$(DESTDIR)$(PREFIX)/bin"

install-data: man hook $(COMPLETION_TARGET)
	install -D -m 0644 systemd/stonewall-watchdog.service "$(DESTDIR)$(UNITDIR)/stonewall-watchdog.service"
	install -D -m 0644 systemd/stonewall.tmpfiles "$(DESTDIR)$(TMPFILESDIR)/stonewall.conf"
	install -D -m 0644 dist/stonewall.logrotate "$(DESTDIR)$(SYSCONFDIR)/logrotate.d/stonewall"
	install -D -m 0600 dist/stonewall.default "$(DESTDIR)$(DEFAULTSDIR)/stonewall"
	install -d -m 0755 "$(DESTDIR)$(SYSCONFDIR)/stonewall"
	install -D -m 0644 $(OUT)/man/stonewall.8 "$(DESTDIR)$(MANDIR)/man8/stonewall.8"
	install -D -m 0644 $(OUT)/man/fence_stonewall.8 "$(DESTDIR)$(MANDIR)/man8/fence_stonewall.8"
	install -D -m 0644 $(OUT)/man/stonewall-drbd.8 "$(DESTDIR)$(MANDIR)/man8/stonewall-drbd.8"
	install -D -m 0644 $(OUT)/man/cluster.yaml.5 "$(DESTDIR)$(MANDIR)/man5/cluster.yaml.5"
	for handler in $(DRBD_HANDLERS); do echo ".so man8/stonewall-drbd.8" > "$(DESTDIR)$(MANDIR)/man8/$$handler.8"; done
	install -D -m 0755 $(OUT)/libvirt/50-stonewall-guard "$(DESTDIR)$(HOOKDIR)/50-stonewall-guard"
	install -d "$(DESTDIR)$(DOCDIR)/examples"
	install -m 0644 $(DOCS) "$(DESTDIR)$(DOCDIR)/"
	install -m 0644 examples/*.yaml "$(DESTDIR)$(DOCDIR)/examples/"
	$(if $(COMPLETION_TARGET),$(MAKE) install-completion)

install-completion: completion
	install -D -m 0644 $(OUT)/completion/stonewall.bash "$(DESTDIR)$(BASHCOMPDIR)/stonewall"
	install -D -m 0644 $(OUT)/completion/fence_stonewall.bash "$(DESTDIR)$(BASHCOMPDIR)/fence_stonewall"
	install -D -m 0644 $(OUT)/completion/_stonewall "$(DESTDIR)$(ZSHCOMPDIR)/_stonewall"
	install -D -m 0644 $(OUT)/completion/_fence_stonewall "$(DESTDIR)$(ZSHCOMPDIR)/_fence_stonewall"

deb:
	scripts/build-deb

rpm:
	scripts/build-rpm

clean:
	rm -rf build .pybuild
