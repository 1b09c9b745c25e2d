#!/usr/bin/env python3
"""16 concurrent streams against a running `corral serve`, unconstrained (ignore_eos) or with a
json_schema response_format, 64 tokens each; prints the aggregate tokens/s. Run the two modes
alternated, several times, on the same server: the difference is the cost of the masks.

Usage: structured_serve.py URL plain|json [ROUNDS]"""
import json, sys, threading, time, urllib.request

url, mode = sys.argv[1], sys.argv[2]
rounds, n = int(sys.argv[3]) if len(sys.argv) > 3 else 1, 16
schema = {"type": "object", "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
          "notes": {"type": "string"}}, "required": ["name", "tags", "notes"], "additionalProperties": False}


def one(i, out):
    body = {"messages": [{"role": "user", "content": f"record {i}"}], "max_tokens": 64, "temperature": 1.0, "seed": i}
    if mode == "json":
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    else:
        body["ignore_eos"] = True
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    out[i % n] = json.load(urllib.request.urlopen(req))["usage"]["completion_tokens"]


tokens, seconds = 0, 0.0
for r in range(rounds):
    out = [0] * n
    t0 = time.time()
    th = [threading.Thread(target=one, args=(r * n + i, out)) for i in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    seconds += time.time() - t0
    tokens += sum(out)
print(json.dumps({"mode": mode, "tokens": tokens, "seconds": round(seconds, 2), "tok_per_s": round(tokens / seconds, 1)}))
