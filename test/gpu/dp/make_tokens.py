"""Two seeded sequences of SEQ tokens in [0, VOCAB) for test/gpu/dp/run-dp.sh, as flat uint32
files: DIR/a.bin and DIR/b.bin each alone, DIR/ab.bin both one after the other.
Usage: make_tokens.py DIR SEQ VOCAB"""
import random, struct, sys

d, seq, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20261130)
a = [rng.randrange(vocab) for _ in range(seq)]
b = [rng.randrange(vocab) for _ in range(seq)]
for name, ids in (("a", a), ("b", b), ("ab", a + b)):
    with open(f"{d}/{name}.bin", "wb") as f:
        f.write(struct.pack(f"<{len(ids)}I", *ids))
