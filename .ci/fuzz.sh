#!/bin/bash
# Fuzzing stage of CI (DESIGN.md T4, plus the valgrind replay of T5).
#
#   .ci/fuzz.sh [BUILD_DIR]      default build-fuzz; GS_FUZZ_SECONDS (60)
#
# 1. Replay every committed corpus file through the changeset corpus test
#    under valgrind, in a plain gcc build against Debian's shared libraries
#    (the SQLite the handhelds run is not instrumented, so this is where a
#    bad read inside it would show). Build dir: GS_VALGRIND_BUILD
#    (default build-valgrind).
# 2. Configure BUILD_DIR with clang, -DGS_BUILD_FUZZERS=ON and
#    fuzzer-no-link,address,undefined, and build every tests/fuzz/fuzz_*.c.
# 3. Replay every committed corpus file (tests/data/malformed,
#    tests/data/fuzz/*) through every target, one run each.
# 4. Fuzz each target for GS_FUZZ_SECONDS, two at a time (CI has 2 cores),
#    with -timeout=2 -rss_limit_mb=512 -max_len=65536, seeded from its
#    committed corpus; new inputs stay in BUILD_DIR/fuzz-corpus.
# Any crash, sanitizer report, timeout, leak or OOM fails the script; the
# offending input is copied to tests/data/fuzz/<target>/ so that it can be
# committed as a regression entry together with the fix. Exec counts below
# half of the T4 expectation (1 M per decoder run, 100 k per applier run,
# for 120 s) are reported as warnings.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-build-fuzz}
secs=${GS_FUZZ_SECONDS:-60}
vg_build=${GS_VALGRIND_BUILD:-build-valgrind}
# A smaller quarantine keeps RSS well under the 512 MB limit (the default
# 256 MB quarantine alone pushed the applier to 430 MB).
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fuzz_flags=(-timeout=2 -rss_limit_mb=512 -max_len=65536)
start=$(date +%s)
step() { printf '\n--- fuzz: %s (%ds)\n' "$*" "$(($(date +%s) - start))"; }

mapfile -t corpus_files < <(find tests/data/malformed tests/data/fuzz \
	-type f ! -name '*.py' ! -name '*.md' | sort)

step "valgrind replay of ${#corpus_files[@]} corpus files ($vg_build)"
cmake -S . -B "$vg_build" -DCMAKE_BUILD_TYPE=Debug -DGS_SANITIZE= \
	>/dev/null
cmake --build "$vg_build" -j2 --target test_proto_changeset_corpus \
	test_proto_changeset >/dev/null
for t in test_proto_changeset_corpus test_proto_changeset; do
	valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite "$vg_build/tests/$t" \
		>"$vg_build/$t.valgrind.log" 2>&1 || {
		echo "valgrind: $t failed, see $vg_build/$t.valgrind.log" >&2
		tail -40 "$vg_build/$t.valgrind.log" >&2
		exit 1
	}
	echo "valgrind: $t clean"
done

step "configure and build ($build)"
CC=clang cmake -S . -B "$build" -DGS_BUILD_FUZZERS=ON \
	-DGS_SANITIZE=fuzzer-no-link,address,undefined >/dev/null
mapfile -t targets < <(ls tests/fuzz/fuzz_*.c | xargs -n1 basename |
	sed 's/\.c$//')
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null
mkdir -p "$build/fuzz-logs" "$build/fuzz-artifacts" "$build/fuzz-corpus"

# Keep what a failing target left behind where it can be committed.
save_findings() {
	local name=$1 f
	for f in "$build/fuzz-artifacts/$name"/*; do
		[ -e "$f" ] || continue
		mkdir -p "tests/data/fuzz/$name"
		cp "$f" "tests/data/fuzz/$name/"
		echo "finding: tests/data/fuzz/$name/$(basename "$f")" >&2
	done
}

step "replay the committed corpus through ${#targets[@]} targets"
for exe in "${targets[@]}"; do
	name=${exe#fuzz_}
	rm -rf "$build/fuzz-artifacts/$name"
	mkdir -p "$build/fuzz-artifacts/$name"
	log="$build/fuzz-logs/$name.replay.log"
	if ! "$build/tests/fuzz/$exe" "${fuzz_flags[@]}" \
		-artifact_prefix="$build/fuzz-artifacts/$name/" \
		"${corpus_files[@]}" >"$log" 2>&1; then
		tail -40 "$log" >&2
		# Replayed files are committed already: name the one that broke.
		echo "replay: $exe failed on" \
			"$(grep '^Running: ' "$log" | tail -1 | cut -c10-)" >&2
		exit 1
	fi
	echo "replay: $exe ok (${#corpus_files[@]} files)"
done

# Seeds: the target's own corpus, its prefix's (changeset_apply uses
# changeset's) and, for changeset targets, the malformed cases.
seeds_for() {
	local name=$1 prefix=${1%%_*}
	[ -d "tests/data/fuzz/$name" ] && echo "tests/data/fuzz/$name"
	[ "$prefix" != "$name" ] && [ -d "tests/data/fuzz/$prefix" ] &&
		echo "tests/data/fuzz/$prefix"
	case $name in changeset*) echo tests/data/malformed ;; esac
	return 0
}

run_one() {
	local exe=$1 name=${1#fuzz_} seeds
	mapfile -t seeds < <(seeds_for "$name")
	mkdir -p "$build/fuzz-corpus/$name"
	"$build/tests/fuzz/$exe" "${fuzz_flags[@]}" \
		-max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$build/fuzz-artifacts/$name/" \
		"$build/fuzz-corpus/$name" "${seeds[@]}" \
		>"$build/fuzz-logs/$name.log" 2>&1
}

step "fuzz each target for ${secs}s, two at a time"
failed=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
	pids=()
	for exe in "${targets[@]:i:2}"; do
		run_one "$exe" &
		pids+=("$!:$exe")
	done
	for p in "${pids[@]}"; do
		if ! wait "${p%%:*}"; then
			name=${p#*:}
			name=${name#fuzz_}
			echo "fuzz: ${p#*:} FAILED" >&2
			grep -E 'ERROR|SUMMARY|unit written|failed at' \
				"$build/fuzz-logs/$name.log" |
				head -20 >&2 || true
			save_findings "$name"
			failed=1
		fi
	done
done

step "results"
for exe in "${targets[@]}"; do
	name=${exe#fuzz_}
	log="$build/fuzz-logs/$name.log"
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
	cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)
	printf '%-24s %10s execs %8s exec/s %5s MB  %s\n' "$exe" \
		"${runs:-?}" "${rate:-?}" "${rss:-?}" "${cov:-}"
	# T4: expect >= 1 M execs per decoder run and >= 100 k per applier
	# run of 120 s; warn below half, scaled to this run's length.
	want=1000000
	case $name in *apply*) want=100000 ;; esac
	want=$((want * secs / 120 / 2))
	if [ -n "$runs" ] && [ "$runs" -lt "$want" ]; then
		echo "warning: $exe ran $runs execs, below half the T4" \
			"expectation ($want for ${secs}s)" >&2
	fi
done
if [ "$failed" -ne 0 ]; then
	echo "fuzz: findings above; commit the copied inputs with the fix" >&2
	exit 1
fi
echo "fuzz: ok"
