# Makefile for ngx_http_fanbase_module (GNU make).
#
#   make deps    install the Debian packages needed (only those missing),
#                fetch the nginx source tarball for the sanitizer build and
#                install the npm package the webhook tests verify with
#   make         build build/ngx_http_fanbase_module.so against nginx-dev
#                (same as "make module"); load it with load_module
#   make asan    build a whole nginx with the module compiled in, under
#                AddressSanitizer and UBSan: build/asan/sbin/nginx
#   make test    deps, module and asan, then the tests (prove) twice: Debian's
#                nginx with the dynamic module, then the sanitizer build;
#                TESTS=t/010-foo.t selects files (default t/); with all of
#                them, REDIS_ENGINE_TESTS a third time on the Redis engine
#   make fuzz    deps-packages, then build the libFuzzer harnesses of t/fuzz/
#                (clang, ASan, UBSan) and run each for FUZZ_TIME seconds
#                (default 60; FUZZ_RUNS=N stops a target after N inputs),
#                merging what they find into t/fuzz/corpus/<target>/;
#                FUZZ_TARGETS="item token" selects targets ("state" is
#                the state file loader, run by fuzz-state)
#   make fuzz-state  FUZZ_TIME=N: fuzz the state file loader for N seconds
#                (libFuzzer, clang; see docs/testing.md), merging what it
#                finds into t/fuzz/corpus/state
#   make fuzz-state-replay  the same harness built with gcc against the
#                sanitizer build, replaying a corpus (t/008)
#   make demo    deps and module, then t/demo.sh against a mock Fanbase
#   make bench   benchmarks (bench/Makefile), when there are any
#   make clean   remove build/, keeping the downloaded source tarballs

SHELL := /bin/bash
.DELETE_ON_ERROR:
.SUFFIXES:
.DEFAULT_GOAL := all

MODULE    := ngx_http_fanbase_module
BUILD     := build
MODULE_SO := $(BUILD)/$(MODULE).so
TESTS     ?= t/

# Debian packages that building, testing and the demo need (EXTRA_PACKAGES:
# more, from a caller such as bench/Makefile).  openssl: the command line
# that t/024 makes its CA and certificates with.  libhiredis-dev: the Redis
# engine's command formatting and reply parsing; redis-server and
# redis-tools (redis-cli): the cluster tests start a Redis of their own
# (t/lib/FanbaseRedis.pm), never the system service.
DEB_PACKAGES := nginx nginx-dev libcurl4-openssl-dev libyajl-dev \
                libpcre2-dev libssl-dev zlib1g-dev gcc make perl \
                libjson-pp-perl libhttp-tiny-perl wrk curl ca-certificates \
                openssl procps strace nodejs npm clang libclang-rt-14-dev \
                python3 python3-prometheus-client libhiredis-dev \
                redis-server redis-tools

# The tests verify the edge's outbound webhooks (fanbase_notify) with the
# standardwebhooks npm package, an implementation independent of ours
# (t/lib/verify_webhook.js), installed in build/node.  1.1.1 runs on
# Debian 12's Node.js 18.
NODE_DIR                  := $(BUILD)/node
STANDARDWEBHOOKS_VERSION  := 1.1.1

# The nginx that Debian ships, and the upstream version it is built from
# ("1:1.22.1-9+deb12u11" -> "1.22.1").  Empty until nginx is installed.
NGX_DEB_VERSION := $(shell dpkg-query -W -f='$${Version}' nginx 2>/dev/null)
NGX_VERSION     := $(shell echo '$(NGX_DEB_VERSION)' | sed -e 's/^[0-9]*://' -e 's/-[^-]*$$//')
ORIG_TARBALL    := $(BUILD)/nginx_$(NGX_VERSION).orig.tar.gz
DEB_SRC_FILE    := /etc/apt/sources.list.d/fanbase-deb-src.sources

