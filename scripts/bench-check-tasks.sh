#!/usr/bin/env bash
# Checks the benchmark's tasks (bench/tasks/*) without any model:
#  - the original repo's hidden tests fail (the task asks for a real change);
#  - the reference solution (solution/ copied over repo/) passes visible + hidden tests;
#  - it reports whether the visible tests already cover the change (they fail on the original).
# Usage: scripts/bench-check-tasks.sh [TASK ...]     Exit 0 when every task is sound.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tasks_dir="$root/bench/tasks"
if [ $# -gt 0 ]; then tasks=("$@"); else tasks=(); for d in "$tasks_dir"/*/; do tasks+=("$(basename "$d")"); done; fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
run_tests() { (cd "$1" && PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests >/dev/null 2>&1); }
bad=0
printf '%-20s %-16s %-16s %-12s %s\n' TASK ORIG-VISIBLE ORIG-HIDDEN SOLUTION "VISIBLE TEST OF THE CHANGE"
for t in "${tasks[@]}"; do
  d="$tasks_dir/$t"
  for f in task.txt repo/tests hidden solution; do
    [ -e "$d/$f" ] || { echo "$t: missing $f"; bad=1; continue 2; }
  done
  # original, visible only
  rm -rf "$tmp/o" && cp -r "$d/repo" "$tmp/o"
  if run_tests "$tmp/o"; then ov=pass; else ov=fail; fi
  # original + hidden: the hidden tests alone must fail
  rm -rf "$tmp/h" && mkdir -p "$tmp/h" && cp -r "$d/repo/." "$tmp/h/" && rm -f "$tmp/h"/tests/test_*.py && cp "$d"/hidden/test_hidden_*.py "$tmp/h/tests/"
  if run_tests "$tmp/h"; then oh=pass; else oh=fail; fi
  # solution + visible + hidden
  rm -rf "$tmp/s" && cp -r "$d/repo" "$tmp/s" && cp -r "$d/solution/." "$tmp/s/" && cp "$d"/hidden/test_hidden_*.py "$tmp/s/tests/"
  if run_tests "$tmp/s"; then sol=pass; else sol=fail; fi
  covered=$([ "$ov" = fail ] && echo yes || echo no)
  verdict=ok
  if [ "$oh" != fail ] || [ "$sol" != pass ]; then verdict=BAD; bad=1; fi
  printf '%-20s %-16s %-16s %-12s %-5s %s\n' "$t" "$ov" "$oh (want fail)" "$sol" "$covered" "$verdict"
done
exit $bad
