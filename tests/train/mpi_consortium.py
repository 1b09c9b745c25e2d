#!/usr/bin/python3
"""Consortium training across processes with Open MPI's mpirun, and its metering.

1. Two ranks (`mpirun -np 1 ... : -np 1 ...`, each its own --member and its own --data: the
   even and odd records of the combined data) write bitwise the adapter one process writes with
   --grad-accum 2 over the combined data (AdamW, dropout, shuffled).
2. Each rank's compute is recorded in the ledger as its member's contribution to the job; a
   single-process job's recorded CPU time is within 5% of what getrusage (wait4) says it used.
3. A rank killed with SIGKILL mid-job fails the job; resumed from its last checkpoint, the final
   adapter equals the uninterrupted one; resumed with the remaining rank only, the dead rank's
   micro-batches are skipped and the loss is normalised over the remaining rank's tokens.
4. The consortium statement recomputed here from the journal with exact integers: per job the
   cost, its largest-remainder parts by share, each member's compute, money and balance.
Usage: mpi_consortium.py CORRAL_BIN FIXTURES_DIR WORK_DIR
"""
import json, os, shutil, signal, sqlite3, subprocess, sys, time

BIN, FIX, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
if not shutil.which("mpirun"):
    print("mpirun is missing (make deps installs openmpi-bin)")
    sys.exit(77)
TEXT = "/usr/share/common-licenses/GPL-3"
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
os.environ.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
DB = os.path.join(WORK, "ledger.db")
os.environ["CORRAL_LEDGER"] = "sqlite:" + DB
failures = []


def check(what, ok, detail=""):
    print(f"  {'ok ' if ok else 'BAD'} {what}: {detail}")
    if not ok:
        failures.append(what)


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"corral {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def mpirun(ranks, common, extra=()):
    """ranks: [(member, data, *own arguments)], one mpirun app context each."""
    cmd = ["mpirun", "--oversubscribe"]
    for i, (member, data, *own) in enumerate(ranks):
        if i:
            cmd.append(":")
        cmd += ["-np", "1", BIN, "finetune", *common, "--data", data, *extra, *own]
        if member:
            cmd += ["--member", member]
    return cmd


model = os.path.join(WORK, "m.gguf")
run("convert", os.path.join(FIX, "llama2c", "aidreams260K.bin"), model, "--tokenizer", os.path.join(FIX, "llama2c", "tok512.bin"))
paras = [" ".join(p.split()) for p in open(TEXT).read().split("\n\n") if len(p.split()) >= 12][:40]
files = {}
for name, ps in (("all", paras), ("r0", paras[0::2]), ("r1", paras[1::2])):
    files[name] = os.path.join(WORK, name + ".jsonl")
    with open(files[name], "w") as f:
        f.writelines(json.dumps({"text": p}) + "\n" for p in ps)

for t in ("acme", "globex", "initech"):
    run("tenant", "add", t)
run("consortium", "create", "llamas", "--compute-price", "0.75")
for org, t, share in (("Acme", "acme", "50"), ("Globex", "globex", "33.33"), ("Initech", "initech", "16.67")):
    run("consortium", "member", "add", "llamas", org, "--tenant", t, "--share", share)
run("consortium", "contribute", "llamas", "Acme", "--amount", "1000.25", "--ref", "wire 1")

common = ["-m", model, "--ctx", "128", "--batch-tokens", "900", "--steps", "10", "--rank", "4", "--lr", "1e-3", "--warmup", "2",
          "--dropout", "0.1", "--shuffle", "--seed", "3", "--no-progress", "-t", "1"]
# 1. Two ranks against one process.
one, two = os.path.join(WORK, "one.gguf"), os.path.join(WORK, "two.gguf")
run("finetune", *common, "--data", files["all"], "--grad-accum", "2", "-o", one)
log = os.path.join(WORK, "two.jsonl")
r = subprocess.run(mpirun([("Acme", files["r0"]), ("Globex", files["r1"])], common,
                          ["-o", two, "--consortium", "llamas", "--job", "j1", "--log", log, "--register", "custom-j1", "--register-base", "base"]), capture_output=True, text=True)