NGX_DEV_SRC := /usr/share/nginx/src
SRC_FILES   := $(wildcard src/*)

# Our sources must compile without warnings in both builds.  These are
# appended to CFLAGS in the generated objs/Makefile rather than given to
# configure: configure compiles its feature tests with --with-cc-opt, and
# with -Werror there some tests fail (pwrite(), strerrordesc_np() are then
# "not found") and nginx would be built unlike Debian's.  nginx's own CFLAGS
# already carry -W -Wall -Werror.
WARN_FLAGS := -Wall -Wextra -Werror

# The dynamic module: Debian's compiler and linker flags.
DEV_DIR     := $(BUILD)/nginx-dev
DEV_STAMP   := $(DEV_DIR)/.configured
DEV_CC_OPT  := -g -O2 -fstack-protector-strong -Wformat \
               -Werror=format-security -fPIC -Wdate-time -D_FORTIFY_SOURCE=2
DEV_LD_OPT  := -Wl,-z,relro -Wl,-z,now -fPIC
DEV_ARGS    := --add-dynamic-module=$(CURDIR) \
               --with-cc-opt="$(DEV_CC_OPT)" --with-ld-opt="$(DEV_LD_OPT)"

# The sanitizer build: a whole nginx with the module compiled in.
ASAN_SRC    := $(BUILD)/asan-src
ASAN_STAMP  := $(ASAN_SRC)/.configured
ASAN_PREFIX := $(CURDIR)/$(BUILD)/asan
ASAN_NGINX  := $(BUILD)/asan/sbin/nginx
UBSAN_SUPP  := $(BUILD)/asan/ubsan.supp
# The storage interface's embedded engine answers every operation one turn
# of the event loop later in this build (as a remote engine would), so the
# suite runs every caller's NGX_AGAIN path (src/ngx_http_fanbase_store.c).
ASAN_CC_OPT := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
               -DNGX_HTTP_FANBASE_STORE_DEFER=1
ASAN_LD_OPT := -fsanitize=address,undefined
# the nginx of both sanitizer trees (this one and the fuzzing one below)
NGX_STATIC_ARGS := --with-debug --with-threads --with-http_ssl_module \
               --with-http_realip_module --with-http_auth_request_module \
               --with-http_v2_module --with-http_stub_status_module \
               --with-pcre-jit --with-compat
ASAN_ARGS   := $(NGX_STATIC_ARGS) --prefix=$(ASAN_PREFIX) \
               --add-module=$(CURDIR) \
               --with-cc-opt="$(ASAN_CC_OPT)" --with-ld-opt="$(ASAN_LD_OPT)"

# The fuzz harnesses: t/fuzz/targets lists each target with the sources and
# libraries it needs and its dictionary, if any (one line each;
# t/007_fuzz_corpus.t reads it too).
# libclang-rt-14-dev brings libFuzzer (libclang_rt.fuzzer), which Debian's
# clang only recommends.
FUZZ_DIR     := t/fuzz
FUZZ_LIST    := $(FUZZ_DIR)/targets
FUZZ_ALL     := $(shell sed -e 's/\#.*//' $(FUZZ_LIST) | awk 'NF { print $$1 }')
# "state", the state file loader, is built against nginx (fuzz-state)
FUZZ_TARGETS ?= $(FUZZ_ALL) state
FUZZ_TIME    ?= 60
FUZZ_RUNS    ?=
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror \
                -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all -Isrc
# a target's sources and libraries, from its line in FUZZ_LIST
fuzz_deps     = $(shell sed -e 's/\#.*//' $(FUZZ_LIST) \
                        | awk '$$1 == "$(1)" { $$1 = ""; print }')
# The fuzzing build: the same nginx built by clang with libFuzzer's
# coverage instrumentation, whose objects the libFuzzer harnesses link
# (nginx's main() renamed, t/fuzz/link-nginx.sh).  Never installed.
FUZZ_SRC    := $(BUILD)/fuzz-src
FUZZ_STAMP  := $(FUZZ_SRC)/.configured
FUZZ_NGINX  := $(FUZZ_SRC)/objs/nginx
FUZZ_CC_OPT := -g -O1 -fno-omit-frame-pointer \
               -fsanitize=fuzzer-no-link,address,undefined
FUZZ_LD_OPT := -fsanitize=address,undefined
# clang, unlike gcc, lets the -Wextra after nginx's -Wno-unused-parameter
# turn it back on, and nginx has unused parameters everywhere
FUZZ_WARN_FLAGS := $(WARN_FLAGS) -Wno-unused-parameter
FUZZ_ARGS   := $(NGX_STATIC_ARGS) --with-cc=clang \
               --prefix=$(CURDIR)/$(BUILD)/fuzz \
               --add-module=$(CURDIR) \
               --with-cc-opt="$(FUZZ_CC_OPT)" --with-ld-opt="$(FUZZ_LD_OPT)"

# The state file loader's harness (t/fuzz/state_fuzz.c): the libFuzzer
# build, and the replay build (gcc, the sanitizer tree's objects and a
# main() that feeds it every file of the corpus) that t/008 runs.
# FUZZ_TIME (above): seconds "make fuzz-state" fuzzes for.
# STATE_MAX_LEN: the largest input it makes; each costs time in proportion
# to its size, and 12 KB of records already fill the harness's zone.
# FUZZ_FLAGS: more libFuzzer options (-use_value_profile=1, -seed=N, ...).
FUZZ_FLAGS        ?=
STATE_MAX_LEN     ?= 12288
STATE_FUZZ        := $(BUILD)/fuzz/state_fuzz
STATE_REPLAY      := $(BUILD)/fuzz-replay/state_fuzz
STATE_CORPUS      := t/fuzz/corpus/state
STATE_FUZZ_SRC    := t/fuzz/state_fuzz.c
FUZZ_HARNESS_DEPS := t/fuzz/link-nginx.sh $(SRC_FILES)

# Run nginx's own make in parallel unless we were given -j already.
NPROC     := $(shell nproc 2>/dev/null || echo 2)
SUBMAKE_J  = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC))

