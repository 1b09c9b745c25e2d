#!/usr/bin/env python3
"""Corral's Jinja engine against Python's jinja2 (oracle.py): every template given, over every
conversation in conversations.json, with the generation prompt on and off; byte-equal output or
both raising. Usage: compare.py CORRAL TEMPLATE_OR_DIR... [--conversations FILE] [--verbose]"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

BOS, EOS, NOW = "<|begin_of_text|>", "<|eot_id|>", "2024-09-15"


def corral_render(corral, tpl_path, conv_path, gen):
    cmd = [corral, "template", "render", "--template", tpl_path, "--input", conv_path,
           "--bos-token", BOS, "--eos-token", EOS, "--now", NOW]
    if not gen:
        cmd.append("--no-generation-prompt")
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    if p.returncode == 0:
        return True, p.stdout.decode("utf-8")
    err = p.stderr.decode("utf-8", "replace").strip()
    if p.returncode != 1 or not err.startswith("error: ") or "\n" in err:
        return None, f"exit {p.returncode}: {err}"  # a crash or a malformed error: always a failure
    return False, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corral")
    ap.add_argument("templates", nargs="+")
    ap.add_argument("--conversations", default=os.path.join(os.path.dirname(__file__), "conversations.json"))
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    files = []
    for t in a.templates:
        if os.path.isdir(t):
            files += sorted(os.path.join(t, f) for f in os.listdir(t) if f.endswith(".jinja"))
        else:
            files.append(t)
    convs = json.load(open(a.conversations))
    passed = failed = raising = 0
    with tempfile.TemporaryDirectory() as tmp:
        conv_paths = {}
        for name, conv in convs.items():
            conv_paths[name] = os.path.join(tmp, name + ".json")
            json.dump(conv, open(conv_paths[name], "w"), ensure_ascii=False)
        # Corral runs as one process per render; two at a time, beside the Python renders.
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        runs = {(f, name, gen): pool.submit(corral_render, a.corral, f, conv_paths[name], gen)
                for f in files for name in convs for gen in (True, False)}
        for f in files:
            src = open(f, encoding="utf-8").read()
            bad = []
            for name, conv in convs.items():
                for gen in (True, False):
                    ok_py, want = oracle.render(src, conv, BOS, EOS, gen, NOW)
                    ok_c, got = runs[(f, name, gen)].result()
                    same = (ok_py and ok_c and want == got) or (not ok_py and ok_c is False)
                    if same:
                        passed += 1
                        raising += not ok_py
                    else:
                        failed += 1
                        bad.append((name, gen, ok_py, want, ok_c, got))
            status = "ok" if not bad else f"{len(bad)} differ"
            print(f"{os.path.basename(f)}: {status}")
            for name, gen, ok_py, want, ok_c, got in bad[: (50 if a.verbose else 2)]:
                print(f"  {name} gen={gen}: jinja2 {'ok' if ok_py else 'raised'}, corral {'ok' if ok_c else 'raised' if ok_c is False else 'CRASHED'}")
                print(f"    jinja2: {want[:600]!r}")
                print(f"    corral: {got[:600]!r}")
        pool.shutdown()
    print(f"{passed} passed, {failed} failed ({raising} of the passes raise in both)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
