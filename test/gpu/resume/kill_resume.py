"""SIGKILL at random moments on the GPU, then --resume latest, until the run is done (one H200).

  python3 test/gpu/resume/kill_resume.py PROGRAM NODE RUN_ENTRY OUTDIR [--steps N] [--rounds R] [--seed S]

PROGRAM is a compiled and built fpdtc program (one rank), NODE the node binary, RUN_ENTRY the
bundled `fpdtc run`. The driver
  1. runs N steps straight (`--save` of the final fp32 weights, `--metrics`);
  2. runs the same N steps with `--save-every 1 --keep-checkpoints 3 --checkpoint-dir`, killing the
     process with SIGKILL at a random moment (anywhere from start-up to the last step's save), and
     resumes it with `--resume latest` (a fresh start while no checkpoint exists yet), again and
     again, until a round finishes;
  3. after every kill: `latest` names a complete checkpoint (trainer.json parses, every tensor of its
     weights and moments reads back), whose step never goes back, and whatever the kill left
     half-written is reported (a kill during a save leaves a .partial folder, never a broken one);
  4. at the end, against the straight run: every step's loss, in every round that printed it, and
     the final weights (relative norm of the difference per tensor). The programs' float atomics
     (the attention backward's dq, the ZeRO reductions) make two straight runs differ too, so a
     second straight run measures that noise, and the gate is: a loss within the printed digit
     (1e-4) plus twice the largest loss difference of the two straight runs, the weights within
     twice theirs (at least 1e-3). Both figures are printed.
Writes OUTDIR/kill-resume.json and the rounds' logs; exits 1 if a gate fails.
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

from safetensors import safe_open

ap = argparse.ArgumentParser()
ap.add_argument("program")
ap.add_argument("node")
ap.add_argument("run_entry")
ap.add_argument("out")
ap.add_argument("--steps", type=int, default=24)
ap.add_argument("--rounds", type=int, default=12)
ap.add_argument("--seed", type=int, default=2026)
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
work = "/tmp/fpdt-kill-resume"
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
ck = os.path.join(work, "ck")
rng = random.Random(a.seed)
common = ["--steps", str(a.steps), "--lr", "1e-3", "--warmup", "4", "--schedule", "cosine", "--min-lr", "1e-4"]


def fpdtc(args, log):
    return subprocess.Popen([a.node, a.run_entry, a.program, *args], stdout=log, stderr=subprocess.STDOUT)


def losses(path):
    """step -> loss as printed, from a run's log"""
    text = open(path).read()
    if not text.endswith("\n"):  # a line cut by the kill
        text = text[: text.rfind("\n") + 1]
    return {int(s): l for s, l in re.findall(r"^step (\d+)\s+loss (\S+)", text, re.M)}


def tensors(path):
    out = {}
    files = [path] if path.endswith(".safetensors") else [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".safetensors")]
    for f in files:
        with safe_open(f, "pt") as h:
            for k in h.keys():
                out[k] = h.get_tensor(k)
    return out


def complete(step_dir):
    """reads a checkpoint whole: trainer.json, every weight and moment tensor; returns its step"""
    st = json.load(open(os.path.join(step_dir, "trainer.json")))
    n = 0
    for root, _, files in os.walk(step_dir):
        for f in files:
            if f.endswith(".safetensors"):
                n += len(tensors(os.path.join(root, f)))
    if n == 0:
        raise RuntimeError(f"{step_dir}: no tensors")
    return st["step"]


result = {"steps": a.steps, "rounds": [], "pass": False}
# 1. straight, twice (the second measures the run-to-run noise of float atomics)
for name in ("straight", "straight-2"):
    t0 = time.time()
    with open(os.path.join(a.out, f"{name}.log"), "w") as log:
        rc = fpdtc([*common, "--save", os.path.join(work, f"{name}.safetensors")], log).wait()
    straight_s = time.time() - t0
    printed = losses(os.path.join(a.out, f"{name}.log"))
    result[name] = {"rc": rc, "seconds": round(straight_s, 1), "losses": printed}
    if rc != 0 or len(printed) != a.steps:
        print(json.dumps(result))
        sys.exit(1)
straight, straight2 = result["straight"]["losses"], result["straight-2"]["losses"]
noise_loss = max(abs(float(straight[s]) - float(straight2[s])) for s in straight)

