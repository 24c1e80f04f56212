#!/usr/bin/env python3
"""Review accuracy of a local model on a small labelled set (docs/BENCHMARKS.md).

Six small Python changes, three buggy (each with its failing test output) and three correct
(with their passing test output), reviewed with and without the test evidence in the prompt,
through a JSON schema that puts reasoning and findings before the verdict (maxLength and
maxItems bound a looping model). Temperature 0, the built-in local agents' sampling settings.

    A=~/.local/share/troupe/assets
    LD_LIBRARY_PATH=$A/llama $A/llama/llama-server -m $A/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
        --port 18777 -t 1 -tb 2 -c 8192 -np 1 &
    scripts/review_accuracy.py 18777 qwen2.5-coder-1.5b

Talks to llama-server's OpenAI-compatible endpoint directly (standard library only).
"""
import json, urllib.request, sys, time
port = int(sys.argv[1])
schema = {"type":"object","properties":{
  "reasoning":{"type":"string","maxLength":600},
  "findings":{"type":"array","maxItems":5,"items":{"type":"string","maxLength":200}},
  "verdict":{"type":"string","enum":["approve","request_changes"]}},
  "required":["reasoning","findings","verdict"]}
cases = [
 ("def reverse(s):\n    return s[1:][::-1]\n", "FAILED test_reverse: assert reverse('abc') == 'cba'; got 'cb'", "request_changes"),
 ("def reverse(s):\n    return s[::-1]\n", "1 passed", "approve"),
 ("def is_even(n):\n    return n % 2 == 1\n", "FAILED test_even: assert is_even(4) is True; got False", "request_changes"),
 ("def add(a, b):\n    return a + b\n", "3 passed", "approve"),
 ("def maximum(xs):\n    m = 0\n    for x in xs:\n        if x > m:\n            m = x\n    return m\n", "FAILED test_negative: assert maximum([-3, -1]) == -1; got 0", "request_changes"),
 ("def count_words(s):\n    return len(s.split())\n", "2 passed", "approve"),
]
for rp, evidence in [(1.1, True), (1.1, False)]:
    right = 0; t0 = time.time()
    for code, tests, want in cases:
        if evidence:
            prompt = f"Review this change. The project's tests ran on it.\n\nCode:\n```python\n{code}```\n\nTest results:\n{tests}\n\nGive your reasoning, then findings, then the verdict."
        else:
            prompt = f"Review this change. No tests were run.\n\nCode:\n```python\n{code}```\n\nGive your reasoning, then findings, then the verdict."
        body = {"messages":[{"role":"user","content":prompt}],"temperature":0,"max_tokens":400,"repeat_penalty":rp,"top_k":40,"top_p":0.9,"min_p":0.05,
                "response_format":{"type":"json_schema","json_schema":{"name":"review","schema":schema,"strict":True}}}
        r = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type":"application/json"}), timeout=600)
        out = json.load(r)["choices"][0]["message"]["content"]
        try:
            v = json.loads(out)["verdict"]
        except Exception as e:
            v = f"unparseable {e}"
        right += (v == want)
        print(rp, want, v, flush=True)
    print(f"{sys.argv[2]} evidence={evidence}: {right}/{len(cases)} in {time.time()-t0:.0f}s", flush=True)
