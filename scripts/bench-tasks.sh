#!/usr/bin/env bash
# The task benchmark: one plain call to the local model vs `troupe run --offline`, on the small
# Python tasks of bench/tasks/*, each judged afterwards by hidden tests the agents never saw.
#
#   scripts/bench-tasks.sh [--mode plain|troupe|both] [--tasks a,b] [--agent local-code]
#                          [--results DIR] [--timeout SECONDS]
#
# (a) plain: one `troupe test-agent AGENT` call (the agent's own adapter, server and generation
#     settings) with the task, every file of the task's repository and troupe's edit-format
#     instructions; the answer is parsed and applied with troupe's parser
#     (change/examples/bench_edit.rs: troupe_change::edit::{instructions, parse, apply}).
# (b) troupe: `troupe --offline run --json --project COPY "TASK"`; the run's change (its
#     workspace's base..head) is applied to the copy, whatever the run's verdict.
# Then the hidden tests are copied into tests/ and visible + hidden tests run
# (`python3 -m unittest discover -s tests`): the task succeeds when all pass.
#
# Every invocation uses its own TROUPE_HOME (a temporary folder whose assets/ links to the
# installed assets), so the user's store is untouched. Environment: TROUPE_BIN (default
# target/release/troupe, else target/debug/troupe), TROUPE_ASSETS_DIR (default
# ~/.local/share/troupe/assets), CARGO_TARGET_DIR. Results (logs per task, results.tsv,
# table.md) go to --results (default bench/results/<UTC time>, not committed).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
mode=both
agent=local-code
task_list=""
timeout_s=1800
results="$root/bench/results/$(date -u +%Y%m%dT%H%M%SZ)"

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode="${2:-}"; shift 2 ;;
    --tasks) task_list="${2:-}"; shift 2 ;;
    --agent) agent="${2:-}"; shift 2 ;;
    --results) results="${2:-}"; shift 2 ;;
    --timeout) timeout_s="${2:-}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-tasks: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$mode" in plain|troupe|both) ;; *) echo "bench-tasks: --mode must be plain, troupe or both, not '$mode'" >&2; exit 2 ;; esac

tasks_dir="$root/bench/tasks"
if [ -n "$task_list" ]; then
  IFS=, read -r -a tasks <<<"$task_list"
