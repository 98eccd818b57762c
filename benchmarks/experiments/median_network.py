"""Derive ``engine.median.MEDIAN27_NETWORK``: the 3x3x3 median as min/max steps (issue 12).

    PYTHONPATH=src:. python -m benchmarks.experiments.median_network [--check]

The 27 values of a neighbourhood arrive with two sorts done (shared by the
neighbourhoods that hold them): each z-triple sorted (rank r), then each
rank's x-triples sorted (rank c), so at every y offset d the 3×3 (r, c)
matrix is sorted along both. The network then sorts every (r, c) line along
y, sorts each rank r across its 9 values (Batcher's odd-even merge sort of
16 wires, 7 of them +inf), and takes the 7th of the 13 values that can still
be the median (the 4 largest of r = 0, ranks 2-6 of r = 1, the 4 smallest of
r = 2: every other value has 14 or more values known to be on one side of
it). A comparison whose outcome the known partial order already fixes is
left out, and so is every result no later step reads. The order of equal-level
wires is drawn with ``random.Random(SEED)``; SEED is the best of 300 draws
(102 steps; the plain order: 118). Prints the table; ``--check`` compares it
with the engine's and checks it against ``np.median`` on random and tied values.
"""

from __future__ import annotations

import argparse
import random
import sys

SEED = 100


def batcher_pairs(n):
    """Batcher's odd-even merge sort of ``n`` wires (a power of two): the comparator pairs."""
    pairs, p = [], 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (p * 2) == (i + j + k) // (p * 2):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


class _Network:
    """Min/max steps over values 0-26 with a known partial order; new values get ids from 27."""

    def __init__(self):
        self.kind, self.steps, self.next, self.memo = {}, [], 27, {}

    @staticmethod
    def _given(a, b):  # the two sorts: same y offset, rank r and rank c not larger
        return a % 3 == b % 3 and a // 9 <= b // 9 and (a // 3) % 3 <= (b // 3) % 3

    def leq(self, a, b):
        """True when ``a <= b`` follows from the sorts and the steps so far."""
        if a == b:
            return True
        if (a, b) in self.memo:
            return self.memo[a, b]
        self.memo[a, b] = False
        ka, kb = self.kind.get(a), self.kind.get(b)
        r = ka is None and kb is None and self._given(a, b)
        if not r and ka is not None:
            op, u, v = ka
            r = (self.leq(u, b) or self.leq(v, b)) if op == 0 else (self.leq(u, b) and self.leq(v, b))
        if not r and kb is not None:
            op, u, v = kb
            r = (self.leq(a, u) or self.leq(a, v)) if op == 1 else (self.leq(a, u) and self.leq(a, v))
        self.memo[a, b] = r
        return r

    def compare(self, u, v):
        """(smaller, larger) of the values ``u``, ``v`` (None is +inf)."""
        if u is None or v is None:
            return (v, u) if u is None else (u, v)
        if self.leq(u, v):
            return u, v
        if self.leq(v, u):
            return v, u
        lo, hi = self.next, self.next + 1
        self.next += 2
        self.kind[lo], self.kind[hi] = (0, u, v), (1, u, v)
        self.steps += [lo, hi]
        self.memo = {k: t for k, t in self.memo.items() if t}
        return lo, hi

    def sort(self, wires, held):
        n = 1
        while n < len(wires):
            n *= 2
        w = [held[x] for x in wires] + [None] * (n - len(wires))
        for a, b in batcher_pairs(n):
            w[a], w[b] = self.compare(w[a], w[b])
        for x, v in zip(wires, w):
            held[x] = v

    def table(self, out):
        """The steps ``out`` needs, renumbered 27, 28, ...: ``(steps, id of out)``."""
        live, needed = {out}, []
        for i in reversed(self.steps):
            if i in live:
                _, u, v = self.kind[i]
                live |= {u, v}
                needed.append(i)
        names = {i: i for i in range(27)}
        steps = []
        for k, i in enumerate(reversed(needed)):
            op, u, v = self.kind[i]
            names[i] = 27 + k
            steps.append((op, names[u], names[v]))
        return tuple(steps), names[out]


def derive(seed=SEED):
    net = _Network()
    held = list(range(27))
    wire = lambda r, c, d: r * 9 + c * 3 + d  # noqa: E731
    for r in range(3):
        for c in range(3):
            a, b, e = wire(r, c, 0), wire(r, c, 1), wire(r, c, 2)
            for x, y in ((a, b), (b, e), (a, b)):
                held[x], held[y] = net.compare(held[x], held[y])
    rng = random.Random(seed)
    ranked = []
    for r in range(3):
        wires = sorted((wire(r, c, d) for c in range(3) for d in range(3)),
                       key=lambda x: ((x // 3) % 3 + x % 3, rng.random()))
        net.sort(wires, held)
        ranked.append(wires)
    candidates = ranked[0][5:9] + ranked[1][2:7] + ranked[2][0:4]
    rng.shuffle(candidates)
    candidates.sort(key=lambda x: x // 9)
    net.sort(candidates, held)
    return net.table(held[candidates[6]])


def evaluate(steps, out, cube):
    """The network on ``cube`` (3, 3, 3, n): (z, y, x) offsets, n neighbourhoods."""
    import numpy as np

    s = np.sort(np.sort(cube, axis=0), axis=2)  # z ranks, then x ranks
    values = {r * 9 + c * 3 + d: s[r, d, c] for r in range(3) for c in range(3) for d in range(3)}
    for k, (op, a, b) in enumerate(steps):
        values[27 + k] = (np.maximum if op else np.minimum)(values[a], values[b])
    return values[out]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    steps, out = derive()
    print(f"{len(steps)} steps, the median is value {out}")
    print(steps)
    if args.check:
        import numpy as np

        from napari_dfcseg.engine.median import _MEDIAN27_OUT, MEDIAN27_NETWORK

        rng = np.random.default_rng(0)
        for cube in (rng.random((3, 3, 3, 100000)), rng.integers(0, 4, (3, 3, 3, 100000))):
            assert np.array_equal(evaluate(steps, out, cube),
                                  np.median(cube.reshape(27, -1), axis=0))
        same = steps == MEDIAN27_NETWORK and out == _MEDIAN27_OUT
        print("np.median: equal; the engine's table:", "the same" if same else "DIFFERENT")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