check("mpirun with 2 ranks succeeds", r.returncode == 0, r.stderr[-500:])
check("2 ranks = 1 process with --grad-accum 2, bitwise", open(one, "rb").read() == open(two, "rb").read())
lines = [json.loads(l) for l in open(log)]
check("the log records each member's trained tokens", all(set(l["member_tokens"]) == {"Acme", "Globex"} and
      sum(l["member_tokens"].values()) == l["tokens"] for l in lines), json.dumps(lines[-1].get("member_tokens")))
# A rank with the wrong share of the records is refused by name.
r = subprocess.run(mpirun([(None, files["all"]), (None, files["r1"])], common, ["-o", os.path.join(WORK, "x.gguf")]), capture_output=True, text=True)
check("ranks whose data do not interleave are refused", r.returncode != 0 and "record i of the combined data" in r.stderr, r.stderr.strip()[-200:])

# --mix by-share: Acme (50%) holds 10 records, Initech (16.67%) 30, all of 20 tokens; the job's 40
# records split 30 : 10 by share (largest remainder), Acme's taken round again, Initech's first 10.
for name, n in (("acme_ids", 10), ("initech_ids", 30)):
    files[name] = os.path.join(WORK, name + ".jsonl")
    with open(files[name], "w") as f:
        f.writelines(json.dumps({"ids": [1 + (7 * i + 13 * k + (name == "acme_ids") * 101) % 500 for k in range(20)]}) + "\n" for i in range(n))
mix_common = ["-m", model, "--ctx", "128", "--batch-tokens", "200", "--rank", "4", "--seed", "3", "--no-progress", "-t", "1"]
mlog = os.path.join(WORK, "mix.jsonl")
r = subprocess.run(mpirun([("Acme", files["acme_ids"]), ("Initech", files["initech_ids"])], mix_common,
                          ["-o", os.path.join(WORK, "mix.gguf"), "--mix", "by-share", "--consortium", "llamas", "--job", "jmix", "--log", mlog]),
                   capture_output=True, text=True)
check("mpirun --mix by-share succeeds", r.returncode == 0, r.stderr[-500:])
mix_lines = [json.loads(l) for l in open(mlog)] if r.returncode == 0 else []
tot = {o: sum(l["member_tokens"].get(o, 0) for l in mix_lines) for o in ("Acme", "Initech")}
check("members' trained tokens follow their shares (30 : 10 records of 20 tokens)", tot == {"Acme": 600, "Initech": 200} and len(mix_lines) == 4, json.dumps(tot))
check("every step of the mix is near the shares (7-8 of 10 records Acme's)",
      all(140 <= l["member_tokens"].get("Acme", 0) <= 160 for l in mix_lines), json.dumps([l["member_tokens"] for l in mix_lines]))
r = subprocess.run([BIN, "finetune", *mix_common, "--data", files["acme_ids"], "-o", os.path.join(WORK, "x.gguf"), "--mix", "by-share"], capture_output=True, text=True)
check("--mix by-share without a consortium is refused", r.returncode != 0 and "--consortium" in r.stderr, r.stderr.strip()[-200:])