# A configured tree is redone when `config` changes, or when the arguments
# it was configured with (kept in its stamp, with the version of Debian's
# nginx for the nginx-dev tree) are not today's.
DEV_STAMP_WANT  := $(strip $(DEV_ARGS) CFLAGS+=$(WARN_FLAGS) nginx=$(NGX_DEB_VERSION))
ASAN_STAMP_WANT := $(strip $(ASAN_ARGS) CFLAGS+=$(WARN_FLAGS) $(ORIG_TARBALL))
FUZZ_STAMP_WANT := $(strip $(FUZZ_ARGS) CFLAGS+=$(FUZZ_WARN_FLAGS) \
                     $(ORIG_TARBALL))
ifneq ($(file <$(DEV_STAMP)),$(DEV_STAMP_WANT))
$(DEV_STAMP): FORCE
endif
ifneq ($(file <$(ASAN_STAMP)),$(ASAN_STAMP_WANT))
$(ASAN_STAMP): FORCE
endif
ifneq ($(file <$(FUZZ_STAMP)),$(FUZZ_STAMP_WANT))
$(FUZZ_STAMP): FORCE
endif

# Run configure quietly (arguments in the shell's "$@"); show the end of its
# output when it fails.
run_configure = { ./configure "$$@" > configure.log 2>&1; } \
	|| { tail -n 30 configure.log; \
	     echo "configure failed in $$PWD (see configure.log)" >&2; exit 1; }

# after configure: append our warning flags (or $(2)) to nginx's CFLAGS
add_warn_flags = sed -i -e '/^CFLAGS =/s/$$/ $(or $(2),$(WARN_FLAGS))/' \
	    $(1)/objs/Makefile \
	&& grep -q -e '^CFLAGS =.* $(or $(2),$(WARN_FLAGS))$$' $(1)/objs/Makefile