else
  tasks=(); for d in "$tasks_dir"/*/; do tasks+=("$(basename "$d")"); done
fi
for t in "${tasks[@]}"; do
  [ -f "$tasks_dir/$t/task.txt" ] || { echo "bench-tasks: no task '$t' in $tasks_dir (see ls bench/tasks)" >&2; exit 2; }
done

troupe="${TROUPE_BIN:-}"
if [ -z "$troupe" ]; then
  if [ -x "$target/release/troupe" ]; then troupe="$target/release/troupe"
  elif [ -x "$target/debug/troupe" ]; then troupe="$target/debug/troupe"
  else echo "bench-tasks: no troupe binary; run: cargo build --release -p troupe (or set TROUPE_BIN)" >&2; exit 2; fi
fi
bench_edit=""
for p in "$target/release/examples/bench_edit" "$target/debug/examples/bench_edit"; do
  [ -x "$p" ] && { bench_edit="$p"; break; }
done
if [ -z "$bench_edit" ]; then
  (cd "$root" && cargo build -p troupe-change --example bench_edit) >&2
  bench_edit="$target/debug/examples/bench_edit"
fi

assets="${TROUPE_ASSETS_DIR:-$HOME/.local/share/troupe/assets}"
[ -d "$assets" ] || { echo "bench-tasks: no assets at $assets; run scripts/setup.sh or set TROUPE_ASSETS_DIR" >&2; exit 2; }
home="$(mktemp -d "${TMPDIR:-/tmp}/troupe-bench-home.XXXXXX")"
ln -s "$assets" "$home/assets"
export TROUPE_HOME="$home"
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$results"
echo "bench-tasks: troupe $troupe, agent $agent, mode $mode, TROUPE_HOME $home, results $results" >&2

# A fresh git repository holding the task's repo/.
fresh_copy() {
  rm -rf "$2"; cp -r "$1/repo" "$2"
  git -C "$2" init -q -b main
  git -C "$2" -c user.name=bench -c user.email=bench@invalid add -A
  git -C "$2" -c user.name=bench -c user.email=bench@invalid commit -q -m "task start"
}
# Copies the hidden tests in and runs visible + hidden; the log gets the output.
judge() {
  cp "$1"/hidden/test_hidden_*.py "$2/tests/"
  (cd "$2" && timeout 300 python3 -m unittest discover -s tests) >"$3" 2>&1
}
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f}')" "$1" "$2"; }

printf 'task\tvisible\tplain\tplain_s\tplain_note\ttroupe\ttroupe_state\ttroupe_s\n' >"$results/results.tsv"
for t in "${tasks[@]}"; do
  src="$tasks_dir/$t"; out="$results/$t"; mkdir -p "$out"
  # Whether the visible tests already show the change (they fail on the original).
  fresh_copy "$src" "$out/original"
  if (cd "$out/original" && timeout 300 python3 -m unittest discover -s tests) >"$out/original-tests.log" 2>&1; then visible=no; else visible=yes; fi
  rm -rf "$out/original"
  plain=-; plain_s=-; plain_note=-; tr=-; tr_state=-; tr_s=-

  if [ "$mode" != troupe ]; then
    w="$out/plain-repo"; fresh_copy "$src" "$w"
    "$bench_edit" prompt "$w" "$src/task.txt" >"$out/plain-prompt.txt"
    t0=$(now)
    if timeout "$timeout_s" "$troupe" --offline test-agent "$agent" --json "$(cat "$out/plain-prompt.txt")" \
         >"$out/plain-answer.json" 2>"$out/plain-agent.log"; then
      python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"])' "$out/plain-answer.json" >"$out/plain-answer.txt"
      if "$bench_edit" apply "$w" "$out/plain-answer.txt" >"$out/plain-apply.log" 2>&1; then plain_note=applied
      else plain_note="$(head -1 "$out/plain-apply.log" | tr '\t' ' ')"; fi
    else
      plain_note="agent call failed (see plain-agent.log)"
    fi
    t1=$(now); plain_s=$(secs "$t0" "$t1")
    if judge "$src" "$w" "$out/plain-tests.log"; then plain=pass; else plain=fail; fi
    echo "$t plain: $plain in ${plain_s}s ($plain_note)" >&2
  fi

  if [ "$mode" != plain ]; then
    w="$out/troupe-repo"; fresh_copy "$src" "$w"
    t0=$(now)
    timeout "$timeout_s" "$troupe" --offline run --json --project "$w" "$(cat "$src/task.txt")" \
      >"$out/troupe-run.jsonl" 2>"$out/troupe-run.log" || true
    t1=$(now); tr_s=$(secs "$t0" "$t1")
    # The run's id from its events, then its record for the workspace.
    id="$(python3 - "$out/troupe-run.jsonl" <<'PY'
import json, sys
ident = ""
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    line = line.strip()
    if not line.startswith("{"):
        continue
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if not isinstance(v, dict):
        continue
    if isinstance(v.get("id"), str) and "state" in v:
        ident = v["id"]  # the final run record
        continue
    stack = [v]
    while stack and not ident:
        x = stack.pop()
        if isinstance(x, dict):
            if isinstance(x.get("run_id"), str) and x["run_id"]:
                ident = x["run_id"]
            stack.extend(x.values())
print(ident)
PY
)"
    if [ -n "$id" ] && "$troupe" --offline runs show "$id" --json >"$out/troupe-record.json" 2>>"$out/troupe-run.log"; then
      read -r tr_state wdir base head < <(python3 - "$out/troupe-record.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r = r.get("run", r)
ws = r.get("workspace") or {}
print(r.get("state", "?"), ws.get("dir", "-"), ws.get("base", "-"), ws.get("head", "-"))
PY
)
      if [ "$base" != - ] && [ "$head" != - ] && [ "$base" != "$head" ]; then
        git -C "$w" diff --binary "$base" "$head" >"$out/troupe-change.patch"
        git -C "$w" apply "$out/troupe-change.patch" 2>>"$out/troupe-run.log" || echo "the run's patch did not apply" >>"$out/troupe-run.log"
      else
        : >"$out/troupe-change.patch"
      fi
    else
      tr_state="no-record"
    fi
    if judge "$src" "$w" "$out/troupe-tests.log"; then tr=pass; else tr=fail; fi
    echo "$t troupe: $tr (run $tr_state) in ${tr_s}s" >&2
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$visible" "$plain" "$plain_s" "$plain_note" "$tr" "$tr_state" "$tr_s" >>"$results/results.tsv"
done

# The table, in Markdown, with the model and the machine.
model="$("$troupe" --offline agents --json 2>/dev/null | python3 -c 'import json,sys
a=[x for x in json.load(sys.stdin) if x.get("name")==sys.argv[1]]
print(a[0].get("model","?") if a else "?")' "$agent" || echo "?")"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
mem="$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?)"
python3 - "$results/results.tsv" "$results/table.md" "$agent" "$model" "$cpu" "$(nproc)" "$mem" "$commit" "$(basename "$troupe")" "$troupe" <<'PY'
import csv, sys, datetime
tsv, md, agent, model, cpu, cores, mem, commit, _, binary = sys.argv[1:11]
rows = list(csv.DictReader(open(tsv), delimiter="\t"))
def rate(key):
    ran = [r for r in rows if r[key] in ("pass", "fail")]
    ok = sum(r[key] == "pass" for r in ran)
    return ok, len(ran)
out = []
out.append(f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, troupe {commit} ({binary}), "
           f"agent `{agent}` (model `{model}`), {cores} cores ({cpu}), {mem}.\n")
out.append("| Task | Visible test of the change | (a) plain | (a) s | (b) troupe | (b) run state | (b) s |")
out.append("|---|---|---|---|---|---|---|")
for r in rows:
    out.append(f"| {r['task']} | {r['visible']} | {r['plain']} | {r['plain_s']} | {r['troupe']} | {r['troupe_state']} | {r['troupe_s']} |")
pa, pn = rate("plain")
ta, tn = rate("troupe")
def pct(a, n):
    return f"{a}/{n} ({100 * a / n:.0f}%)" if n else "-"
out.append("")
out.append(f"- (a) one plain call: {pct(pa, pn)}")
out.append(f"- (b) troupe run --offline with validators: {pct(ta, tn)}")
if pn and tn and pa:
    out.append(f"- (b) / (a) = {(ta / tn) / (pa / pn):.2f}")
for key, label in (("plain_s", "(a)"), ("troupe_s", "(b)")):
    secs = [float(r[key]) for r in rows if r[key] not in ("-", "")]
    if secs:
        out.append(f"- {label} wall time per task: mean {sum(secs) / len(secs):.0f} s, max {max(secs):.0f} s")
text = "\n".join(out) + "\n"
open(md, "w").write(text)
print(text)
PY
echo "bench-tasks: logs and table in $results (TROUPE_HOME $home is kept for 'troupe runs show')" >&2
