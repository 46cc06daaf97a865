#!/usr/bin/env bash
# The mutation check: disables each safety check listed in tests/mutation/mutations.txt, one
# at a time, in a scratch copy of the tree, and runs the tests that must notice. Run on demand
# and weekly by CI (.ci/mutation); not part of test.sh. See tests/mutation/README.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PROG="tests/mutation/run.sh"

usage() {
  cat <<EOF
Usage: $PROG [options] [ID...]

Copies the working tree (tracked files, and untracked files git does not ignore) to a
scratch directory, builds it once (Ninja, RelWithDebInfo, as tests/scripts/build.sh does),
then for each mutation of the list (or only the IDs given): checks that its text occurs
exactly once, applies it, rebuilds the test binaries it names, runs its tests, and restores
the file. Prints a table, writes it as markdown to SCRATCH/mutation-report.md, and exits 0
only if every mutation was killed (at least one of its tests failed).

Verdicts other than a kill fail the run: SURVIVED (every test passed), STALE (the text is
not in the file exactly once), BUILD-FAILED, NO-TESTS (the regex selects no test), TIMEOUT
(the test run exceeded -t), BASELINE-FAILED (its tests fail without the mutation too).

Options:
  -d DIR   scratch directory (default: a new mktemp -d; env LETHE_MUTATION_DIR). An existing
           one is reused: only changed files are copied, so the build is incremental.
  -f FILE  mutation list (default: tests/mutation/mutations.txt)
  -o FILE  also write the markdown report to FILE
  -t SECS  timeout of each test run, in seconds (default 1800; env LETHE_MUTATION_TIMEOUT)
  -B       skip the baseline run (the selected tests on the unmutated build, which must pass)
  -l       list the mutations and exit
  -h       this help

Environment: LETHE_JOBS=N build jobs (default 2), LETHE_TEST_JOBS=N ctest jobs (default 1).
Takes one full build (about 11 min at -j1) plus, per mutation, an incremental build and
its tests: under 10 s for a unit-test mutation, up to 1.5 min for an integration-test one.
EOF
}

log() { echo "mutation: $*" >&2; }
die() {
  log "$*"
  exit 2
}

SCRATCH="${LETHE_MUTATION_DIR:-}"
LIST="$ROOT/tests/mutation/mutations.txt"
REPORT_COPY=""
TEST_TIMEOUT="${LETHE_MUTATION_TIMEOUT:-1800}"
BASELINE=1
LIST_ONLY=0
JOBS="${LETHE_JOBS:-2}"
TEST_JOBS="${LETHE_TEST_JOBS:-1}"

while getopts ":d:f:o:t:Blh" opt; do
  case "$opt" in
    d) SCRATCH="$OPTARG" ;;
    f) LIST="$OPTARG" ;;
    o) REPORT_COPY="$OPTARG" ;;
    t) TEST_TIMEOUT="$OPTARG" ;;
    B) BASELINE=0 ;;
    l) LIST_ONLY=1 ;;
    h)
      usage
      exit 0
      ;;
    :) die "option -$OPTARG needs an argument (-h for help)" ;;
    *) die "unknown option -$OPTARG (-h for help)" ;;
  esac
done
shift $((OPTIND - 1))

for v in JOBS TEST_JOBS TEST_TIMEOUT; do
  case "${!v}" in
    '' | *[!0-9]* | 0) die "$v must be a positive integer, got '${!v}'" ;;
  esac
done
[ -f "$LIST" ] || die "no mutation list at $LIST"
LIST="$(cd "$(dirname "$LIST")" && pwd)/$(basename "$LIST")"

