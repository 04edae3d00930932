# alloc: plain Makefile. `make` builds the three programs; see README.md.
CC       ?= cc
SANITIZE ?=
BUILD    := build$(if $(SANITIZE),/$(SANITIZE),)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -pthread -Icommon -I/usr/include/postgresql
LDLIBS   := -lrabbitmq -lhiredis -lpq -ljansson -lxlsxwriter -lcrypto -lz -lm -pthread
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SANITIZE)
endif

COMMON_SRC   := $(wildcard common/*.c)
COMMON_OBJ   := $(COMMON_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations.o
PRODUCER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard producer/*.c))
CONSUMER_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard consumer/*.c))
GEN_OBJ      := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/gen/*.c))
UNIT_SRC     := $(wildcard tests/unit/test_*.c)
UNIT_BIN     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
IT_SRC       := $(wildcard tests/integration/it_*.c)
IT_BIN       := $(IT_SRC:tests/integration/%.c=$(BUILD)/tests/%)
LIB          := $(BUILD)/liballoc.a
PROGRAMS     := $(BUILD)/alloc-producer $(BUILD)/alloc-consumer $(BUILD)/alloc-gen

.PHONY: all deps unit test test-deploy demo bench format format-check clean cluster-stop
all: $(PROGRAMS) $(UNIT_BIN) $(IT_BIN)

$(BUILD)/%.o: %.c $(wildcard common/*.h) $(wildcard producer/*.h) $(wildcard consumer/*.h) $(wildcard tools/gen/*.h) $(wildcard tests/unit/*.h) $(wildcard tests/integration/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The SQL migrations are compiled into the producer so one binary carries its schema.
$(BUILD)/gen/migrations.c: $(sort $(wildcard schemas/[0-9]*.sql)) tools/embed_sql.sh
	@mkdir -p $(dir $@)
	sh tools/embed_sql.sh $(sort $(wildcard schemas/[0-9]*.sql)) > $@

$(BUILD)/gen/migrations.o: $(BUILD)/gen/migrations.c common/migrations.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/alloc-producer: $(PRODUCER_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/alloc-consumer: $(CONSUMER_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/alloc-gen: $(GEN_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
# Integration test programs: C code that talks to the real servers, run by tests/integration/t_*.sh.
$(BUILD)/tests/it_%: $(BUILD)/tests/integration/it_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

deps:
	@deploy/local/deps.sh

# Unit tests only: no servers.
unit: all
	@tests/run.sh --unit-only

# Everything: installs packages, starts a throwaway cluster, runs unit and
# integration tests, stops what it started, ends with "N passed, N failed".
test: deps
	@$(MAKE) --no-print-directory all
	@tests/run.sh

# The docker-compose cluster for real: its own Docker engine under .run/docker,
# images built from Debian's packages, deploy/docker-compose.yml run and checked
# against the local cluster (tests/deploy/run.sh); ends with "N passed, N failed".
test-deploy: deps
	@$(MAKE) --no-print-directory $(PROGRAMS)
	@tests/deploy/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@deploy/local/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@tests/bench/bench.sh

format:
	clang-format -i $(wildcard common/*.[ch] producer/*.[ch] consumer/*.[ch] tools/gen/*.[ch] tests/unit/*.[ch] tests/integration/*.[ch])

format-check:
	clang-format --dry-run --Werror $(wildcard common/*.[ch] producer/*.[ch] consumer/*.[ch] tools/gen/*.[ch] tests/unit/*.[ch] tests/integration/*.[ch])

cluster-stop:
	@deploy/local/cluster.sh stop

clean:
	rm -rf build

# ---- fuzzing of the fx module (clang + libFuzzer; not part of `all`) ----------
# `make fuzz` builds build/fuzz/fuzz_fx from the fx sources directly. Run it with
#   build/fuzz/fuzz_fx -timeout=5 -max_total_time=600 -print_final_stats=1 FRESH_DIR tests/fx/corpus
# then keep the corpus small: build/fuzz/fuzz_fx -merge=1 tests/fx/corpus FRESH_DIR
FX_SRC := $(wildcard common/fx*.c) common/strbuf.c common/util.c
.PHONY: fuzz
fuzz: build/fuzz/fuzz_fx
build/fuzz/fuzz_fx: tests/fuzz/fuzz_fx.c $(FX_SRC) $(wildcard common/fx*.h)
	@mkdir -p $(dir $@)
	clang -g -O1 -std=c11 -Wall -Wextra -D_DEFAULT_SOURCE -Icommon \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-o $@ tests/fuzz/fuzz_fx.c $(FX_SRC) -lm
# test_fx replays the corpus with the fuzz target's code (it includes the file).
$(BUILD)/tests/unit/test_fx.o: tests/fuzz/fuzz_fx.c
