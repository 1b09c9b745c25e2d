# Quick start: `make run` and `make test`. Both install missing Debian packages, configure and build.
BUILD ?= build
JOBS ?= $(shell nproc)
DEB_PACKAGES := cmake g++ make pkg-config nlohmann-json3-dev libpcre2-dev libcli11-dev \
                libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev \
                libcpp-httplib-dev libsqlite3-dev libpq-dev libssl-dev postgresql \
                libcairo2-dev libsodium-dev poppler-utils fonts-dejavu-core chromium \
                python3-jinja2 python3-jsonschema python3-torch git \
                openmpi-bin libopenmpi-dev
SHARED ?= ../shared
FIXTURES := $(SHARED)/fixtures
DEFAULT_GGUF := $(BUILD)/models/aidreams260K.gguf
# A second demo model, slower and with long answers (to try the stop button): the Llama 3 shape
# with random weights and Meta's Llama 3 tokenizer, so it carries the Llama 3 license.
DEMO_GGUF := $(BUILD)/models/Llama-3-tiny-random.gguf

.PHONY: deps configure build run test clean bench

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v node >/dev/null && command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

configure: deps
	@[ -f $(BUILD)/CMakeCache.txt ] || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: configure
	cmake --build $(BUILD) -j $(JOBS)

$(DEFAULT_GGUF): | build
	@mkdir -p $(dir $@)
	$(BUILD)/corral convert $(FIXTURES)/llama2c/aidreams260K.bin $@ --tokenizer $(FIXTURES)/llama2c/tok512.bin

# Serves the default model with a demo tenant: prints the chat URL, the usage page and a curl
# command; Ctrl-C stops it (scripts/demo.sh).
$(DEMO_GGUF): | build
	@mkdir -p $(dir $@)
	$(BUILD)/corral synth --shape tiny --type q8_0 --seed 1 --license llama3 $@

run: build $(DEFAULT_GGUF) $(DEMO_GGUF)
	@scripts/demo.sh $(BUILD)/corral $(BUILD) $(DEFAULT_GGUF) $(DEMO_GGUF)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

bench: build
	$(BUILD)/corral-bench

clean:
	rm -rf $(BUILD)
