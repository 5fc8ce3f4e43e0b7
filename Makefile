# Vigil — see README.md. Every target runs on a fresh Debian machine as root:
# `make deps` (called by test, demo and bench) installs what they need.

GO       ?= go
BIN      := bin/vigil
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
PKGS     := ./...
FUZZTIME ?= 30s
# socat makes the lab's serial cables; resource-agents and heartbeat
# provide the real OCF agents and resource.d scripts the adapter tests run;
# pacemaker-cli-utils is the reference OCF runner test/ocfdiff compares the
# adapter with (crm_resource --force-*, no cluster needed; it pulls in the
# pacemaker and corosync packages, whose services debs keeps from
# starting, and no test starts them);
# mon provides the monitor and alert scripts the mon tests run unchanged;
# nftables and stress-ng the one-way partitions, packet loss and CPU
# starvation of the chaos schedules
# (this kernel has no tc netem); chromium (headless, over the DevTools
# protocol) is the browser the web view's lab test drives.
# LDIRECTORD_PERL is the Perl that Debian's ldirectord (unpacked under
# bin/samples, see samples) needs: its package's dependencies, less
# ipvsadm (test/ldiff records the calls with a shim instead) and what perl
# itself provides (libdigest-md5-perl, libnet-perl), plus LWP's https
# (only recommended, and service=https needs it).
LDIRECTORD_PERL := liblwp-protocol-https-perl libauthen-radius-perl libcrypt-ssleay-perl libdbi-perl libdigest-hmac-perl libio-socket-inet6-perl \
	libmail-pop3client-perl libmailtools-perl libnet-dns-perl libnet-imap-simple-perl libnet-imap-simple-ssl-perl \
	libnet-ldap-perl libsocket6-perl libwww-perl
# KEEPALIVED_LIBS are the libraries Debian's keepalived (unpacked under
# bin/samples, never installed) needs beyond the base system: test/kdiff
# runs its config test, bench-failover the daemon in the lab.
KEEPALIVED_LIBS := libnl-genl-3-200 libnftnl11
DEB_DEPS := socat iproute2 resource-agents heartbeat pacemaker-cli-utils mon nftables stress-ng chromium $(LDIRECTORD_PERL) $(KEEPALIVED_LIBS)

.PHONY: webview-png samples all build test lint bench bench-failover bench-scale bench-lifetime bench-lvs bench-mon bench-starve chaos fuzz demo deps debs proto clean install uninstall

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vigil

# Debian packages the tests and the demo use. Installed only when missing.
deps:
	@$(MAKE) --no-print-directory debs PKGS_NEEDED="$(DEB_DEPS)"
	@# mon's mail.alert pipes to /usr/lib/sendmail: msmtp provides it (and
	@# the test points it at its own SMTP sink), unless an MTA already does.
	@[ -e /usr/lib/sendmail ] || $(MAKE) --no-print-directory debs PKGS_NEEDED=msmtp-mta
	@[ -d $(SAMPLES)/usr/share/doc/keepalived/samples ] && [ -d $(SAMPLES)/usr/share/doc/ldirectord/examples ] && [ -x $(PROMTOOL) ] || $(MAKE) --no-print-directory samples

