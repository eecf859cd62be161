# Our Llama-3-8B attention layer beside DeepSpeed's FPDT layer: reads what test/gpu/ds/run.sh leaves
# in a folder (our runs' measured traces, --metrics lines and logs; DeepSpeed's bench_fpdt.py output)
# and prints the markdown table for results/, writing the same figures as JSON.
#   python3 test/gpu/ds/report.py DIR [--json FILE]
#
# Our layer's time comes from the traced step (`fpdtc run --trace`, the last step run): the events
# inside the layer loops, less ZeRO-3's gathers and gradient reductions (DeepSpeed's layer holds its
# weight and leaves gradients where they are), fall into a forward and a backward phase (runs of
# consecutive instruction ids); each phase counts from its first event's start to its last event's
# end on any stream, so every wait, gap and exposed copy inside it is counted. DeepSpeed's time is
# its bench's wall time of forward plus backward with a device synchronize after each.
# Offloaded against resident compares the median of each run's steps after the first (the first includes
# warm-up): a traced step of a second varies by a few percent from run to run, more than the copies cost.
import argparse, collections, glob, gzip, json, os, re, statistics, sys

ZERO_OPS = {"all_gather", "reduce_scatter", "grad_accumulate", "all_reduce"}
KIND = {  # op -> the kind it is reported under
    "attn_fwd_block": "attention fwd", "attn_init": "attention fwd", "attn_finalize": "attention fwd",
    "attn_bwd_block": "attention bwd", "attn_bwd_prep": "attention bwd", "attn_bwd_finalize": "attention bwd",
    "linear": "GEMM", "linear_dx": "GEMM", "linear_dw": "GEMM", "linear_db": "GEMM",
    "rope": "RoPE", "rope_bwd": "RoPE",
}
COPY_STREAMS = {"h2d", "d2h"}
GIB = 2**30


def tokens_of(label):
    m = re.fullmatch(r"(\d+)([KM]?)", label)
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2}[m.group(2)]


def load_json(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rt") as f:
        return json.load(f)


def union(intervals):
    """Merged, sorted intervals."""
    out = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def length(intervals):
    return sum(b - a for a, b in intervals)


def minus(xs, ys):
    """Length of the union of xs not covered by the union of ys."""
    xs, ys, left, j = union(xs), union(ys), 0.0, 0
    for a, b in xs:
        cur = a
        while j < len(ys) and ys[j][1] <= cur:
            j += 1
        k = j
        while k < len(ys) and ys[k][0] < b:
            if ys[k][0] > cur:
                left += ys[k][0] - cur
            cur = max(cur, ys[k][1])
            k += 1
        left += max(0.0, b - cur)
    return left


def layer_figures(trace):
    """The attention layer's time in one measured step, and where it goes (seconds)."""
    ev = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e.get("pid", 0) == 0]
    num = lambda e: int(str(e["args"]["id"]).lstrip("i"))
    by_id = collections.defaultdict(list)
    for e in ev:
        by_id[num(e)].append(e)
    phases, cur = [], None
    for i in sorted(by_id):
        group = by_id[i]
        if "layer" not in group[0]["args"]:
            cur = None
            continue
        if cur is None:
            cur = []
            phases.append(cur)
        cur.extend(e for e in group if e["name"] not in ZERO_OPS)
    phases = [p for p in phases if p]
    us = 1e-6
    windows = [(min(e["ts"] for e in p) * us, max((e["ts"] + e["dur"]) for e in p) * us) for p in phases]
    mine = [e for p in phases for e in p]
    span = lambda es: [(e["ts"] * us, (e["ts"] + e["dur"]) * us) for e in es]
    compute_all = [e for e in ev if e.get("cat") == "compute"]
    kinds = collections.defaultdict(float)
    for e in mine:
        if e.get("cat") == "compute":
            kinds[KIND.get(e["name"], "other compute")] += e["dur"] * us
        elif e.get("cat") in COPY_STREAMS:
            kinds["copies (on their streams)"] += e["dur"] * us
        else:
            kinds[f"{e.get('cat')} stream"] += e["dur"] * us
    # copy time inside the layer's windows with no compute running (any compute of the step)
    copies = [(max(a, w0), min(b, w1)) for a, b in span(e for e in ev if e.get("cat") in COPY_STREAMS)
              for w0, w1 in windows if a < w1 and b > w0]
    step = (min(e["ts"] for e in ev) * us, max(e["ts"] + e["dur"] for e in ev) * us)
    return {
        # (a fetch of the backward may run during the forward: the windows overlap, count it once)
        "layer_s": length(union(windows)),
        "phases_s": [b - a for a, b in windows],
        "layer_compute_busy_s": length(union(span(e for e in mine if e.get("cat") == "compute"))),
        "exposed_copy_s": minus(copies, span(compute_all)),
        "kinds_s": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "traced_span_s": step[1] - step[0],
        "measured_step_s": (trace.get("otherData") or {}).get("measuredStepSeconds"),
        "events": len(ev),
        "dropped": (trace.get("otherData") or {}).get("dropped", 0),
    }


def our_run(d, name):
    """One of our programs' figures, or None where it left no trace."""
    traces = glob.glob(os.path.join(d, f"{name}.trace.json*"))
    if not traces:
        return None
    r = layer_figures(load_json(traces[0]))
    mpath = os.path.join(d, f"{name}.metrics.jsonl")
    steps = [json.loads(l) for l in open(mpath)] if os.path.exists(mpath) else []
    r["steps_s"] = [s["step_ms"] / 1e3 for s in steps]
    if steps:
        r["peak_GiB"] = max(s["peak_gpu_bytes"] for s in steps) / GIB
        r["planned_GiB"] = steps[-1]["planned_gpu_bytes"] / GIB
    r["median_step_s"] = statistics.median(r["steps_s"][1:]) if len(r["steps_s"]) > 1 else None
    return r