# nginx's objs/Makefile knows only the headers listed in `config`
# (ngx_module_deps): when anything in src/ other than a .c file changed,
# drop the module's objects so that all of them are rebuilt.
drop_stale_objects = if printf '%s\n' $? | grep -q -v -e '\.c$$'; then \
	rm -f $(1)/objs/addon/src/*.o; fi

.PHONY: all module asan deps deps-packages deps-source deps-node test demo \
        fuzz fuzz-build fuzz-state fuzz-state-replay bench deb clean FORCE \
        scripts

# "make" only builds; "make deps" installs what is missing (apt-get, npm),
# and "make test", "make demo", "make fuzz" and "make bench" call it first
all: module

module: $(MODULE_SO)

asan: $(ASAN_NGINX) $(UBSAN_SUPP)


# --- dependencies ---------------------------------------------------------

deps: deps-packages
	@$(MAKE) --no-print-directory deps-source deps-node

# npm: Node.js from elsewhere (NodeSource's nodejs) brings its own npm,
# which Debian's npm package would fight with; it is needed only when
# there is no npm command.
deps-packages:
	@missing=; \
	for p in $(DEB_PACKAGES) $(EXTRA_PACKAGES); do \
	    if [ "$$p" = npm ] && command -v npm > /dev/null; then continue; fi; \
	    s=$$(dpkg-query -W -f='$${db:Status-Status}' "$$p" 2>/dev/null); \
	    [ "$$s" = installed ] || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then \
	    echo "deps: all Debian packages present"; \
	else \
	    echo "deps: installing$$missing"; \
	    apt-get update \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y \
	        --no-install-recommends $$missing; \
	fi

deps-source: $(ORIG_TARBALL)

# standardwebhooks, from the npm registry, when it is not there yet
deps-node:
	@if [ -d $(NODE_DIR)/node_modules/standardwebhooks ]; then \
	    echo "deps: standardwebhooks present in $(NODE_DIR)"; \
	else \
	    echo "deps: installing standardwebhooks@$(STANDARDWEBHOOKS_VERSION)" \
	         "in $(NODE_DIR)"; \
	    mkdir -p $(NODE_DIR) \
	    && npm install --no-audit --no-fund --prefix $(NODE_DIR) \
	        standardwebhooks@$(STANDARDWEBHOOKS_VERSION) \
	    && test -d $(NODE_DIR)/node_modules/standardwebhooks; \
	fi

# The upstream tarball of Debian's nginx, from Debian's source archive.
# apt-get source fails on the .dsc and .debian.tar.xz (404 from the security
# archive) but does download the .orig.tar.gz, which is all we need: its
# presence and integrity are what count.
$(ORIG_TARBALL):
	@set -e; \
	if [ -z "$(NGX_VERSION)" ]; then \
	    echo "nginx is not installed: run 'make deps'" >&2; exit 1; \
	fi; \
	mkdir -p $(BUILD); \
	if ! grep -rqsE --include='*.list' --include='*.sources' \
	        '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' \
	        /etc/apt/sources.list /etc/apt/sources.list.d/; then \
	    echo "deps: adding Debian source archives in $(DEB_SRC_FILE)"; \
	    printf '%s\n' \
	        'Types: deb-src' \
	        'URIs: http://deb.debian.org/debian' \
	        'Suites: bookworm bookworm-updates' \
	        'Components: main' \
	        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
	        '' \
	        'Types: deb-src' \
	        'URIs: http://deb.debian.org/debian-security' \
	        'Suites: bookworm-security' \
	        'Components: main' \
	        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
	        > $(DEB_SRC_FILE); \
	fi; \
	apt-get update; \
	echo "deps: fetching the nginx $(NGX_VERSION) source tarball"; \
	(cd $(BUILD) && apt-get source --download-only nginx) || true; \
	if [ ! -f $@ ]; then \
	    echo "deps: $@ was not downloaded" >&2; exit 1; \
	fi; \
	if ! list=$$(tar tzf $@) \
	        || ! grep -qx 'nginx-$(NGX_VERSION)/configure' <<< "$$list"; then \
	    echo "deps: $@ is not a valid nginx $(NGX_VERSION) tarball" >&2; \
	    rm -f $@; exit 1; \
	fi; \
	rm -f $(BUILD)/nginx_*.dsc $(BUILD)/nginx_*.debian.tar.*; \
	echo "deps: $@ OK"


# --- the Redis engine's Lua scripts ----------------------------------------

# src/ngx_http_fanbase_redis_scripts.h is checked in, so that building
# needs no Perl step; after an edit of src/lua/*.lua, "make scripts"
# writes it again (t/121_redis_scripts.t fails while it is out of date).
scripts:
	perl src/lua/embed.pl


# --- the dynamic module, against Debian's nginx-dev -----------------------

$(DEV_STAMP): config
	@if [ ! -f $(NGX_DEV_SRC)/conf_flags ]; then \
	    echo "nginx-dev is not installed: run 'make deps'" >&2; exit 1; \
	fi
	rm -rf $(DEV_DIR)
	mkdir -p $(BUILD)
	cp -a $(NGX_DEV_SRC) $(DEV_DIR)
	cd $(DEV_DIR) && source ./conf_flags \
	    && set -- "$${NGX_CONF_FLAGS[@]}" $(DEV_ARGS) && $(run_configure)
	$(call add_warn_flags,$(DEV_DIR))
	@printf '%s\n' '$(DEV_STAMP_WANT)' > $@

$(MODULE_SO): $(DEV_STAMP) $(SRC_FILES)
	@$(call drop_stale_objects,$(DEV_DIR))
	$(MAKE) -C $(DEV_DIR) -f objs/Makefile $(SUBMAKE_J) modules
	@# a new inode: a running nginx keeps the file it mapped
	cp $(DEV_DIR)/objs/$(MODULE).so $@.tmp && mv -f $@.tmp $@


# --- the sanitizer build --------------------------------------------------

$(ASAN_STAMP): config $(ORIG_TARBALL)
	rm -rf $(ASAN_SRC)
	mkdir -p $(ASAN_SRC)
	tar xzf $(ORIG_TARBALL) -C $(ASAN_SRC) --strip-components=1
	cd $(ASAN_SRC) && set -- $(ASAN_ARGS) && $(run_configure)
	$(call add_warn_flags,$(ASAN_SRC))
	@printf '%s\n' '$(ASAN_STAMP_WANT)' > $@

$(ASAN_NGINX): $(ASAN_STAMP) $(SRC_FILES)
	@$(call drop_stale_objects,$(ASAN_SRC))
	$(MAKE) -C $(ASAN_SRC) -f objs/Makefile $(SUBMAKE_J)
	$(MAKE) -C $(ASAN_SRC) -f objs/Makefile install > /dev/null
	rm -f $(BUILD)/asan/sbin/nginx.old
	touch $@

# --- fuzzing ---------------------------------------------------------------

$(FUZZ_STAMP): config $(ORIG_TARBALL)
	rm -rf $(FUZZ_SRC)
	mkdir -p $(FUZZ_SRC)
	tar xzf $(ORIG_TARBALL) -C $(FUZZ_SRC) --strip-components=1
	cd $(FUZZ_SRC) && set -- $(FUZZ_ARGS) && $(run_configure)
	$(call add_warn_flags,$(FUZZ_SRC),$(FUZZ_WARN_FLAGS))
	@printf '%s\n' '$(FUZZ_STAMP_WANT)' > $@

$(FUZZ_NGINX): $(FUZZ_STAMP) $(SRC_FILES)
	@$(call drop_stale_objects,$(FUZZ_SRC))
	$(MAKE) -C $(FUZZ_SRC) -f objs/Makefile $(SUBMAKE_J)
	touch $@

$(STATE_FUZZ): $(FUZZ_NGINX) $(STATE_FUZZ_SRC) $(FUZZ_HARNESS_DEPS)
	t/fuzz/link-nginx.sh $(FUZZ_SRC) $@ clang $(FUZZ_CC_OPT) \
	    -fsanitize=fuzzer $(STATE_FUZZ_SRC)

$(STATE_REPLAY): $(ASAN_NGINX) $(STATE_FUZZ_SRC) t/fuzz/standalone_main.c \
                 $(FUZZ_HARNESS_DEPS)
	t/fuzz/link-nginx.sh $(ASAN_SRC) $@ gcc $(ASAN_CC_OPT) \
	    $(STATE_FUZZ_SRC) t/fuzz/standalone_main.c

fuzz-state-replay: $(STATE_REPLAY)

# Fuzzes the state file loader for FUZZ_TIME seconds, niced (the machine is
# shared), from the corpus; what it finds that covers more is merged into
# the corpus, a crash is left in build/fuzz/state-crash-*.  UBSan's checks
# are recoverable in these builds (see UBSAN_SUPP): halt_on_error makes
# every report a crash.  ASan's quarantine of freed memory is cut to 16 MB
# (from 256), still far more than one input frees: with the default, most
# of the time went to page faults on memory never reused.
FUZZ_ENV := ASAN_OPTIONS=$${ASAN_OPTIONS-quarantine_size_mb=16} \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

fuzz-state: $(STATE_FUZZ)
	@mkdir -p $(BUILD)/fuzz/state-new
	$(FUZZ_ENV) nice -n 10 $(STATE_FUZZ) -max_total_time=$(FUZZ_TIME) \
	    -dict=t/fuzz/state.dict -max_len=$(STATE_MAX_LEN) -timeout=10 \
	    -print_final_stats=1 $(FUZZ_FLAGS) \
	    -artifact_prefix=$(BUILD)/fuzz/state- \
	    $(BUILD)/fuzz/state-new $(STATE_CORPUS)
	$(FUZZ_ENV) nice -n 10 $(STATE_FUZZ) -merge=1 $(STATE_CORPUS) \
	    $(BUILD)/fuzz/state-new
	rm -rf $(BUILD)/fuzz/state-new


# UBSan reports that come from nginx itself, not from us.  "make test" puts
# it in UBSAN_OPTIONS (unless that is set already) and names it in
# TEST_NGINX_UBSAN_SUPPRESSIONS for a test library that sets UBSAN_OPTIONS
# itself.  Suppressions need recoverable checks: that is why ASAN_CC_OPT has
# no -fno-sanitize-recover=undefined, with which nginx 1.22.1 dies at every
# start on the first report below.
$(UBSAN_SUPP): Makefile
	@mkdir -p $(@D)
	@printf '%s\n' \
	    '# ngx_init_cycle() copies the empty -g parameter: memcpy(p, NULL, 0)' \
	    'nonnull-attribute:ngx_pstrdup' \
	    '# the debug log prints empty strings: memcpy(buf, NULL, 0)' \
	    'nonnull-attribute:ngx_sprintf_str' \
	    '# MD5 reads words in place where the CPU allows unaligned loads' \
	    'alignment:ngx_md5_body' \
	    > $@


# --- tests, demo, benchmarks ----------------------------------------------

# Both runs always happen; the target fails if either failed.
# The tests of the embedded engine whose every check holds on the Redis
# engine too (the others read the zone's own records, its state file or
# its journal): run a third time with TEST_FANBASE_ENGINE=redis, each
# nginx on a Redis of its own (docs/testing.md)
REDIS_ENGINE_TESTS := t/030_token.t t/035_token_race.t t/075_transaction.t \
                      t/084_token_wait.t t/095_notify.t t/098_variables.t

test: deps
	@$(MAKE) --no-print-directory module asan deb
	@ulimit -n 65536 2>/dev/null || ulimit -n "$$(ulimit -Hn)" 2>/dev/null \
	    || true; \
	rc=0; \
	echo; \
	echo "=================================================================="; \
	echo " tests: Debian's /usr/sbin/nginx + $(MODULE_SO)"; \
	echo " (open files limit: $$(ulimit -n))"; \
	echo "=================================================================="; \
	TEST_NGINX_BINARY=/usr/sbin/nginx \
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE_SO) \
	    prove -r $(TESTS) || rc=1; \
	echo; \
	echo "=================================================================="; \
	echo " tests: $(ASAN_NGINX) (module built in; AddressSanitizer + UBSan)"; \
	echo "=================================================================="; \
	env -u TEST_NGINX_MODULE \
	    UBSAN_OPTIONS="$${UBSAN_OPTIONS-print_stacktrace=1:suppressions=$(CURDIR)/$(UBSAN_SUPP)}" \
	    TEST_NGINX_UBSAN_SUPPRESSIONS=$(CURDIR)/$(UBSAN_SUPP) \
	    TEST_NGINX_BINARY=$(CURDIR)/$(ASAN_NGINX) TEST_NGINX_SANITIZER=1 \
	    prove -r $(TESTS) || rc=1; \
	if [ "$(TESTS)" = t/ ]; then \
	echo; \
	echo "=================================================================="; \
	echo " tests of the embedded engine on the Redis engine"; \
	echo " (TEST_FANBASE_ENGINE=redis, Debian's nginx + $(MODULE_SO))"; \
	echo "=================================================================="; \
	TEST_FANBASE_ENGINE=redis TEST_NGINX_BINARY=/usr/sbin/nginx \
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE_SO) \
	    prove $(REDIS_ENGINE_TESTS) || rc=1; \
	fi; \
	if [ $$rc -ne 0 ]; then echo; echo "make test: FAILED" >&2; fi; \
	exit $$rc

# Fuzzing, one target after another.  libFuzzer writes what it finds to a
# scratch directory (the in-tree corpus is read too); -merge=1 then adds
# to t/fuzz/corpus/<target>/ only the inputs that reach new code, for a
# commit.  A crash is written to t/fuzz/crashes/<target>-crash-<sha1>; the
# other targets still run, and the target fails at the end.  The whole
# output of each run is in build/fuzz/<target>.log.
fuzz: deps-packages
	@$(MAKE) --no-print-directory fuzz-build
	@rc=0; \
	for t in $(FUZZ_TARGETS); do \
	    [ $$t = state ] && continue; \
	    echo "fuzz: $$t for $(FUZZ_TIME)s$(if $(FUZZ_RUNS), or $(FUZZ_RUNS) runs)"; \
	    new=$(FUZZ_BUILD)/new/$$t; log=$(FUZZ_BUILD)/$$t.log; \
	    rm -rf $$new; mkdir -p $$new $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crashes; \
	    dict=$$(sed -e 's/#.*//' $(FUZZ_LIST) | awk -v t=$$t \
	        '$$1 == t { for (i = 2; i <= NF; i++) \
	                       if ($$i ~ /\.dict$$/) print "-dict=$(FUZZ_DIR)/" $$i }'); \
	    if ./$(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_TIME) \
	           $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS)) $$dict \
	           -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crashes/$$t- \
	           $$new $(FUZZ_DIR)/corpus/$$t > $$log 2>&1; \
	    then \
	        grep -h -e '^Done [0-9]* runs' -e '^stat::number_of_executed_units' \
	            -e '^stat::peak_rss_mb' $$log; \
	    else \
	        rc=1; tail -n 40 $$log; echo "fuzz: $$t FAILED (see $$log)"; \
	    fi; \
	    ./$(FUZZ_BUILD)/$$t -merge=1 $(FUZZ_DIR)/corpus/$$t $$new \
	        > $(FUZZ_BUILD)/$$t.merge.log 2>&1 \
	        || { rc=1; echo "fuzz: merging $$t failed:" \
	                      "see $(FUZZ_BUILD)/$$t.merge.log"; }; \
	    grep -h '^MERGE-OUTER: [0-9]* new files' \
	        $(FUZZ_BUILD)/$$t.merge.log || true; \
	done; \
	case " $(FUZZ_TARGETS) " in *" state "*) \
	    echo "fuzz: state for $(FUZZ_TIME)s"; \
	    $(MAKE) --no-print-directory fuzz-state || rc=1;; \
	esac; \
	exit $$rc

