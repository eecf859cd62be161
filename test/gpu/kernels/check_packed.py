"""Checks the kernels of packed programs against float64 torch, on the GPU machine.

  npx tsx test/gpu/kernels/render-packed.ts .carry/kernels-packed     # where Node is
  python3 test/gpu/kernels/check_packed.py [kernels_dir=.carry/kernels-packed] [out_dir=$OUT or /tmp/fpdt_check_packed]

fpdt_attn_fwd_docs / fpdt_attn_bwd_docs (document-masked attention: a query sees a key only of its own
document, causally on the diagonal block) and fpdt_rope_fwd_pos / fpdt_rope_bwd_pos (RoPE at per-row
positions). Cases: documents that span q and kv tiles, a document of length 1 at a tile edge, many short
documents (most tiles skipped inside the kernel), an off-diagonal block whose first q rows have no key of
their document (o = 0, lse = -inf; folding leaves the accumulators alone), a block with no shared document
at all (accumulators bit-identical), a whole sequence run as FPDT chunks (documents across chunk
boundaries, forward folded block by block, backward accumulated) against the unchunked reference, GQA,
and null id pointers refused. Prints the time of one 32K causal block of 32 documents against 32 blocks of
1K (the tile skipping at work). Helpers (check, rnd, call, ...) are check_kernels.py's."""
import ctypes as C
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
KDIR = sys.argv[1] if len(sys.argv) > 1 else ".carry/kernels-packed"
OUT = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("OUT", "/tmp/fpdt_check_packed")
sys.argv = sys.argv[:1]  # check_kernels reads its own arguments at import
import check_kernels as ck  # noqa: E402
from build import build  # noqa: E402

from check_kernels import F, I, P, bf, call, check, dev, f32, f64, poison, rnd  # noqa: E402


def doc_ids(lengths, device=dev):
    return torch.repeat_interleave(torch.arange(len(lengths), device=device, dtype=torch.int32),
                                   torch.tensor(lengths, device=device))


def random_lengths(total, lo, hi, gen, ones=()):
    """document lengths in [lo, hi] filling `total`, with length-1 documents starting at the offsets `ones`"""
    out, at = [], 0
    while at < total:
        if at in ones:
            n = 1
        else:
            n = int(torch.randint(lo, hi + 1, (1,), generator=gen))
            nxt = [o for o in ones if o > at]
            if nxt:
                n = min(n, nxt[0] - at)
        n = min(n, total - at)
        out.append(n)
        at += n
    return out


