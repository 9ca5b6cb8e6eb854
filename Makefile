# encore - one non-recursive GNU Makefile.
#
#   make             build build/bin/{encore,encore-coordinator,encore-worker}
#   make test        build and run every test under prove (TAP)
#   make asan        the same tests under AddressSanitizer + UBSan
#   make bench       print the engine / farm / render figures
#   make demo        render examples/ into build/demo.mp4
#   make CUDA=1      also build the cuda backend (CUDA_ARCH ?= sm_90)
#   knobs: V=1 (echo commands), DEBUG=1, SANITIZE=address,undefined
#
# Every .c file under common/, worker/, coordinator/ and cli/ goes into
# build/libencore.a except the three mains; tests/unit/t_*.c each become a
# test program. Adding a module needs no edit here.

BUILD ?= build
CC ?= cc
PKGS := libzmq libprotobuf-c sqlite3 libavformat libavcodec libavutil libswresample libswscale openblas
DEPS_STAMP := $(BUILD)/.deps-ok

# Deferred (=) so pkg-config runs after the dependency installer.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS = $(shell pkg-config --libs $(PKGS))

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Werror
# -ffp-contract=off: no FMA contraction, so float results do not depend on
# how the compiler schedules a multiply-add (exactness, scheduler parity).
BASE_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -pthread \
	-ffp-contract=off -fno-strict-aliasing -MMD -MP -I$(BUILD)/gen -I.
ifeq ($(DEBUG),1)
OPT := -O0 -g3
else
OPT := -O2 -g
endif
ifneq ($(SANITIZE),)
OPT += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDSAN := -fsanitize=$(SANITIZE)
endif
ALL_CFLAGS = $(BASE_CFLAGS) $(OPT) $(WARN) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDLIBS = $(LDSAN) $(PKG_LIBS) -lm -pthread $(LDLIBS)

