"""The all-to-alls of a step on two ranks, call by call, from FPDT_PROFILE_COMM_FILE's files
(`fpdtc run` with FPDT_PROFILE_COMM=1 FPDT_PROFILE_COMM_FILE=PREFIX writes PREFIX.rank<r>.csv).
A call's start is when its rank's comm stream reached it (inputs ready, earlier comm work done), its
end when the exchange finished; times count from each rank's step start, which the two ranks reach
within a few ms of each other (both wait for the previous step's end on the host). Per call: the rank
that started first waited for the other (max start - own start); the exchange itself is from the
later start to the end. Prints totals per rank, the rate of the exchanges by message size, and the
calls with the longest waits. Usage: a2a_timeline.py PREFIX [STEP]"""
import collections, csv, json, sys


def load(path, step):
    rows = [r for r in csv.DictReader(open(path)) if step is None or int(r["step"]) == step]
    return {int(r["call"]): (float(r["bytes"]), float(r["start_ms"]), float(r["end_ms"]), int(r["step"])) for r in rows}


def main(prefix, step=None):
    step = int(step) if step else None
    a, b = load(prefix + ".rank0.csv", step), load(prefix + ".rank1.csv", step)
    if step is None:  # the last step both files hold
        last = max(v[3] for v in a.values())
        a = {k: v for k, v in a.items() if v[3] == last}
        b = {k: v for k, v in b.items() if v[3] == last}
        step = last
    calls = sorted(set(a) & set(b))
    inside = [0.0, 0.0]
    waited = [0.0, 0.0]
    exchange = 0.0
    by_size = collections.defaultdict(lambda: [0, 0.0, 0.0])
    longest = []
    for k in calls:
        (nb, s0, e0, _), (_, s1, e1, _) = a[k], b[k]
        ready = max(s0, s1)
        ex = max(0.0, max(e0, e1) - ready)
        inside[0] += e0 - s0
        inside[1] += e1 - s1
        waited[0] += ready - s0
        waited[1] += ready - s1
        exchange += ex
        bucket = by_size[round(nb / 2**20, 1)]
        bucket[0] += 1
        bucket[1] += ex
        bucket[2] += nb
        longest.append((max(ready - s0, ready - s1), k, nb, s0, s1, e0, e1))
    longest.sort(reverse=True)
    out = {
        "step": step, "calls": len(calls),
        "inside_ms": [round(x, 1) for x in inside], "waiting_for_peer_ms": [round(x, 1) for x in waited],
        "exchange_ms": round(exchange, 1),
        "by_message_MiB": {str(k): {"calls": v[0], "exchange_ms": round(v[1], 1), "GBps": round(v[2] / max(v[1], 1e-9) / 1e6, 1)} for k, v in sorted(by_size.items())},
        "longest_waits": [{"call": k, "MiB": round(nb / 2**20, 1), "start_ms": [round(s0, 1), round(s1, 1)], "end_ms": [round(e0, 1), round(e1, 1)]} for _, k, nb, s0, s1, e0, e1 in longest[:8]],
    }
    print(json.dumps(out, indent=1))


main(*sys.argv[1:])
