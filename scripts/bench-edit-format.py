#!/usr/bin/env python3
"""Edit-format check with a local model (not a timed test; results go in docs/BENCHMARKS.md).

Five small Python tasks (one on a 279-line file). For each: the files and the task, with the
instructions of `troupe_change::edit::instructions`, go to an OpenAI-compatible server at
temperature 0; the answer is applied with `apply_answer`; when something did not apply, the
outcome's `problems()` text goes back once (the automatic re-ask); then a check the model never
saw runs.

    cargo build -p troupe-change --example edit_answer
    LD_LIBRARY_PATH=$A $A/llama-server -m $M --port 18931 -c 4096 -t 2 &   # A=assets/llama
    scripts/bench-edit-format.py [auto|whole_file|search_replace]

$TROUPE_BENCH_URL (default http://127.0.0.1:18931) and $CARGO_TARGET_DIR are honoured.
"""
import json, os, shutil, subprocess, sys, tempfile, urllib.request, time
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "target"))
EX = os.path.abspath(os.path.join(TARGET, "debug", "examples", "edit_answer"))
URL = os.environ.get("TROUPE_BENCH_URL", "http://127.0.0.1:18931")
WORK = tempfile.mkdtemp(prefix="troupe-edit-bench-")
big = "\n\n".join(f"def f{i}(x):\n    \"\"\"Return x plus {i}.\"\"\"\n    return x + {i}" for i in range(70))
big = big.replace("return x + 35", "return x - 35") + "\n"
tasks = [
  ("fix-add", {"calc.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"},
   "Fix the bug: add(2, 3) returns -1 instead of 5.", "from calc import add, mul; assert add(2,3)==5 and mul(2,3)==6"),
  ("add-reverse", {"strings.py": "def upper(s):\n    return s.upper()\n"},
   "Add a function reverse(s) to strings.py that returns the string reversed.", "from strings import reverse, upper; assert reverse('abc')=='cba' and upper('a')=='A'"),
  ("empty-mean", {"stats.py": "def mean(xs):\n    return sum(xs) / len(xs)\n"},
   "mean([]) raises ZeroDivisionError; make it return 0.0 for an empty list.", "from stats import mean; assert mean([])==0.0 and mean([1,3])==2"),
  ("big-fix", {"funcs.py": big},
   "Fix the bug in f35: it must return x plus 35.", "import funcs; assert all(getattr(funcs, f'f{i}')(1)==1+i for i in range(70))"),
  ("off-by-one", {"ranges.py": "def count_up(n):\n    \"\"\"Return [1, 2, ..., n].\"\"\"\n    return list(range(1, n))\n"},
   "count_up(3) should return [1, 2, 3] but returns [1, 2]. Fix it.", "from ranges import count_up; assert count_up(3)==[1,2,3] and count_up(0)==[]"),
]
def ask(prompt, history=()):
    msgs = list(history) + [{"role":"user","content":prompt}]
    body = json.dumps({"messages":msgs,"temperature":0,"max_tokens":1500}).encode()
    req = urllib.request.Request(URL + "/v1/chat/completions", body, {"Content-Type":"application/json"})
    return json.load(urllib.request.urlopen(req, timeout=600))["choices"][0]["message"]["content"]
fmt = sys.argv[1] if len(sys.argv) > 1 else "auto"
ok = 0
for name, files, task, check in tasks:
    d = f"{WORK}/{fmt}-{name}"; shutil.rmtree(d, ignore_errors=True); os.makedirs(d)
    for f, c in files.items(): open(f"{d}/{f}", "w").write(c)
    instr = subprocess.run([EX, "instructions", fmt] + list(files), cwd=d, capture_output=True, text=True).stdout
    shown = "".join(f"{f}\n```python\n{c}```\n\n" for f, c in files.items())
    prompt = f"Task: {task}\n\nThe project's files:\n\n{shown}{instr}"
    t = time.time(); ans = ask(prompt); dt = time.time() - t
    open(f"{d}.answer", "w").write(ans)
    out = subprocess.run([EX, "apply", d, f"{d}.answer"] + list(files), capture_output=True, text=True).stdout
    if "Some of your edits" in out:
        problems = out.split("\n", 1)[1]
        ans2 = ask(problems, [{"role":"user","content":prompt},{"role":"assistant","content":ans}])
        open(f"{d}.answer2", "w").write(ans2)
        out = "re-asked: " + subprocess.run([EX, "apply", d, f"{d}.answer2"] + list(files), capture_output=True, text=True).stdout
    passed = subprocess.run([sys.executable, "-c", check], cwd=d, capture_output=True).returncode == 0
    ok += passed
    print(f"{fmt} {name}: {dt:.0f}s; {out.splitlines()[0] if out else '?'}; check {'PASS' if passed else 'FAIL'}", flush=True)
print(f"{fmt}: {ok}/{len(tasks)} passed")