ifeq ($(CUDA),1)
CUDA_HOME ?= /usr/local/cuda
CUDA_ARCH ?= sm_90
NVCC ?= $(CUDA_HOME)/bin/nvcc
BASE_CFLAGS += -DENCORE_CUDA -I$(CUDA_HOME)/include
CU_SRCS := $(wildcard worker/engine/cuda/*.cu)
CU_OBJS := $(CU_SRCS:%.cu=$(BUILD)/%.o)
# --fmad=false: no fused multiply-add unless written (fmaf), as -ffp-contract=off
NVCCFLAGS ?= -O2 -g
ALL_NVCCFLAGS = -std=c++17 $(NVCCFLAGS) -arch=$(CUDA_ARCH) --fmad=false -DENCORE_CUDA -I. \
	-MMD -MP -Werror all-warnings -Xcompiler -Wall,-Wextra,-Wshadow,-Werror
# nvcc's objects are C++: they need the C++ runtime when linked by $(CC)
ALL_LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif

.DEFAULT_GOAL := all

# A build directory remembers the flags it was built with: when they change
# (make asan, CUDA=1 into the same BUILD, CFLAGS=...), everything rebuilds
# instead of linking objects of two kinds.
FLAGS_STAMP := $(BUILD)/.flags
FLAGS_NOW = $(CC) $(ALL_CFLAGS) $(ALL_LDLIBS) $(ALL_NVCCFLAGS)
$(FLAGS_STAMP): FORCE | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@printf '%s\n' '$(FLAGS_NOW)' | cmp -s - $@ || printf '%s\n' '$(FLAGS_NOW)' > $@
FORCE:
.PHONY: FORCE

ifeq ($(V),1)
Q :=
else
Q := @
endif

PROTOS := $(wildcard proto/*.proto)
PROTO_C := $(PROTOS:proto/%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_H := $(PROTO_C:.c=.h)
PROTO_OBJS := $(PROTO_C:.c=.o)

# schema/NNNN_*.sql migrations are embedded into the library as C strings.
SCHEMAS := $(sort $(wildcard schema/*.sql))
SCHEMA_OBJ := $(if $(SCHEMAS),$(BUILD)/gen/schema_sql.o)

MAINS := cli/encore_main.c coordinator/coordinator_main.c worker/worker_main.c
SRCS := $(filter-out $(MAINS), $(wildcard common/*.c worker/*.c worker/engine/*.c \
	worker/engine/cpu/*.c worker/engine/cuda/*.c worker/models/*.c coordinator/*.c cli/*.c))
OBJS := $(SRCS:%.c=$(BUILD)/%.o) $(PROTO_OBJS) $(SCHEMA_OBJ) $(CU_OBJS)
LIB := $(BUILD)/libencore.a

BINS := $(BUILD)/bin/encore $(BUILD)/bin/encore-coordinator $(BUILD)/bin/encore-worker
BIN_encore := cli/encore_main.c
BIN_encore-coordinator := coordinator/coordinator_main.c
BIN_encore-worker := worker/worker_main.c

TEST_SRCS := $(wildcard tests/unit/t_*.c)
TESTS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
INTEGRATION := $(sort $(wildcard tests/integration/t*.sh))

PREFIX ?= /usr/local

.PHONY: all test asan bench demo deps install clean format format-check
all: $(BINS)

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-deps.sh
	$(Q)sh scripts/install-deps.sh
	$(Q)mkdir -p $(@D) && touch $@

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  PROTOC  $<")
	$(Q)protoc-c --c_out=$(BUILD)/gen --proto_path=proto $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c $(FLAGS_STAMP)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(OPT) $(PKG_CFLAGS) $(CFLAGS) -w -c $< -o $@

$(BUILD)/gen/schema_sql.c: $(SCHEMAS) scripts/embed-schema.sh
	@mkdir -p $(@D)
	$(Q)sh scripts/embed-schema.sh $(SCHEMAS) > $@

$(BUILD)/gen/schema_sql.o: $(BUILD)/gen/schema_sql.c $(FLAGS_STAMP)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) -w -c $< -o $@

$(BUILD)/%.o: %.c $(FLAGS_STAMP) | $(DEPS_STAMP) $(PROTO_H)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu $(FLAGS_STAMP) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  NVCC    $<")
	$(Q)$(NVCC) $(ALL_NVCCFLAGS) -c $< -o $@

$(LIB): $(OBJS)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/bin/%: $(BUILD)/$$(basename $$(BIN_%)).o $(LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(OPT) -o $@ $^ $(ALL_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(OPT) -o $@ $^ $(ALL_LDLIBS)

# The test command of the README and of .ci/run.
test: $(BINS) $(TESTS)
	ENCORE_BIN=$(abspath $(BUILD)/bin) prove -f --timer --exec '' $(TESTS) $(INTEGRATION)

asan:
	$(MAKE) BUILD=build-asan SANITIZE=address,undefined test

bench: $(BINS)
	$(BUILD)/bin/encore bench engine
	$(BUILD)/bin/encore bench farm --workers 64 --windows 1400 --steps 50 --sim-ms 20
	$(BUILD)/bin/encore bench farm --workers 64 --windows 1400 --steps 50 --sim-ms 20 --threads
	$(BUILD)/bin/encore bench farm --workers 64 --windows 1400 --steps 50 --sim-ms 0
	$(BUILD)/bin/encore bench farm --workers 64 --windows 1400 --steps 50 --sim-ms 0 --threads
	$(BUILD)/bin/encore bench render
	$(BUILD)/bin/encore bench render --seconds 10 --mid
	$(BUILD)/bin/encore bench encoders

demo: $(BINS)
	$(BUILD)/bin/encore render examples/speech.wav examples/portrait.png -o $(BUILD)/demo.mp4

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h')
format:
	clang-format -i $(FORMAT_SRCS)
format-check:
	clang-format --dry-run --Werror $(FORMAT_SRCS)

clean:
	rm -rf $(BUILD) build-asan build-cuda

-include $(OBJS:.o=.d) $(TESTS:$(BUILD)/tests/%=$(BUILD)/tests/unit/%.d) \
	$(foreach b,$(MAINS),$(BUILD)/$(b:.c=.d))