fuzz-build: $(addprefix $(FUZZ_BUILD)/,$(FUZZ_ALL))

$(FUZZ_BUILD)/%: $(FUZZ_DIR)/%_fuzz.c $(FUZZ_DIR)/fuzz.h $(FUZZ_LIST) \
                 $(SRC_FILES)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $< $(filter-out %.dict,$(call fuzz_deps,$*)) \
	    -o $@

demo: deps
	@$(MAKE) --no-print-directory module
	bash t/demo.sh

bench:
	$(MAKE) -C bench

# --- the Debian package ---------------------------------------------------

# build/libnginx-mod-http-fanbase_VERSION_ARCH.deb, laid out as Debian's own
# libnginx-mod-* packages: the module in /usr/lib/nginx/modules, its
# load_module line in /usr/share/nginx/modules-available, enabled by a link
# in /etc/nginx/modules-enabled that postinst makes and postrm takes away.
# It depends on the nginx ABI that the nginx it was built against provides
# (nginx-abi-1.22.1-7 for Debian 12's), so that apt refuses it beside
# another nginx.  "apt install ./build/libnginx-mod-http-fanbase_*.deb";
# t/110_deb.t installs it into this machine's nginx and removes it.
DEB_VERSION = $(shell sed -n 's/^\#define NGX_HTTP_FANBASE_VERSION *"\(.*\)"/\1/p' \
                  src/ngx_http_fanbase_conf.h)
