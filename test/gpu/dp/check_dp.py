"""Data parallelism against its definition (test/gpu/dp/run-dp.sh).
  check_dp.py LABEL LOG_A G_A LOG_B G_B LOG G
      one step of dp 2 (groups on sequences a and b) against one rank on each sequence alone:
      loss = the token-weighted mean of the two losses (5e-3 relative; both sequences hold SEQ - 1
      labels, so the weights are equal), every gradient = the token-weighted mean of the two
      (2e-2 relative norm per tensor, the gate of test/gpu/x2/check_steps.py);
  check_dp.py --steps LABEL LOG1 W1 LOG2 W2 INIT
      several steps two ways: the losses change from step to step and agree (5e-3), every tensor
      moved and the weights agree within 0.1 of their change.
Prints one JSON line; exit 1 on failure, naming the tensor or step."""
import json, re, sys
from safetensors.torch import load_file


def losses(log):
    return [float(x) for x in re.findall(r"step \d+\s+loss ([-\d.e+]+|nan)", open(log).read())]


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def one_step(label, log_a, g_a, log_b, g_b, log, g):
    fails, out = [], {"check": label}
    (la,), (lb,), got = losses(log_a)[:1], losses(log_b)[:1], losses(log)
    ga, gb, gd = load_file(g_a), load_file(g_b), load_file(g)
    want = 0.5 * (la + lb)
    out.update({"loss a": la, "loss b": lb, "loss want": want, "loss got": got[:1]})
    if not got or not abs(got[0] - want) <= 5e-3 * abs(want):
        fails.append(f"loss {got[:1]} vs the mean of the two sequences {want}")
    if abs(la - lb) <= 1e-3 * abs(la):
        fails.append(f"the two sequences have the same loss ({la}): the check cannot tell them apart")
    worst = (0.0, "")
    for n in ga:
        if n not in gd:
            fails.append(f"no gradient {n}")
            continue
        mean = 0.5 * (ga[n].double() + gb[n].double())
        worst = max(worst, (rel(gd[n], mean), n))
    out["grad worst"] = worst
    if not worst[0] <= 2e-2:
        fails.append(f"gradient {worst[1]} off by {worst[0]:.3e} from the mean of the two sequences")
    return out, fails


def steps(label, log1, w1, log2, w2, init):
    fails, out = [], {"check": label}
    l1, l2 = losses(log1), losses(log2)
    out.update({"losses 1": l1, "losses 2": l2})
    for ls in (l1, l2):
        if len(ls) < 2:
            fails.append(f"{len(ls)} steps printed")
        for k in range(1, len(ls)):
            if not abs(ls[k] - ls[k - 1]) > 1e-4 * abs(ls[k - 1]):
                fails.append(f"loss did not change from step {k} to {k + 1}")
    for k, (a, b) in enumerate(zip(l1, l2)):
        if not abs(a - b) <= 5e-3 * abs(b):
            fails.append(f"step {k + 1} loss {a} vs {b}")
    a, b, w0 = load_file(w1), load_file(w2), load_file(init)
    worst = max((float((a[n].double() - b[n].double()).norm() / (b[n] - w0[n]).double().norm().clamp_min(1e-30)), n) for n in b if not n.endswith("k_proj.bias"))
    out["weights worst"] = worst
    if not worst[0] <= 0.1:
        fails.append(f"weights {worst[1]} off by {worst[0]:.3e} relative to their change")
    still = [n for n in w0 if rel(a[n], w0[n]) < 1e-6]
    if still:
        fails.append(f"{len(still)} tensors did not move, e.g. {still[:3]}")
    return out, fails


args = sys.argv[1:]
out, fails = steps(*args[1:]) if args[0] == "--steps" else one_step(*args)
out["failures"], out["pass"] = fails, not fails
print(json.dumps(out))
sys.exit(0 if not fails else 1)