# 2-3. killed and resumed
last, done, failures = 0, False, []
for r in range(a.rounds):
    args = [*common, "--save-every", "1", "--keep-checkpoints", "3", "--checkpoint-dir", ck,
            "--save", os.path.join(work, "killed.safetensors")]
    if os.path.exists(os.path.join(ck, "latest")):
        args += ["--resume", "latest"]
    # a moment anywhere in a straight run's length (start-up included); the last rounds run out
    # (a save a step makes the killed runs longer: about a third of a second each for the test models)
    delay = rng.uniform(0.3, 1.1 * straight_s + 0.35 * a.steps) if r < a.rounds - 1 else None
    logp = os.path.join(a.out, f"round-{r}.log")
    with open(logp, "w") as log:
        p = fpdtc(args, log)
        try:
            rc = p.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
            killed = True
    partial = sorted(f for f in os.listdir(ck) if "partial" in f) if os.path.isdir(ck) else []
    entry = {"round": r, "killed_after_s": round(delay, 2) if killed else None, "rc": rc, "steps_printed": sorted(losses(logp)), "partial_left": partial}
    if os.path.exists(os.path.join(ck, "latest")):
        name = open(os.path.join(ck, "latest")).read().strip()
        try:
            step = complete(os.path.join(ck, name))
            entry["latest"] = step
            if step < last:
                failures.append(f"round {r}: latest went back from step {last} to {step}")
            last = step
        except Exception as e:  # noqa: BLE001
            failures.append(f"round {r}: latest ({name}) is not a complete checkpoint: {e}")
    result["rounds"].append(entry)
    print(json.dumps(entry), flush=True)
    if killed and entry.get("latest") == a.steps:
        # killed after the last step's checkpoint, before --save: a resume has nothing left to run
        # (it is refused), so the checkpoint's weights are the run's result
        done = True
        break
    if not killed:
        if rc != 0:
            failures.append(f"round {r}: the run failed (rc {rc}), see round-{r}.log")
        done = rc == 0
        break

# 4. the same losses, the same weights, within the noise of two straight runs
loss_gate = 1e-4 + 2 * noise_loss + 1e-9
worst_loss = 0.0
for r in result["rounds"]:
    for s, l in losses(os.path.join(a.out, f"round-{r['round']}.log")).items():
        d = abs(float(l) - float(straight[s])) if s in straight else float("inf")
        worst_loss = max(worst_loss, d)
        if d > loss_gate:
            failures.append(f"round {r['round']}: step {s} loss {l}, straight {straight.get(s)} (gate {loss_gate:.1e})")
result["loss_diff_max"] = {"killed_vs_straight": worst_loss, "straight_vs_straight2": noise_loss, "gate": loss_gate,
                           "steps_equal_as_printed": sum(1 for r in result["rounds"] for s, l in losses(os.path.join(a.out, f"round-{r['round']}.log")).items() if straight.get(s) == l),
                           "steps_printed": sum(len(r["steps_printed"]) for r in result["rounds"])}
if done:
    final = os.path.join(work, "killed.safetensors")
    if not os.path.exists(final):
        final = os.path.join(ck, open(os.path.join(ck, "latest")).read().strip())
    ws, w2 = (tensors(os.path.join(work, f"{n}.safetensors")) for n in ("straight", "straight-2"))
    wk = tensors(final)
    relf = lambda x, y: {k: float((x[k].double() - y[k].double()).norm() / x[k].double().norm().clamp_min(1e-30)) for k in x}  # noqa: E731
    rel, noise = relf(ws, wk), relf(ws, w2)
    worst, nworst = max(rel, key=rel.get), max(noise, key=noise.get)
    gate = max(1e-3, 2 * noise[nworst])
    result["weights_rel_max"] = {"tensor": worst, "killed_vs_straight": rel[worst], "straight_vs_straight2": noise[nworst],
                                 "straight_vs_straight2_tensor": nworst, "gate": gate}
    result["weights_bit_identical"] = {"killed": sum(1 for k in ws if bool((ws[k] == wk[k]).all())),
                                       "straight_2": sum(1 for k in ws if bool((ws[k] == w2[k]).all())), "of": len(ws)}
    if rel[worst] > gate:
        failures.append(f"final weights: {worst} differs by {rel[worst]:.3e} (relative) from the straight run (gate {gate:.1e})")
else:
    failures.append(f"no round finished in {a.rounds}")
result["kills"] = sum(1 for r in result["rounds"] if r["killed_after_s"] is not None)
result["kills_during_save"] = sum(1 for r in result["rounds"] if r["partial_left"])
result["failures"] = failures
result["pass"] = not failures
json.dump(result, open(os.path.join(a.out, "kill-resume.json"), "w"), indent=1)
print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=1))
sys.exit(0 if result["pass"] else 1)