# ---- the list --------------------------------------------------------------------------
IDS=() FILES=() FINDS=() REPLACES=() REGEXES=()
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
  lineno=$((lineno + 1))
  line="${line%$'\r'}"
  case "$line" in '' | '#'*) continue ;; esac
  fields=()
  rest="$line"
  while [[ "$rest" == *$'\t'* ]]; do
    fields+=("${rest%%$'\t'*}")
    rest="${rest#*$'\t'}"
  done
  fields+=("$rest")
  [ "${#fields[@]}" -eq 5 ] ||
    die "$LIST:$lineno: ${#fields[@]} TAB-separated fields, expected 5 (id, file, find, replace, tests)"
  [[ "${fields[0]}" =~ ^[A-Za-z0-9_.-]+$ ]] || die "$LIST:$lineno: bad id '${fields[0]}'"
  if [ -z "${fields[1]}" ] || [ -z "${fields[2]}" ] || [ -z "${fields[4]}" ]; then
    die "$LIST:$lineno: empty file, find or tests field"
  fi
  for id in "${IDS[@]}"; do
    [ "$id" != "${fields[0]}" ] || die "$LIST:$lineno: id ${fields[0]} appears twice"
  done
  IDS+=("${fields[0]}") FILES+=("${fields[1]}") FINDS+=("${fields[2]}")
  REPLACES+=("${fields[3]}") REGEXES+=("${fields[4]}")
done <"$LIST"
[ "${#IDS[@]}" -gt 0 ] || die "$LIST lists no mutation"

# The selection: every mutation, or the IDs given, in the list's order.
SEL=()
if [ "$#" -eq 0 ]; then
  SEL=("${!IDS[@]}")
else
  for want in "$@"; do
    found=""
    for i in "${!IDS[@]}"; do [ "${IDS[$i]}" = "$want" ] && found="$i"; done
    [ -n "$found" ] || die "no mutation '$want' in $LIST (-l lists them)"
  done
  for i in "${!IDS[@]}"; do
    for want in "$@"; do [ "${IDS[$i]}" = "$want" ] && SEL+=("$i") && break; done
  done
fi

if [ "$LIST_ONLY" -eq 1 ]; then
  for i in "${SEL[@]}"; do printf '%-26s %-26s %s\n' "${IDS[$i]}" "${FILES[$i]}" "${REGEXES[$i]}"; done
  exit 0
fi

for tool in git cmake ninja ctest timeout cmp; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (tests/scripts/deps.sh installs it)"
done

now() { date +%s; }
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
run_start=$(now)

# ---- the scratch copy ------------------------------------------------------------------
if [ -z "$SCRATCH" ]; then
  SCRATCH="$(mktemp -d -t lethe-mutation.XXXXXX)"
else
  mkdir -p "$SCRATCH"
  SCRATCH="$(cd "$SCRATCH" && pwd)"
fi
case "$SCRATCH/" in
  "$ROOT/"*) die "the scratch directory must be outside the repository ($SCRATCH)" ;;