# keepalived's and ldirectord's sample configurations, which the
# importers' tests read, and prometheus' promtool, which checks and
# unit-tests packaging/prometheus/vigil-rules.yml: the packages are
# downloaded and unpacked under bin/, never installed (they would start
# daemons; Debian's prometheus starts a server on install).
SAMPLES := bin/samples
SAMPLE_DEBS := keepalived ldirectord prometheus
PROMTOOL := $(SAMPLES)/usr/bin/promtool
samples:
	mkdir -p $(SAMPLES)/debs
	cd $(SAMPLES)/debs && { apt-get download $(SAMPLE_DEBS) >/dev/null 2>&1 || { apt-get update -qq && apt-get download $(SAMPLE_DEBS); }; }
	for d in $(SAMPLES)/debs/*.deb; do dpkg-deb -x $$d $(SAMPLES); done

# The packages are references the tests run inside the lab's namespaces,
# never host services: a policy-rc.d (unless the host has one) keeps their
# install from starting them, and the units of every package installed
# here are disabled afterwards, so a reboot does not start them either.
debs:
	@missing=""; for p in $(PKGS_NEEDED); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		before=$$(mktemp); dpkg-query -W -f='$${Package}\n' | sort > $$before; \
		policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy=1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; rc=$$?; \
		[ -z "$$policy" ] || rm -f /usr/sbin/policy-rc.d; \
		for p in $$(dpkg-query -W -f='$${Package}\n' | sort | comm -13 $$before -); do \
			for u in $$(dpkg -L $$p 2>/dev/null | grep -E '^/(usr/)?lib/systemd/system/[^/]+\.service$$' | xargs -r -n1 basename); do \
				systemctl disable --quiet $$u >/dev/null 2>&1 || true; \
			done; \
		done; rm -f $$before; exit $$rc; \
	fi

# Regenerate the plugin protocol's Go code (committed) from plugins/pb/*.proto
# with Debian's protoc and the generators pinned as tools in go.mod.
proto:
	@$(MAKE) --no-print-directory debs PKGS_NEEDED=protobuf-compiler
	$(GO) build -o bin/protoc-gen/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	PATH="$(CURDIR)/bin/protoc-gen:$$PATH" protoc -I plugins/pb \
		--go_out=plugins/pb --go_opt=paths=source_relative \
		--go-grpc_out=plugins/pb --go-grpc_opt=paths=source_relative \
		plugins/pb/plugin.proto

# Unit, fuzz-seed, race and network-namespace lab tests. The lab tests need
# root; CI runs as root so they always run there.
test: deps lint
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

# The web view's screenshot in the README, taken by its lab test in
# headless chromium after a failover.
webview-png: deps
	VIGIL_WEBVIEW_PNG=$(CURDIR)/docs/webview.png $(GO) test -count=1 -run '^TestWebView$$' ./test/lab/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Benchmarks: codec micro-benchmarks, detection latency after kill -9
# (median/p99 over 20 kills) and one daemon's idle CPU/RSS with 3 peers at
# keepalive 10ms over a 30 s window.
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./cluster/... ./plugins/...
	$(GO) test -run '^$$' -bench Detection -benchtime 20x ./test/lab/
	$(GO) test -run '^$$' -bench Idle -benchtime 1x ./test/lab/
	$(GO) test -run '^$$' -bench Failover -benchtime 20x ./test/lab/

# Heartbeats that a flood or a loaded host cannot starve: a pair with a
# witness at 100ms/350ms (the default deadtime) under 10 s of a 350k
# packets/s garbage flood on the owner's heartbeat port, then 10 s of
# stress-ng on both cores; lease losses and false failovers must be zero
# (VIGIL_RT_PRIORITY=50 runs the heartbeat threads under SCHED_FIFO).
bench-starve: deps
	@$(MAKE) --no-print-directory debs PKGS_NEEDED=stress-ng
	$(GO) test -run '^$$' -bench HeartbeatStarvation -benchtime 1x -timeout 10m ./test/lab/

# Issue #20's randomized fault campaign: VIGIL_CHAOS_N schedules (seeds
# from VIGIL_CHAOS_BASE, default random) of crashes, kill -9 of a daemon,
# a plugin or (VIPs with a lifetime) every Vigil process of a node,
# pauses past the lease, partitions both ways and one way, link flaps,
# packet loss, stress-ng and full restarts after operator commands, on a
# pair with a witness or a two_node pair at 100ms/500ms
# (VIGIL_CHAOS_TIMING). Fails on two reachable holders of a VIP, a group
# down past the bound while a quorum and an eligible node exist, or an
# acknowledged command lost; prints a summary. A failing schedule prints
# its seed: VIGIL_CHAOS_SEED=S replays it. `make test` plays 5 fixed seeds.
VIGIL_CHAOS_N ?= 100
chaos: deps
	@$(MAKE) --no-print-directory debs PKGS_NEEDED=stress-ng
	@mkdir -p bin; VIGIL_CHAOS_N=$(VIGIL_CHAOS_N) $(GO) test -v -count=1 -run '^TestChaos$$' -timeout 0 ./test/lab/ 2>&1 | \
		tee bin/chaos.txt | grep -v '^        time='; \
	grep -q '^ok' bin/chaos.txt

# VIP outage seen by a client probing VIP:80 every 10 ms (50 ms timeout)
# for a crash, a graceful stop, a planned move and a failback, at
# keepalive 10ms and 100ms with the default deadtime (3.5 beats, VRRP's
# master-down), 10 runs each (PROBE=2ms/10ms for a finer probe); then the same lab and probe with
# Debian's keepalived (VRRPv3, unpacked under bin/samples, run only in the
# lab's namespaces) at the same advert interval, and both side by side.
bench-failover: deps
	@$(MAKE) --no-print-directory debs PKGS_NEEDED="$(KEEPALIVED_LIBS)"
	@mkdir -p bin; rc=0; VIGIL_PROBE=$(PROBE) $(GO) test -run '^$$' -bench 'VIPFailover|KeepalivedFailover' -benchtime 10x -timeout 60m ./test/lab/ > bin/bench-failover.txt || rc=$$?; \
	cat bin/bench-failover.txt; awk -f test/lab/failover-ratio.awk bin/bench-failover.txt; exit $$rc

# Issue #19's scale benchmark: directors n1 and n2 and a witness, N groups
# of one IPaddr VIP each on n1 (VIGIL_SCALE_N, default 1,10,100,1000) at
# keepalive/deadtime 100ms/500ms and 10ms/50ms (VIGIL_SCALE_TIMING);
# idle CPU-s per 30 s and RSS of each node (daemon + plugins,
# VIGIL_SCALE_IDLE=30s), `vigil status` latency, then VIGIL_SCALE_TRIALS=5
# power losses of the owner: kill to first and last VIP up on the survivor,
# groups left behind after VIGIL_SCALE_WAIT=10s, dual holders. Prints one
# table. LOAD=1 runs it with both cores loaded (stress-ng --cpu 2);
# VIGIL_RT_PRIORITY=50 runs the heartbeat threads under SCHED_FIFO.
bench-scale: deps
	$(call loaded,$(GO) test -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 0 ./test/lab/)

# $(call loaded,COMMAND) runs COMMAND, with stress-ng loading both cores
# for as long as it runs when LOAD is set.
define loaded
	@if [ -n "$(LOAD)" ]; then $(MAKE) --no-print-directory debs PKGS_NEEDED=stress-ng; fi
	@set -e; pid=""; if [ -n "$(LOAD)" ]; then stress-ng --cpu 2 --quiet & pid=$$!; fi; \
	trap '[ -z "$$pid" ] || kill $$pid' EXIT; \
	$(1)
endef

# How late past its lifetime the kernel removes an address nobody extends
# (the slack behind ha.toml's address_lifetime, plugins.AddressLifetimeSlack):
# 10 rounds of 50 addresses with a 1 s lifetime. LOAD=1 loads both cores.
bench-lifetime: deps
	$(call loaded,$(GO) test -run '^$$' -bench '^BenchmarkAddressLifetime$$' -benchtime 10x ./resources/ipaddr/)

# The IPVS manager: the check engine on one core (connect and HTTP checks
# over 1,000 and 10,000 real servers at 1 s) and one check alone, then,
# inside the kernel-IPVS VM (test/ipvsvm/vm.sh), 10,000 services x 2
# reals applied, reconciled again
# and restored with ipvsadm -R for comparison, and the connection-survival
# table (SURVIVAL_N connections, NAT and DR, crash and planned move, with
# sync, stateless mode and neither); last the userspace director
# against HAProxy in TCP mode (wrk, same web servers, one namespace).
SURVIVAL_N ?= 200
bench-lvs: deps
	@$(MAKE) --no-print-directory debs PKGS_NEEDED="ipvsadm haproxy wrk"
	GOMAXPROCS=1 $$(command -v taskset >/dev/null && echo taskset -c 0) $(GO) test -run '^$$' -bench CheckEngine -benchtime 1x -timeout 20m ./resources/ldirectord/
	GOMAXPROCS=1 $$(command -v taskset >/dev/null && echo taskset -c 0) $(GO) test -run '^$$' -bench Check -benchtime 5000x ./monitors/
	CGO_ENABLED=0 $(GO) test -c -o bin/director.test ./resources/ldirectord/director/
	test/ipvsvm/vm.sh bin/director.test -test.run '^$$' -test.bench KernelReconcile -test.benchtime 3x
	CGO_ENABLED=0 $(GO) test -c -o bin/ldirectord.test ./resources/ldirectord/
	VIGIL_SURVIVAL_N=$(SURVIVAL_N) test/ipvsvm/vm.sh bin/ldirectord.test -test.run '^$$' -test.bench KernelSurvival -test.benchtime 1x
	$(GO) test -run '^$$' -bench Proxy -benchtime 3x -timeout 20m ./resources/ldirectord/director/

# The mon scheduler: CPU for 1,000 hosts at 1 s with the built-in TCP
# monitor, against the same load through Debian's tcp.monitor (what mon
# 1.3.6 does: a Perl process per service run).
bench-mon: deps
	$(GO) test -run '^$$' -bench Scheduler -benchtime 1x -timeout 20m ./resources/mon/

# Each fuzz target for FUZZTIME; new crashers land in testdata/fuzz.
# Minimizing an interesting input is capped (FUZZMINIMIZE), or a target
# spends its time shrinking inputs instead of running them; an input that
# takes longer than FUZZSLOW is a failure (testutil.Quick).
FUZZMINIMIZE ?= 2s
FUZZSLOW     ?= 1s
FUZZ = VIGIL_FUZZ_SLOW=$(FUZZSLOW) $(GO) test -run '^$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE)
fuzz:
	@for t in FuzzParseHA FuzzParseResources FuzzParseLdirectord FuzzParseMon FuzzPositions FuzzAuthkeys; do \
		$(FUZZ) -fuzz "^$$t$$" ./cluster/config/ || exit 1; done
	@for t in FuzzDecode FuzzCOBSDecode; do \
		$(FUZZ) -fuzz "^$$t$$" ./cluster/heartbeat/ || exit 1; done
	$(FUZZ) -fuzz '^FuzzParseOCFMetaData$$' ./resources/script/
	$(FUZZ) -fuzz '^FuzzDuration$$' ./cluster/timing/
	@for t in FuzzParseProcIPVS FuzzParseSyncDaemon; do \
		$(FUZZ) -fuzz "^$$t$$" ./resources/ldirectord/director/ || exit 1; done
	@for t in FuzzParseLine FuzzResourceLine; do \
		$(FUZZ) -fuzz "^$$t$$" ./cmd/vigil/ || exit 1; done
	@for t in FuzzImportHeartbeat FuzzImportLdirectord FuzzImportMon FuzzImportKeepalived; do \
		$(FUZZ) -fuzz "^$$t$$" ./legacy/ || exit 1; done

# The seed setup (heartbeat's `lvs1 IPaddr::VIP ldirectord::www mon`) as
# Vigil, imported with `vigil import`: two directors and a witness, two
# web servers and a client in network namespaces; a real server stopped
# and started, the active director killed while the client asks the VIP,
# its rejoin; then everything is removed (README: "The two commands").
demo: deps build
	$(GO) run ./test/demo -vigil $(BIN)

# Install the binary, the systemd units (daemon and witness), bash
# completion and the man page (both generated by the binary from its
# command table), the examples; /etc/vigil gets the director-pair example
# only where no configuration exists yet, with a fresh random secret.
# DESTDIR=/tmp/root stages it for a package.
PREFIX  ?= /usr
DESTDIR ?=
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/vigil
	install -d -m 0755 $(DESTDIR)$(PREFIX)/lib/vigil/plugins $(DESTDIR)/etc/vigil/alert.d
	install -D -m 0644 packaging/systemd/vigil.service $(DESTDIR)/lib/systemd/system/vigil.service
	install -D -m 0644 packaging/systemd/vigil-witness.service $(DESTDIR)/lib/systemd/system/vigil-witness.service
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/man/man8
	$(BIN) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/vigil
	$(BIN) man | gzip -9n > $(DESTDIR)$(PREFIX)/share/man/man8/vigil.8.gz
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/doc/vigil/examples/director-pair
	install -m 0644 etc/vigil/*.toml $(DESTDIR)$(PREFIX)/share/doc/vigil/examples/director-pair/
	cp -r etc/examples/. $(DESTDIR)$(PREFIX)/share/doc/vigil/examples/
	rm -f $(DESTDIR)$(PREFIX)/share/doc/vigil/examples/*/authkeys
	@if [ ! -e $(DESTDIR)/etc/vigil/ha.toml ]; then \
		install -m 0644 etc/vigil/*.toml $(DESTDIR)/etc/vigil/; \
		(umask 077; printf 'auth 1\n1 sha256 %s\n' "$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > $(DESTDIR)/etc/vigil/authkeys); \
		echo "installed the example director pair in $(DESTDIR)/etc/vigil (edit it; authkeys has a new random secret: copy it to every node)"; \
	else echo "$(DESTDIR)/etc/vigil/ha.toml exists: configuration left as it is"; fi
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/vigil $(DESTDIR)/lib/systemd/system/vigil.service $(DESTDIR)/lib/systemd/system/vigil-witness.service \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/vigil $(DESTDIR)$(PREFIX)/share/man/man8/vigil.8.gz
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/vigil
	@echo "left /etc/vigil and /var/lib/vigil in place"

clean:
	rm -rf bin