DEB_ARCH    = $(shell dpkg --print-architecture)
DEB_ABI     = $(shell dpkg-query -W -f='$${Provides}' nginx 2>/dev/null \
                  | tr ',' '\n' | sed -n 's/^ *\(nginx-abi-[^ ]*\).*/\1/p')
DEB_FILE    = $(BUILD)/libnginx-mod-http-fanbase_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_ROOT    = $(BUILD)/deb

deb: $(MODULE_SO)
	@[ -n "$(DEB_ABI)" ] || { echo "deb: no nginx-abi in nginx's Provides" \
	    "(is Debian's nginx installed? make deps)" >&2; exit 1; }
	rm -rf $(DEB_ROOT)
	install -d $(DEB_ROOT)/DEBIAN $(DEB_ROOT)/usr/lib/nginx/modules \
	    $(DEB_ROOT)/usr/share/nginx/modules-available \
	    $(DEB_ROOT)/usr/share/doc/libnginx-mod-http-fanbase
	install -m 644 $(MODULE_SO) $(DEB_ROOT)/usr/lib/nginx/modules/
	printf '%s\n' 'load_module modules/ngx_http_fanbase_module.so;' \
	    > $(DEB_ROOT)/usr/share/nginx/modules-available/mod-http-fanbase.conf
	install -m 644 LICENSE \
	    $(DEB_ROOT)/usr/share/doc/libnginx-mod-http-fanbase/copyright
	printf '%s\n' \
	    'Package: libnginx-mod-http-fanbase' \
	    'Version: $(DEB_VERSION)' \
	    'Architecture: $(DEB_ARCH)' \
	    'Maintainer: The ngx_http_fanbase_module authors <root@localhost>' \
	    'Section: httpd' \
	    'Priority: optional' \
	    'Depends: $(DEB_ABI), libc6, libcurl4 (>= 7.80), libyajl2' \
	    'Description: Fanbase edge gateway module for nginx' \
	    ' Holds the Fanbase credentials and tokens at the edge, proxies and' \
	    ' queues ticket submissions, tracks them in shared memory and' \
	    ' terminates and sends signed status webhooks.' \
	    > $(DEB_ROOT)/DEBIAN/control
	printf '%s\n' '#!/bin/sh' 'set -e' \
	    'if [ "$$1" = configure ] && [ -d /etc/nginx/modules-enabled ]; then' \
	    '    ln -sf /usr/share/nginx/modules-available/mod-http-fanbase.conf \' \
	    '        /etc/nginx/modules-enabled/50-mod-http-fanbase.conf' \
	    'fi' 'exit 0' > $(DEB_ROOT)/DEBIAN/postinst
	printf '%s\n' '#!/bin/sh' 'set -e' \
	    'if [ "$$1" = remove ] || [ "$$1" = purge ]; then' \
	    '    rm -f /etc/nginx/modules-enabled/50-mod-http-fanbase.conf' \
	    'fi' 'exit 0' > $(DEB_ROOT)/DEBIAN/postrm
	chmod 755 $(DEB_ROOT)/DEBIAN/postinst $(DEB_ROOT)/DEBIAN/postrm
	dpkg-deb --root-owner-group --build $(DEB_ROOT) $(DEB_FILE)


clean:
	@if [ -d $(BUILD) ]; then \
	    find $(BUILD) -mindepth 1 -maxdepth 1 ! -name '*.orig.tar.gz' \
	        -exec rm -rf {} +; \
	fi

FORCE:
