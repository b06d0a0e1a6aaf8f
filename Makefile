# Quick start: `make demo` and `make test` each set up what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-done
HEADLOOP := camtrap_fast/train/_headloop.so
DEMO ?= demo
PYTEST_ARGS ?=

.PHONY: setup demo study-demo focal-demo test test-fast bench bench-ci clean

setup: $(STAMP) $(HEADLOOP)

# Idempotent: the stamp depends on the files that define the environment, so editing
# them re-runs setup, and a finished setup is not repeated.
$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt \
		torch torchvision nvidia-dali-cuda130 webdataset numpy tqdm matplotlib \
		pytest pytest-benchmark hypothesis scikit-learn
	# libjpeg-turbo 3 for the shard step's decode: optional (shards/fastjpeg.py falls back to PIL, same bytes, slower).
	$(BIN)/python -m pip install --quiet -c constraints.txt simplejpeg \
		|| echo "WARNING: simplejpeg did not install; shard uses PIL's (slower) JPEG decoder" >&2
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(MAKE) --no-print-directory pillow-simd
	touch $(STAMP)

# pillow-simd replaces pillow (both provide the `PIL` package, so pip must not see both: uninstall both,
# then force-install pillow-simd). Built with AVX2 where the CPU has it. If the build fails we fall back
# to pillow, loudly, rather than fail setup. Re-run after every dependency install: installing
# torchvision pulls pillow back in over pillow-simd's files.
# The phase-2 head's compiled step loop (camtrap_fast/train/headloop.c), for this machine's CPU. Compiled with
# -ffast-math so that exp, sqrt and division vectorize (tests pin its results to the plain loop) but without
# reassociation (-fno-associative-math: every sum runs in the order written, whatever the thread count), and linked
# without it: linking with -ffast-math would add crtfastmath, which flushes denormals for the whole process.
# No compiler, or a failed build: a warning, and head training runs its torch loop (the same arithmetic, slower).
$(HEADLOOP): camtrap_fast/train/headloop.c camtrap_fast/train/headloop_tiles.h camtrap_fast/train/headloop_losses.h
	@if command -v cc >/dev/null && cc -O3 -march=native -ffast-math -fno-associative-math -pthread -fPIC -c -o $@.o $< && cc -shared -pthread -o $@ $@.o -lm; then \
		rm -f $@.o; echo "built $@"; \
	else \
		rm -f $@.o $@; echo "WARNING: could not build $@; phase-2 head training uses its (slower) torch loop" >&2; \
	fi

.PHONY: pillow-simd
pillow-simd:
	@if $(BIN)/python -c "import PIL.Image, sys; sys.exit(0 if '.post' in PIL.__version__ else 1)" 2>/dev/null; then \
		echo "pillow-simd already installed"; \
	else \
		flags=""; grep -qw avx2 /proc/cpuinfo && flags="-mavx2"; \
		$(BIN)/python -m pip uninstall --quiet --yes pillow pillow-simd; \
		if CC="cc $$flags" $(BIN)/python -m pip install --quiet --force-reinstall --no-deps \
				--no-binary pillow-simd -c constraints.txt pillow-simd \
			&& $(BIN)/python -c "import PIL.Image, PIL.features; assert PIL.features.check('jpg')"; then \
			echo "pillow-simd installed (CC flags: $${flags:-none})"; \
		else \
			echo "WARNING: pillow-simd failed to build; falling back to pillow (slower resize)" >&2; \
			$(BIN)/python -m pip uninstall --quiet --yes pillow-simd; \
			$(BIN)/python -m pip install --quiet --force-reinstall --no-deps pillow; \
		fi; \
	fi

demo: setup
	$(BIN)/python -m camtrap_fast demo --workdir $(DEMO)