def ref_doc_attention(q, k, v, qd, kd, causal, scale):
    """float64; rows without any key of their document: o = 0, lse = -inf"""
    Hq, Hkv = q.shape[1], k.shape[1]
    qx, kx, vx = q.double(), k.double().repeat_interleave(Hq // Hkv, 1), v.double().repeat_interleave(Hq // Hkv, 1)
    s = torch.einsum("qhd,khd->hqk", qx, kx) * scale
    mask = kd[None, :].long() != qd[:, None].long()
    if causal:
        mask |= torch.arange(k.shape[0], device=dev)[None, :] > torch.arange(q.shape[0], device=dev)[:, None]
    s = s.masked_fill(mask[None], float("-inf"))
    lse = torch.logsumexp(s, -1)
    p = torch.exp(s - lse[..., None].clamp_min(-1e300)).nan_to_num(0.0)
    return torch.einsum("hqk,khd->qhd", p, vx), lse


def attn_fwd_docs(lib, q, k, v, qd, kd, causal, mode, o_acc=None, lse=None, q_head_base=0, group=None, name="fpdt_attn_fwd_docs"):
    Lq, Hq, d = q.shape
    Lk, Hkv = k.shape[0], k.shape[1]
    o_out = poison(Lq, Hq, d, dtype=bf) if mode == 2 else None
    if o_acc is None and mode == 0:
        o_acc = poison(Lq, Hq, d)
    if lse is None:
        lse = poison(Hq, Lq)
    call(lib, name, P(q), P(k), P(v), P(o_acc), P(lse), P(o_out), I(Lq), I(Lk), I(Hq), I(Hkv),
         I(q_head_base), I(group or Hq // Hkv), F(1 / math.sqrt(d)), I(int(causal)), I(mode), P(qd), P(kd))
    return (o_out if mode == 2 else o_acc), lse


def lse_pair(out, ref):
    """lse compared where the reference is finite; -inf must be -inf exactly"""
    fin = torch.isfinite(ref)
    same_inf = bool((torch.isneginf(out) == ~fin).all())
    return (torch.where(fin, out.double(), 0.0) + (0.0 if same_inf else float("nan")), torch.where(fin, ref, 0.0))


def check_forward(lib, tag, Hq, Hkv, d, gen):
    scale = 1 / math.sqrt(d)
    # diagonal blocks: documents across tiles of 64/128 rows, a length-1 document at a tile edge (row 128)
    for L, lo, hi in [(64, 1, 40), (333, 1, 120), (1000, 30, 400), (1500, 1, 64), (2048, 16, 48)]:
        lengths = random_lengths(L, lo, hi, gen, ones=(128,) if L > 200 else ())
        ids = doc_ids(lengths)
        q, k, v = rnd(L, Hq, d), rnd(L, Hkv, d), rnd(L, Hkv, d)
        o_r, lse_r = ref_doc_attention(q, k, v, ids, ids, True, scale)
        o2, lse2 = attn_fwd_docs(lib, q, k, v, ids, ids, True, 2)
        o0, lse0 = attn_fwd_docs(lib, q, k, v, ids, ids, True, 0)
        check(f"{tag} attn_fwd_docs diagonal L={L} docs={len(lengths)}",
              {"o_bf16": (o2, o_r), "o_acc": (o0, o_r), "lse": (lse2, lse_r), "lse_acc": (lse0, lse_r)}, 1e-2)
        if hasattr(lib, "fpdt_attn_fwd_docs_sm90"):  # the wgmma kernel itself (an error where it cannot run, no fallback)
            o2, lse2 = attn_fwd_docs(lib, q, k, v, ids, ids, True, 2, name="fpdt_attn_fwd_docs_sm90")
            o0, lse0 = attn_fwd_docs(lib, q, k, v, ids, ids, True, 0, name="fpdt_attn_fwd_docs_sm90")
            check(f"{tag} attn_fwd_docs_sm90 diagonal L={L} docs={len(lengths)}",
                  {"o_bf16": (o2, o_r), "o_acc": (o0, o_r), "lse": (lse2, lse_r), "lse_acc": (lse0, lse_r)}, 1e-2)
    # off-diagonal: kv chunk before the q chunk; the q chunk's first rows continue the kv chunk's last
    # document, later ones start new documents with no key here (o = 0, lse = -inf)
    for Lq, Lk in [(256, 256), (300, 700), (128, 1)]:
        kl = random_lengths(Lk, 1, 90, gen)
        kd = doc_ids(kl)
        ql = random_lengths(Lq, 1, 90, gen)
        qd = doc_ids(ql) + int(kd[-1])  # the first q document is the last kv document
        q, k, v = rnd(Lq, Hq, d), rnd(Lk, Hkv, d), rnd(Lk, Hkv, d)
        o_r, lse_r = ref_doc_attention(q, k, v, qd, kd, False, scale)
        o0, lse0 = attn_fwd_docs(lib, q, k, v, qd, kd, False, 0)
        # folding into running accumulators: rows without keys keep theirs exactly
        acc0, lacc0 = rnd(Lq, Hq, d, dtype=f32), rnd(Hq, Lq, dtype=f32)
        acc, lacc = acc0.clone(), lacc0.clone()
        attn_fwd_docs(lib, q, k, v, qd, kd, False, 1, acc, lacc)
        empty = ~torch.isfinite(lse_r)  # [Hq, Lq]
        nl = torch.logaddexp(lacc0.double(), lse_r)
        acc_r = torch.exp(lacc0.double() - nl).transpose(0, 1)[..., None] * acc0.double() + \
            torch.exp(lse_r - nl).nan_to_num(0.0).transpose(0, 1)[..., None] * o_r
        kept = bool(torch.equal(acc[empty.transpose(0, 1)], acc0[empty.transpose(0, 1)])) and bool(torch.equal(lacc[empty], lacc0[empty]))
        check(f"{tag} attn_fwd_docs off-diagonal Lq={Lq} Lk={Lk} ({int(empty[0].sum())} q rows without a key)",
              {"o": (o0, o_r), "lse": lse_pair(lse0, lse_r), "fold_o": (acc, acc_r), "fold_lse": (lacc, nl),
               "untouched": (torch.tensor([1.0 if kept else float("nan")]), torch.tensor([1.0]))}, 1e-2)
    # no shared document at all: every tile skipped, the accumulators bit-identical
    q, k, v = rnd(512, Hq, d), rnd(512, Hkv, d), rnd(512, Hkv, d)
    kd = doc_ids([200, 312])
    qd = doc_ids([256, 256]) + 2
    acc0, lacc0 = rnd(512, Hq, d, dtype=f32), rnd(Hq, 512, dtype=f32)
    acc, lacc = acc0.clone(), lacc0.clone()
    attn_fwd_docs(lib, q, k, v, qd, kd, False, 1, acc, lacc)
    same = torch.equal(acc, acc0) and torch.equal(lacc, lacc0)
    ck.results.append((f"{tag} attn_fwd_docs skips a block of no shared document", same, {}))
    print(f"{'PASS' if same else 'FAIL'} {tag} attn_fwd_docs skips a block of no shared document (accumulators identical: {same})")
    # GQA head base (a rank's slice of q heads): as check_kernels, with documents
    group = Hq // Hkv
    if group > 1:
        qb, hq = group + 2, 2 * group
        hk = (qb + hq - 1) // group - qb // group + 1
        ids = doc_ids(random_lengths(320, 1, 100, gen))
        ql, kl_, vl = rnd(320, hq, d), rnd(320, hk, d), rnd(320, hk, d)
        kx = kl_.repeat_interleave(group, 1)[:, qb - (qb // group) * group:][:, :hq]
        vx = vl.repeat_interleave(group, 1)[:, qb - (qb // group) * group:][:, :hq]
        o_r, lse_r = ref_doc_attention(ql, kx, vx, ids, ids, True, scale)
        o, lse = attn_fwd_docs(lib, ql, kl_, vl, ids, ids, True, 2, q_head_base=qb, group=group)
        check(f"{tag} attn_fwd_docs head base {qb} heads {hq}", {"o": (o, o_r), "lse": (lse, lse_r)}, 1e-2)


def ref_grads(q, k, v, do, ids, scale):
    qx, kx, vx = (t.double().requires_grad_() for t in (q, k, v))
    o, _ = ref_doc_attention(qx, kx, vx, ids, ids, True, scale)
    o.backward(do.double())
    return o.detach(), qx.grad, kx.grad, vx.grad


def check_chunked(lib, tag, Hq, Hkv, d, gen, fwd="fpdt_attn_fwd_docs", bwd="fpdt_attn_bwd_docs"):
    """A whole sequence as FPDT runs it: q chunk i against kv chunks j <= i, forward folded from
    fpdt_attn_acc_init, backward per kv chunk over q chunks i >= j; documents across chunk edges.
    fwd, bwd: the launchers (the _sm90 ones fail where the wgmma kernels cannot run: no fallback)."""
    scale = 1 / math.sqrt(d)
    for L, C_, lo, hi in [(1024, 256, 1, 300), (1536, 512, 100, 700), (2048, 256, 8, 40)]:
        lengths = random_lengths(L, lo, hi, gen, ones=(C_ - 1, C_))  # a length-1 document on each side of a chunk edge
        ids = doc_ids(lengths)
        q, k, v, do = rnd(L, Hq, d), rnd(L, Hkv, d), rnd(L, Hkv, d), rnd(L, Hq, d)
        o_r, gq, gk, gv = ref_grads(q, k, v, do, ids, scale)
        _, lse_r = ref_doc_attention(q, k, v, ids, ids, True, scale)
        o = torch.empty(L, Hq, d, device=dev, dtype=bf)
        lse = torch.empty(Hq, L, device=dev, dtype=f32)
        for i in range(0, L, C_):
            qi, qdi = q[i:i + C_].contiguous(), ids[i:i + C_].contiguous()
            acc, ls = poison(C_, Hq, d), poison(Hq, C_)
            call(lib, "fpdt_attn_acc_init", P(acc), P(ls), I(C_), I(Hq))
            for j in range(0, i + 1, C_):
                attn_fwd_docs(lib, qi, k[j:j + C_].contiguous(), v[j:j + C_].contiguous(), qdi,
                              ids[j:j + C_].contiguous(), i == j, 1, acc, ls, name=fwd)
            oi = poison(C_, Hq, d, dtype=bf)
            call(lib, "fpdt_attn_finalize", P(acc), P(oi), I(C_), I(Hq))
            o[i:i + C_], lse[:, i:i + C_] = oi, ls
        delta = poison(Hq, L)
        call(lib, "fpdt_attn_bwd_delta", P(o), P(do), P(delta), I(L), I(Hq))
        dq = torch.zeros(L, Hq, d, device=dev)
        dk, dv = torch.zeros(L, Hkv, d, device=dev), torch.zeros(L, Hkv, d, device=dev)
        for j in range(0, L, C_):
            kj, vj, kdj = k[j:j + C_].contiguous(), v[j:j + C_].contiguous(), ids[j:j + C_].contiguous()
            dkj, dvj = torch.zeros(C_, Hkv, d, device=dev), torch.zeros(C_, Hkv, d, device=dev)
            for i in range(j, L, C_):
                dqi, qi, doi, qdi = dq[i:i + C_].contiguous(), q[i:i + C_].contiguous(), do[i:i + C_].contiguous(), ids[i:i + C_].contiguous()
                lsei, deltai = lse[:, i:i + C_].contiguous(), delta[:, i:i + C_].contiguous()
                call(lib, bwd, P(qi), P(kj), P(vj), P(doi), P(lsei), P(deltai), P(dqi), P(dkj), P(dvj),
                     I(C_), I(C_), I(Hq), I(Hkv), I(0), I(Hq // Hkv), F(scale), I(int(i == j)), P(qdi), P(kdj))
                dq[i:i + C_] = dqi
            dk[j:j + C_], dv[j:j + C_] = dkj, dvj
        check(f"{tag} attn_docs chunked{'' if fwd == 'fpdt_attn_fwd_docs' else ' (' + fwd + ', ' + bwd + ')'} L={L} chunk={C_} docs={len(lengths)}",
              {"o": (o, o_r), "lse": (lse, lse_r), "dq": (dq, gq), "dk": (dk, gk), "dv": (dv, gv)}, 1e-2)


def check_rope_positions(lib, tag, spec):
    d, rd, theta = spec["headDim"], spec["rotaryDim"], spec["ropeTheta"]
    half = rd // 2
    inv = theta ** (-2.0 * torch.arange(half, device=dev, dtype=f64) / rd)
    gen = torch.Generator().manual_seed(5)
    for L, H in [(37, 8), (300, 3)]:
        # positions that restart at each document, one document far along (a long document's tail)
        lengths = random_lengths(L, 1, 50, gen, ones=(10,))
        pos = torch.cat([torch.arange(n, device=dev) for n in lengths]).to(torch.int32)
        pos[-5:] += 999_990
        x, dy = rnd(L, H, d), rnd(L, H, d)
        ang = pos.double()[:, None] * inv[None, :]
        cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]

        def ref(t, sgn):
            t = t.double()
            x1, x2 = t[..., :half], t[..., half:rd]
            return torch.cat([x1 * cos - sgn * x2 * sin, x2 * cos + sgn * x1 * sin, t[..., rd:]], -1)

        y, dx = poison(L, H, d, dtype=bf), poison(L, H, d, dtype=bf)
        call(lib, "fpdt_rope_fwd_pos", P(x), P(y), I(L), I(H), P(pos))
        call(lib, "fpdt_rope_bwd_pos", P(dy), P(dx), I(L), I(H), P(pos))
        check(f"{tag} rope_pos L={L} H={H} docs={len(lengths)}", {"y": (y, ref(x, 1)), "dx": (dx, ref(dy, -1))}, 1e-2)


def check_refusals(lib, tag):
    q = rnd(64, 4, 128)
    ids = torch.zeros(64, device=dev, dtype=torch.int32)
    for name, args in [("fpdt_attn_fwd_docs", (P(q), P(q), P(q), P(None), P(None), P(None), I(64), I(64), I(4), I(4), I(0),
                                               I(1), F(1.0), I(1), I(2), P(None), P(ids))),
                       ("fpdt_attn_bwd_docs", (P(q), P(q), P(q), P(q), P(None), P(None), P(None), P(None), P(None), I(64),
                                               I(64), I(4), I(4), I(0), I(1), F(1.0), I(1), P(ids), P(None)))]:
        fn = getattr(lib, name)
        fn.restype = C.c_int
        err = fn(*args, ck.stream())
        ck.results.append((f"{tag} {name} refuses null ids", err != 0, {"err": err}))
        print(f"{'PASS' if err != 0 else 'FAIL'} {tag} {name} refuses null ids (err {err})")


def time_skipping(lib, tag, Hq, Hkv, d):
    """One causal 32K block of 32 documents of 1K against 32 causal 1K blocks: the skipped tiles cost little."""
    S, n = 32768, 32
    q, k, v = rnd(S, Hq, d), rnd(S, Hkv, d), rnd(S, Hkv, d)
    ids = doc_ids([S // n] * n)
    acc, ls = torch.zeros(S, Hq, d, device=dev), torch.full((Hq, S), float("-inf"), device=dev)

    def timed(fn, reps=5):
        fn()
        torch.cuda.synchronize()
        t = time.time()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        return (time.time() - t) / reps * 1e3

    packed = timed(lambda: attn_fwd_docs(lib, q, k, v, ids, ids, True, 1, acc, ls))
    c = S // n
    zero = torch.zeros(c, device=dev, dtype=torch.int32)
    parts = [(q[i:i + c].contiguous(), k[i:i + c].contiguous(), v[i:i + c].contiguous(), acc[i:i + c].contiguous(),
              ls[:, i:i + c].contiguous()) for i in range(0, S, c)]
    separate = timed(lambda: [attn_fwd_docs(lib, a, b, e, zero, zero, True, 1, f, g) for a, b, e, f, g in parts])
    print(f"INFO {tag} attention forward, 32K window of 32 documents of 1K: {packed:.2f} ms in one block, "
          f"{separate:.2f} ms as 32 blocks ({packed / separate:.2f}x)", flush=True)


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    t0 = time.time()
    for tag in sorted(os.listdir(KDIR)):
        sdir = os.path.join(KDIR, tag)
        spec = json.load(open(os.path.join(sdir, "spec.json")))
        print(f"== {tag} (packed): build", flush=True)
        lib = C.CDLL(build(sdir, os.path.join("/tmp/fpdt_build_packed")))
        Hq, Hkv, d = spec["qHeads"], spec["kvHeads"], spec["headDim"]
        for fn in (lambda: check_forward(lib, tag, Hq, Hkv, d, gen), lambda: check_chunked(lib, tag, Hq, Hkv, d, gen),
                   lambda: check_rope_positions(lib, tag, spec), lambda: check_refusals(lib, tag),
                   lambda: time_skipping(lib, tag, Hq, Hkv, d)) + (
                ((lambda: check_chunked(lib, tag, Hq, Hkv, d, gen, "fpdt_attn_fwd_docs_sm90", "fpdt_attn_bwd_docs_sm90")),)
                if hasattr(lib, "fpdt_attn_bwd_docs_sm90") else ()):
            try:
                fn()
            except Exception as e:  # keep going: one broken family must not hide the others
                ck.results.append((f"{tag} {e.__class__.__name__}", False, {}))
                print(f"FAIL {tag}: exception {e!r}", flush=True)
                torch.cuda.synchronize()
    if ck.failures:
        torch.save(ck.failures, os.path.join(OUT, "failures_packed.pt"))
    npass = sum(1 for _, ok, _ in ck.results if ok)
    with open(os.path.join(OUT, "check_packed_summary.txt"), "w") as f:
        for name, ok, errs in ck.results:
            f.write(f"{'PASS' if ok else 'FAIL'} {name} {errs}\n")
    print(f"== {npass}/{len(ck.results)} packed checks passed in {time.time() - t0:.0f} s")
    return 0 if npass == len(ck.results) else 1


if __name__ == "__main__":
    sys.exit(main())