def deepspeed(d):
    """bench_fpdt.py's results by tokens: its JSON, else the per-size lines its log printed before it stopped."""
    path = os.path.join(d, "ds_fpdt.json")
    res = {}
    if os.path.exists(path):
        res = json.load(open(path))
    else:
        log = os.path.join(d, "ds_fpdt.log")
        for line in open(log) if os.path.exists(log) else []:
            m = re.match(r"(\d+) (\d+) (\{.*\})\s*$", line)
            if m:
                res[f"S{m.group(1)}_c{m.group(2)}"] = json.loads(m.group(3))
    return res


def fmt(x, unit="", digits=2):
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--json")
    ap.add_argument("--chunk", default=65536, type=int)
    a = ap.parse_args()
    ds = deepspeed(a.dir)
    labels = sorted({m.group(1) for f in os.listdir(a.dir) for m in [re.match(r"ours-(\d+[KM]?)(-resident)?\.", f)] if m}
                    | {f"{int(k.split('_')[0][1:]) // 1024}K" for k in ds if k.startswith("S") and k.endswith(f"_c{a.chunk}")},
                    key=tokens_of)
    rows = []
    for label in labels:
        S = tokens_of(label)
        d = ds.get(f"S{S}_c{a.chunk}", {})
        off, res = our_run(a.dir, f"ours-{label}"), our_run(a.dir, f"ours-{label}-resident")
        dso, plain = d.get("ds_fpdt_offload", {}), d.get("plain_fa2", {})
        get = lambda r, k: None if r is None else r.get(k)
        rows.append({
            "tokens": S, "label": label, "chunk": a.chunk,
            "deepspeed": {"offload": dso or None, "plain_fa2": plain or None},
            "ours_offloaded": off, "ours_resident": res,
            "time_ours_over_deepspeed": ratio(get(off, "layer_s"), dso.get("total_s")),
            "peak_ours_over_deepspeed": ratio(get(off, "peak_GiB"), dso.get("peak_GiB")),
            "offloaded_over_resident": ratio(get(off, "median_step_s"), get(res, "median_step_s")),
            "offloaded_over_resident_traced": ratio(get(off, "layer_s"), get(res, "layer_s")),
        })
    out = {"rows": rows, "deepspeed_check_rel_err": ds.get("check_rel_err"), "deepspeed_gpu_path_gqa": ds.get("ds_fpdt_gpu_gqa")}
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)

    p = print
    p("| tokens | DeepSpeed FPDT offload: time, peak | ours offloaded: layer, step, peak (planned) | ours / DeepSpeed: time, peak "
      "| ours resident: layer, step, peak | offloaded / resident: median step (traced layer) | plain FA2 (DeepSpeed bench): time, peak |")
    p("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        o, s, dso, pl = r["ours_offloaded"] or {}, r["ours_resident"] or {}, r["deepspeed"]["offload"] or {}, r["deepspeed"]["plain_fa2"] or {}
        last = lambda x: x["steps_s"][-1] if x.get("steps_s") else None
        p(f"| {r['label']} | {fmt(dso.get('total_s'), ' s')}, {fmt(dso.get('peak_GiB'), ' GiB', 1)} "
          f"| {fmt(o.get('layer_s'), ' s')}, {fmt(last(o), ' s')}, {fmt(o.get('peak_GiB'), ' GiB', 1)} ({fmt(o.get('planned_GiB'), '', 1)}) "
          f"| {fmt(r['time_ours_over_deepspeed'], 'x')}, {fmt(r['peak_ours_over_deepspeed'], 'x')} "
          f"| {fmt(s.get('layer_s'), ' s')}, {fmt(last(s), ' s')}, {fmt(s.get('peak_GiB'), ' GiB', 1)} "
          f"| {fmt(r['offloaded_over_resident'], 'x', 3)} ({fmt(r['offloaded_over_resident_traced'], 'x', 3)}) | {fmt(pl.get('total_s'), ' s')}, {fmt(pl.get('peak_GiB'), ' GiB', 1)} |")
    p("")
    p("Where our layer's time goes (traced step; seconds inside each kind on its stream, streams overlap):")
    p("")
    for r in rows:
        for name in ("ours_offloaded", "ours_resident"):
            x = r[name]
            if x:
                kinds = ", ".join(f"{k} {v:.3f}" for k, v in x["kinds_s"].items())
                p(f"- {r['label']} {name.split('_')[1]}: forward {fmt(x['phases_s'][0] if x['phases_s'] else None, ' s', 3)}, "
                  f"backward {fmt(x['phases_s'][1] if len(x['phases_s']) > 1 else None, ' s', 3)}; compute busy "
                  f"{x['layer_compute_busy_s']:.3f} s, copies exposed {x['exposed_copy_s']:.3f} s; {kinds}; steps "
                  f"{', '.join(f'{t:.2f}' for t in x['steps_s'])} s{'; ' + str(x['dropped']) + ' events dropped' if x['dropped'] else ''}")
    p("")
    if out["deepspeed_check_rel_err"] is not None:
        p(f"DeepSpeed's offloaded layer against float32 at 16K: {out['deepspeed_check_rel_err']:.2e} relative; "
          f"its on-GPU path with GQA: {out['deepspeed_gpu_path_gqa']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