# The study's protocol at demo scale: the five regimes (caps and ROS bands scaled to the demo's 1,300 training
# images) x 3 seeds at the demo's 64-px setting, every phase-2 method on each run. Its own data folder, so it never
# touches `make demo`'s. Rerun to continue a killed study; rm -rf $(DEMO)/study for a fresh one.
STUDY_DATA := $(DEMO)/study-data
study-demo: setup
	test -f $(STUDY_DATA)/images/annotations.json || $(BIN)/python -m camtrap_fast synth $(STUDY_DATA)/images --scale 0.01
	test -f $(STUDY_DATA)/shards/manifest.json || $(BIN)/python -m camtrap_fast shard \
		$(STUDY_DATA)/images/annotations.json $(STUDY_DATA)/shards --size 80 --shard-size 1000 --quiet
	$(BIN)/python -m camtrap_fast study $(STUDY_DATA)/shards --out $(DEMO)/study --scale-regimes --seeds 0,1,2 \
		--image-size 64 --epochs 8 --patience 3 --crop-scale-min 0.35 --quiet

# The focal-loss study's grid at demo scale (README: "The focal-loss study at demo scale"): the baseline regime with
# cross-entropy and four sigmoid-focal alpha/gamma pairs, 3 seeds, on `make study-demo`'s shards.
focal-demo: setup
	test -f $(STUDY_DATA)/images/annotations.json || $(BIN)/python -m camtrap_fast synth $(STUDY_DATA)/images --scale 0.01
	test -f $(STUDY_DATA)/shards/manifest.json || $(BIN)/python -m camtrap_fast shard \
		$(STUDY_DATA)/images/annotations.json $(STUDY_DATA)/shards --size 80 --shard-size 1000 --quiet
	$(BIN)/python -m camtrap_fast study $(STUDY_DATA)/shards --out $(DEMO)/focal-study --regime none --seeds 0,1,2 \
		--loss ce --loss sigmoid-focal:alpha=0.25,gamma=0.5 --loss sigmoid-focal:alpha=0.25,gamma=2 \
		--loss sigmoid-focal:alpha=0.5,gamma=1 --loss sigmoid-focal:alpha=0.5,gamma=5 --frames first \
		--methods retrain --image-size 64 --epochs 6 --patience 3 --crop-scale-min 0.35 --quiet

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Each benchmark measures a baseline in the same run and prints ratios; bench/README.md records results.
# bench/phase2.py needs a two-phase run: the demo's, made first if it is missing.
bench: setup
	$(BIN)/python bench/micro.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/shard.py
	$(BIN)/python bench/shard_plan.py
	$(BIN)/python bench/shard_growth.py
	$(BIN)/python bench/integrity.py
	$(BIN)/python bench/sampling.py
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/phase2_head.py
	$(BIN)/python bench/train_throughput.py
	test -f $(DEMO)/runs/two-phase/phase2/metrics.json || $(MAKE) --no-print-directory demo
	$(BIN)/python bench/phase2.py --run $(DEMO)/runs/two-phase
	$(BIN)/python bench/phase2_methods.py --run $(DEMO)/runs/two-phase

# CI: every benchmark at a small size (--ci), each writing bench/results/NAME.json; then one check fails the run if
# any ratio is below its floor in bench/targets.py (or a benchmark wrote nothing). About 4 minutes on 2 cores.
BENCH_RESULTS := bench/results
bench-ci: setup
	mkdir -p $(BENCH_RESULTS) && touch $(BENCH_RESULTS)/.started
	$(BIN)/python bench/startup.py --ci
	$(BIN)/python bench/micro.py --ci
	$(BIN)/python bench/shard.py --ci
	$(BIN)/python bench/shard_plan.py --ci
	$(BIN)/python bench/integrity.py --ci
	$(BIN)/python bench/sampling.py --ci
	$(BIN)/python bench/loader.py --ci
	$(BIN)/python bench/phase2_head.py --ci
	$(BIN)/python bench/phase2.py --ci
	$(BIN)/python bench/phase2_methods.py --ci
	$(BIN)/python bench/train_throughput.py --ci
	$(BIN)/python bench/results.py check --since $(BENCH_RESULTS)/.started

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .benchmarks $(HEADLOOP)