esac
SRC="$SCRATCH/src"
BUILD="$SCRATCH/build"
LOGS="$SCRATCH/logs"
SAVED="$SCRATCH/saved"
REPORT="$SCRATCH/mutation-report.md"
mkdir -p "$SRC" "$LOGS" "$SAVED"
rm -f "$LOGS"/*.log
log "scratch directory $SCRATCH"

# A file left mutated by a run that was killed hard differs from the working tree's: the
# copy below puts the original back.
rm -f "$SAVED"/*

# Copy only what differs, so that a reused scratch build stays incremental.
copied=0
while IFS= read -r -d '' f; do
  [ -f "$ROOT/$f" ] || continue # deleted in the working tree, or a submodule
  if ! cmp -s "$ROOT/$f" "$SRC/$f"; then
    mkdir -p "$(dirname "$SRC/$f")"
    cp -p "$ROOT/$f" "$SRC/$f"
    touch "$SRC/$f" # newer than anything built from an older copy
    copied=$((copied + 1))
  fi
done < <(git -C "$ROOT" ls-files -z --cached --others --exclude-standard)
log "copied $copied changed file(s) of the working tree to $SRC"

# ---- restoring the mutated file, whatever happens --------------------------------------
CUR_FILE="" # relative path of the file now mutated, if any
CUR_SAVED=""
restore() {
  if [ -n "$CUR_FILE" ]; then
    cp "$CUR_SAVED" "$SRC/$CUR_FILE"
    # A new mtime: ninja must rebuild whatever was built from the mutant.
    touch "$SRC/$CUR_FILE"
    rm -f "$CUR_SAVED"
    CUR_FILE=""
  fi
}
trap restore EXIT
trap 'restore; log "interrupted"; exit 130' INT TERM

# ---- the build ---------------------------------------------------------------------------
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD/CMakeCache.txt"; then
  die "$BUILD was configured with another generator; remove it"
fi
t0=$(now)
log "configuring and building $BUILD (-j$JOBS); log: $LOGS/build.log"
if ! {
  # The tests' S3 server, where the tests look for it (as build.sh installs it).
  LETHE_BUILD_DIR="$BUILD" "$SRC/tests/scripts/s3rver.sh" &&
    cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
    ninja -C "$BUILD" -j"$JOBS"
} >"$LOGS/build.log" 2>&1; then
  tail -n 40 "$LOGS/build.log" >&2
  die "the unmutated tree does not build; nothing was mutated (log: $LOGS/build.log)"
fi
log "built in $(fmt_secs $(($(now) - t0)))"

# The tests a regex selects, one "NUMBER NAME" a line (ctest's test numbers; names without
# gtest's "  # GetParam() = ..." tail).
selected() {
  ctest --test-dir "$BUILD" -N -R "$1" 2>/dev/null |
    sed -nE 's/^[[:space:]]*Test[[:space:]]+#([0-9]+): (.*)$/\1 \2/p' | sed -E 's/  # GetParam\(\).*$//'
}
selected_tests() { selected "$1" | cut -d' ' -f2-; }

# The ninja targets that make a mutation's tests current: the gtest binaries its tests come
# from (their add_dependencies bring lethectl, lethed and lethe-agent along); everything
# when a test is not from one of them (demo, no_silent_skips).
TARGETS=()
for i in "${SEL[@]}"; do
  t=""
  while IFS= read -r name; do
    [ -n "$name" ] || continue
    bin="${name%%.*}"
    if [ "$bin" != "$name" ] && [ -x "$BUILD/tests/$bin" ]; then
      case " $t " in *" $bin "*) ;; *) t="${t:+$t }$bin" ;; esac
    else
      t="all"
      break
    fi
  done < <(selected_tests "${REGEXES[$i]}")
  [ "$t" = "all" ] && t=""
  TARGETS[i]="$t"
done

# Runs ctest.sh with the selection given (-R REGEX, or -I 0,0,0,N,N,... by test number),
# logging to `logfile`. Sets RUN_TOTAL, RUN_FAILED (names, one a line, with ctest's status
# when it is not plain "Failed"), RUN_SKIPPED and RUN_STATUS (ok, failed, skipped, no-tests,
# timeout).
run_tests() {
  local logfile="$1" rc=0
  shift
  timeout --kill-after=60 "$TEST_TIMEOUT" \
    "$SRC/tests/scripts/ctest.sh" --test-dir "$BUILD" "$@" -j "$TEST_JOBS" \
    >"$logfile" 2>&1 || rc=$?
  # "  12 - name (Failed)"; parameterised names carry "  # GetParam() = ..." before the status.
  RUN_FAILED=""
  local entry name status
  while IFS= read -r entry; do
    name="${entry% \(*\)}"
    status="${entry##* (}"
    status="${status%)}"
    name="${name%%"  # GetParam()"*}"
    [ "$status" = Failed ] || name="$name ($status)"
    RUN_FAILED="${RUN_FAILED:+$RUN_FAILED$'\n'}$name"
  done < <(sed -n '/^The following tests FAILED:/,/^$/p' "$logfile" |
    sed -nE 's/^[[:space:]]*[0-9]+ - (.*)$/\1/p')
  RUN_SKIPPED="$(sed -n '/^The following tests did not run:/,/^$/p' "$logfile" |
    grep -cE '^[[:space:]]*[0-9]+ - ' || true)"
  local summary
  summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$logfile" | tail -n 1 || true)"
  RUN_TOTAL="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    RUN_STATUS=timeout
  elif [ -z "$summary" ] || [ "${RUN_TOTAL:-0}" -eq 0 ]; then
    RUN_STATUS=no-tests
    RUN_TOTAL=0
  elif [ -n "$RUN_FAILED" ]; then
    RUN_STATUS=failed
  elif [ "$rc" -ne 0 ] || [ "$RUN_SKIPPED" -gt 0 ]; then
    RUN_STATUS=skipped # ran, nothing failed, but some did not run: not a kill
  else
    RUN_STATUS=ok
  fi
}

VERDICT=() KILLERS=() RAN=() ELAPSED=()
ok_run=1

# ---- the baseline: the selected tests pass without any mutation ----------------------
# (by test number: ctest's regex engine takes only nine groups, too few for a union of the
# regexes).
if [ "$BASELINE" -eq 1 ]; then
  numbers="$(for i in "${SEL[@]}"; do selected "${REGEXES[$i]}" | cut -d' ' -f1; done | sort -nu | paste -sd,)"
  if [ -n "$numbers" ]; then
    t0=$(now)
    log "baseline: the selected tests on the unmutated build; log: $LOGS/baseline.log"
    run_tests "$LOGS/baseline.log" -I "0,0,0,$numbers"
    log "baseline: $RUN_TOTAL test(s), status $RUN_STATUS, $(fmt_secs $(($(now) - t0)))"
    if [ "$RUN_STATUS" != ok ]; then
      ok_run=0
      [ -z "$RUN_FAILED" ] || log "baseline failures:"$'\n'"$RUN_FAILED"
      [ "$RUN_STATUS" != skipped ] || log "baseline: $RUN_SKIPPED test(s) did not run (skipped)"
      failed_names="$(sed -E 's/ \([^()]*\)$//' <<<"$RUN_FAILED")"
      # The mutations whose tests fail unmutated cannot be judged.
      for i in "${SEL[@]}"; do
        bad=""
        while IFS= read -r name; do
          [ -n "$name" ] || continue
          if grep -qxF -- "$name" <<<"$failed_names"; then bad="${bad:+$bad, }$name"; fi
        done < <(selected_tests "${REGEXES[$i]}")
        if [ -n "$bad" ] || [ "$RUN_STATUS" = timeout ] || [ "$RUN_STATUS" = no-tests ]; then
          VERDICT[i]="BASELINE-FAILED"
          KILLERS[i]="BASELINE-FAILED: ${bad:-the baseline run $RUN_STATUS}"
          RAN[i]="-"
          ELAPSED[i]=0
        fi
      done
    fi
  fi
fi

# ---- the mutations -----------------------------------------------------------------------
count_occurrences() { # text, needle
  local text="$1" needle="$2" stripped
  stripped="${text//"$needle"/}"
  echo $(((${#text} - ${#stripped}) / ${#needle}))
}

n=0
for i in "${SEL[@]}"; do
  n=$((n + 1))
  id="${IDS[$i]}" file="${FILES[$i]}" find="${FINDS[$i]}" repl="${REPLACES[$i]}" regex="${REGEXES[$i]}"
  [ -z "${VERDICT[$i]:-}" ] || continue
  t0=$(now)
  log "[$n/${#SEL[@]}] $id ($file)"
  RAN[i]="-"
  if [ ! -f "$SRC/$file" ]; then
    VERDICT[i]=STALE KILLERS[i]="STALE: $file does not exist" ELAPSED[i]=0
    log "  STALE: $file does not exist"
    continue
  fi
  content=""
  IFS= read -r -d '' content <"$SRC/$file" || true
  occurrences="$(count_occurrences "$content" "$find")"
  if [ "$occurrences" -ne 1 ]; then
    VERDICT[i]=STALE KILLERS[i]="STALE: the text occurs $occurrences times" ELAPSED[i]=0
    log "  STALE: the text to replace occurs $occurrences times in $file, not once"
    continue
  fi
  # Save, then mutate: prefix, replacement, suffix (all literal).
  CUR_SAVED="$SAVED/$id"
  cp -p "$SRC/$file" "$CUR_SAVED"
  CUR_FILE="$file"
  printf '%s' "${content%%"$find"*}${repl}${content#*"$find"}" >"$SRC/$file"

  targets="${TARGETS[$i]}"
  # shellcheck disable=SC2086 # the targets are words
  if ! ninja -C "$BUILD" -j"$JOBS" $targets >"$LOGS/$id.build.log" 2>&1; then
    restore
    VERDICT[i]=BUILD-FAILED KILLERS[i]="BUILD-FAILED (logs/$id.build.log)"
    ELAPSED[i]=$(($(now) - t0))
    log "  BUILD-FAILED: the mutant does not compile; see $LOGS/$id.build.log"
    continue
  fi
  run_tests "$LOGS/$id.test.log" -R "$regex"
  restore
  RAN[i]="$RUN_TOTAL"
  ELAPSED[i]=$(($(now) - t0))
  case "$RUN_STATUS" in
    failed)
      VERDICT[i]=KILLED
      KILLERS[i]="${RUN_FAILED//$'\n'/, }"
      ;;
    ok | skipped)
      VERDICT[i]=SURVIVED KILLERS[i]=SURVIVED
      if [ "$RUN_STATUS" = skipped ]; then KILLERS[i]="SURVIVED ($RUN_SKIPPED test(s) did not run)"; fi
      ;;
    no-tests) VERDICT[i]=NO-TESTS KILLERS[i]="NO-TESTS: the regex selects no test" ;;
    timeout) VERDICT[i]=TIMEOUT KILLERS[i]="TIMEOUT after ${TEST_TIMEOUT}s (logs/$id.test.log)" ;;
  esac
  log "  ${VERDICT[$i]} in $(fmt_secs "${ELAPSED[$i]}"): ${KILLERS[$i]}"
done

# ---- the report ------------------------------------------------------------------------
total=$(($(now) - run_start))
killed=0
for i in "${SEL[@]}"; do
  if [ "${VERDICT[$i]}" = KILLED ]; then killed=$((killed + 1)); else ok_run=0; fi
done
md_escape() { echo "${1//|/\\|}"; }
{
  echo "# Mutation check"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "plus working-tree changes; $killed of ${#SEL[@]} killed; total $(fmt_secs "$total")."
  echo
  echo "| mutation | file | tests run | killed by | time |"
  echo "|---|---|---|---|---|"
  for i in "${SEL[@]}"; do
    echo "| ${IDS[$i]} | ${FILES[$i]} | ${RAN[$i]} | $(md_escape "${KILLERS[$i]}") | $(fmt_secs "${ELAPSED[$i]:-0}") |"
  done
} >"$REPORT"
[ -z "$REPORT_COPY" ] || cp "$REPORT" "$REPORT_COPY"

w_id=8 w_file=4
for i in "${SEL[@]}"; do
  [ "${#IDS[$i]}" -le "$w_id" ] || w_id=${#IDS[$i]}
  [ "${#FILES[$i]}" -le "$w_file" ] || w_file=${#FILES[$i]}
done
echo
printf "%-${w_id}s | %-${w_file}s | %-9s | %s\n" "mutation" "file" "tests run" "killed by"
printf "%s\n" "$(printf '%*s' $((w_id + w_file + 30)) '' | tr ' ' '-')"
for i in "${SEL[@]}"; do
  printf "%-${w_id}s | %-${w_file}s | %-9s | %s\n" "${IDS[$i]}" "${FILES[$i]}" "${RAN[$i]}" "${KILLERS[$i]}"
done
echo
echo "$killed of ${#SEL[@]} mutation(s) killed; total time $(fmt_secs "$total")"
echo "report: $REPORT; logs: $LOGS"
[ "$ok_run" -eq 1 ] && exit 0
exit 1