def events(kind):
    db = sqlite3.connect(DB)
    rows = db.execute("SELECT body, at_ms FROM consortium_events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
    db.close()
    return [dict(json.loads(b), at_ms=a) for b, a in rows]


j1 = [e for e in events("compute") if e["job"] == "j1"]
check("each rank's compute recorded for its member", {e["org"] for e in j1} == {"Acme", "Globex"} and all(e["cpu_us"] > 0 and e["flops"] > 0 for e in j1),
      f"{len(j1)} records")

models = events("model")
check("the job's adapter registered once, by rank 0, members only", len(models) == 1 and models[0]["model_id"] == "custom-j1" and
      models[0]["adapter"] == two and models[0]["base"] == "base" and models[0]["public"] is False, json.dumps(models))
# 2. Metering against getrusage.
solo = common[:common.index("--steps")] + ["--steps", "60"] + common[common.index("--steps") + 2:]
p = subprocess.Popen([BIN, "finetune", *solo, "--data", files["all"], "-o", os.path.join(WORK, "solo.gguf"),
                      "--consortium", "llamas", "--member", "Initech", "--job", "j2"], stderr=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
used = ru.ru_utime + ru.ru_stime
rec = sum(e["cpu_us"] for e in events("compute") if e["job"] == "j2") / 1e6
check("recorded compute within 5% of getrusage", status == 0 and abs(rec - used) <= 0.05 * used, f"{rec:.3f} s recorded, {used:.3f} s used")

# 3. A rank killed mid-job, resumed: with both ranks again (equal to the uninterrupted run), and
# with the one that remains (the dead rank's micro-batches skipped from there on).
slow = common[:common.index("--steps")] + ["--steps", "60"] + common[common.index("--steps") + 2:]
whole, wlog = os.path.join(WORK, "whole.gguf"), os.path.join(WORK, "whole.jsonl")
run("finetune", *slow, "--data", files["all"], "--grad-accum", "2", "-o", whole, "--log", wlog)
both = [("Acme", files["r0"]), ("Globex", files["r1"])]


def kill_mid_job(ck, out, job):
    """Starts the two-rank job, SIGKILLs the Globex rank once step-2 is checkpointed."""
    m = subprocess.Popen(mpirun(both, slow, ["-o", out, "--checkpoint", ck, "--checkpoint-every", "1", "--consortium", "llamas", "--job", job]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, victim = time.time() + 120, None
    while time.time() < deadline and victim is None:
        if os.path.isdir(os.path.join(ck, "step-2")):
            out_ = subprocess.run(["pgrep", "-f", "--", f"^{BIN} finetune .*--data {files['r1']}"], capture_output=True, text=True).stdout.split()
            if out_:
                victim = int(out_[0])
                os.kill(victim, signal.SIGKILL)
        time.sleep(0.002)
    rc = m.wait(60)
    steps_done = sorted(int(d[5:]) for d in os.listdir(ck) if d.startswith("step-"))
    check(f"the killed job {job} fails", victim is not None and rc > 0 and not os.path.exists(out) and steps_done[-1] < 60, f"rc {rc}, checkpoints {steps_done[-3:]}")
    return steps_done[-1]


ck, killed = os.path.join(WORK, "ck"), os.path.join(WORK, "killed.gguf")
kill_mid_job(ck, killed, "j3")
j3log = os.path.join(WORK, "j3.jsonl")
# Only rank 0's machine holds the checkpoints: rank 1's --resume names a folder it does not have.
r = subprocess.run(mpirun([("Acme", files["r0"], "--resume", ck), ("Globex", files["r1"], "--resume", os.path.join(WORK, "not-on-this-host"))], slow,
                          ["-o", killed, "--checkpoint", ck, "--checkpoint-every", "1", "--consortium", "llamas", "--job", "j3", "--log", j3log]),
                   capture_output=True, text=True)
check("resumed from the last checkpoint (rank 0's, sent to rank 1), it equals the uninterrupted run", r.returncode == 0 and os.path.exists(killed) and
      open(killed, "rb").read() == open(whole, "rb").read(), "\n".join(l for l in r.stderr.splitlines() if "error" in l)[-600:])

ck4, fewer, flog = os.path.join(WORK, "ck4"), os.path.join(WORK, "fewer.gguf"), os.path.join(WORK, "fewer.jsonl")
last = kill_mid_job(ck4, fewer, "j4")
shutil.copytree(ck4, ck4 + "-copy")
r = subprocess.run(mpirun([("Initech", files["r0"])], slow, ["-o", fewer, "--resume", ck4, "--consortium", "llamas", "--job", "j4"]), capture_output=True, text=True)
check("a rank of a member that was not in the job cannot resume it", r.returncode != 0 and "stands for none of the job's ranks" in r.stderr, r.stderr.strip()[-300:])
r = subprocess.run(mpirun([("Acme", files["r0"])], slow, ["-o", fewer, "--checkpoint", ck4, "--checkpoint-every", "1", "--resume", ck4,
                                                          "--consortium", "llamas", "--job", "j4", "--log", flog]), capture_output=True, text=True)
check("the job resumes with the one rank that remains", r.returncode == 0 and os.path.exists(fewer) and "are skipped" in r.stderr, r.stderr.strip()[-400:])
wl = {l["step"]: l for l in map(json.loads, open(wlog))}
bl = {l["step"]: l for l in map(json.loads, open(j3log))} if os.path.exists(j3log) else {}
fl = [json.loads(l) for l in open(flog)] if os.path.exists(flog) else []
check("after the resume only Acme's micro-batches train (the same tokens as in the two-rank run), the loss over their tokens alone",
      [f["step"] for f in fl] == list(range(last + 1, 61)) and
      all(set(f["member_tokens"]) == {"Acme"} and f["predicted"] <= wl[f["step"]]["predicted"] for f in fl) and
      sum(f["predicted"] for f in fl) < sum(wl[f["step"]]["predicted"] for f in fl) and
      all(f["member_tokens"]["Acme"] == bl[f["step"]]["member_tokens"]["Acme"] for f in fl if f["step"] in bl) and len(bl) > 50,
      json.dumps([(f["step"], f["predicted"], wl[f["step"]]["predicted"]) for f in fl[:3]]))
check("so its adapter differs from the uninterrupted one", os.path.exists(fewer) and open(fewer, "rb").read() != open(whole, "rb").read())
solo_out = os.path.join(WORK, "fewer-solo.gguf")
run("finetune", *slow, "--data", files["r0"], "-o", solo_out, "--resume", ck4 + "-copy", "--member", "Acme", "--consortium", "llamas", "--job", "j4b")
check("resumed by one process without mpirun, bitwise the same", os.path.exists(fewer) and open(solo_out, "rb").read() == open(fewer, "rb").read())

# The loss normalisation with a rank absent, against an independent computation: an SGD job of
# two ranks (40 records of 20 ids, 10 per step; no shuffle, no dropout, constant lr, no clipping)
# resumed at step 2 by rank 0 alone; its step 3 must be one SGD step from the step-2 adapter over
# rank 0's records of step 3 alone (combined records 20, 22, ..., 28: its own 10..14), done by a
# plain single process with --init-adapter.
ids = [[1 + (11 * i + 17 * k) % 500 for k in range(20)] for i in range(40)]
for name, sel in (("ids_r0", ids[0::2]), ("ids_r1", ids[1::2]), ("ids_step3", ids[20:30:2])):
    files[name] = os.path.join(WORK, name + ".jsonl")
    with open(files[name], "w") as f:
        f.writelines(json.dumps({"ids": x}) + "\n" for x in sel)
sgd = ["-m", model, "--ctx", "128", "--batch-tokens", "200", "--rank", "4", "--seed", "5", "--no-progress", "-t", "1",
       "--optimizer", "sgd", "--schedule", "constant", "--lr", "0.05", "--clip", "0"]
ckS, ckR = os.path.join(WORK, "ckS"), os.path.join(WORK, "ckR")
r = subprocess.run(mpirun([(None, files["ids_r0"]), (None, files["ids_r1"])], sgd, ["-o", os.path.join(WORK, "s2.gguf"), "--checkpoint", ckS, "--checkpoint-every", "1"]),
                   capture_output=True, text=True)
check("the two-rank SGD job runs", r.returncode == 0, r.stderr[-300:])
os.makedirs(ckR)
shutil.copytree(os.path.join(ckS, "step-2"), os.path.join(ckR, "step-2"))
run("finetune", *sgd, "--data", files["ids_r0"], "-o", os.path.join(WORK, "s1.gguf"), "--resume", ckR, "--checkpoint", ckR, "--checkpoint-every", "1")
ref = os.path.join(WORK, "sgd-ref.gguf")
run("finetune", *sgd, "--data", files["ids_step3"], "-o", ref, "--init-adapter", os.path.join(ckS, "step-2", "adapter.gguf"), "--steps", "1")
for src, dst in ((os.path.join(ckR, "step-3", "adapter.gguf"), "got_peft"), (ref, "ref_peft")):
    run("convert", src, os.path.join(WORK, dst), "--format", "peft")
same = open(os.path.join(WORK, "got_peft", "adapter_model.safetensors"), "rb").read() == open(os.path.join(WORK, "ref_peft", "adapter_model.safetensors"), "rb").read()
check("a step with a rank absent = one step over the present rank's records alone, bitwise", same)

# 4. The statement, recomputed here.
st = json.loads(run("consortium", "statement", "llamas", "--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z", "--format", "json"))
PRICE = 750000  # micro-units per CPU hour


def rhe(num, den):  # round half to even, integers
    q, r = divmod(num, den)
    return q + (1 if 2 * r > den or (2 * r == den and q % 2) else 0)


def split(amount, weights):
    tot = sum(weights)
    base = [amount * w // tot for w in weights]
    rem = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % tot), i))
    for i in rem[: amount - sum(base)]:
        base[i] += 1
    return base


orgs, shares = ["Acme", "Globex", "Initech"], [5000, 3333, 1667]
comp = events("compute")
want_compute, want_costs = dict.fromkeys(orgs, 0), dict.fromkeys(orgs, 0)
ok_jobs = True
for job in sorted({e["job"] for e in comp}):
    recs = [e for e in comp if e["job"] == job]
    cost = rhe(sum(e["cpu_us"] for e in recs) * PRICE, 3600 * 10**6)
    parts = split(cost, shares)
    got = next(j for j in st["jobs"] if j["job"] == job)
    ok_jobs &= got["cost"] == cost and [p["amount"] for p in got["parts"]] == parts and sum(parts) == cost
    for o, p in zip(orgs, parts):
        want_costs[o] += p
    for o in orgs:
        us = sum(e["cpu_us"] for e in recs if e["org"] == o)
        if us:
            want_compute[o] += rhe(us * PRICE, 3600 * 10**6)
check("every job's cost and parts", ok_jobs and len(st["jobs"]) == 6, json.dumps([(j["job"], j["cost"]) for j in st["jobs"]]))
money = {"Acme": 1000250000, "Globex": 0, "Initech": 0}
ok_members = True
for m_ in st["members"]:
    o = m_["member"]
    ok_members &= (m_["money"], m_["compute"], m_["costs"], m_["revenue"]) == (money[o], want_compute[o], want_costs[o], 0)
    ok_members &= m_["balance"] == money[o] + want_compute[o] - want_costs[o]
check("every member's money, compute, costs and balance", ok_members, json.dumps(st["members"]))
# 5. Closing the period: signed with the host's key, then regenerated byte for byte.
key = os.path.join(WORK, "host.key")
run("statement", "keygen", "-o", key)
closed = os.path.join(WORK, "closed.json")
period = ["--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z"]
run("consortium", "close", "llamas", *period, "--key", key, "-o", closed)
again = run("consortium", "statement", "llamas", *period, "--format", "json")
check("a closed period's statement is its signed body, byte for byte", again == open(closed).read() and '"signature"' in again)
v = subprocess.run([BIN, "statement", "verify", closed, "--public-key", key[:-4] + ".pub"], capture_output=True, text=True)
check("its signature verifies", v.returncode == 0 and "signature valid" in v.stderr + v.stdout, (v.stderr + v.stdout).strip()[-200:])
o = subprocess.run([BIN, "consortium", "close", "llamas", "--from", "2050-01-01T00:00:00Z", "--to", "2200-01-01T00:00:00Z", "--key", key], capture_output=True, text=True)
check("an overlapping period cannot be closed", o.returncode == 1 and "overlaps" in o.stderr, o.stderr.strip())
print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
