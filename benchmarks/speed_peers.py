"""Engine (default settings) vs ANTs Atropos on the same scan, interleaved, same thread count.

    PYTHONPATH=src python -m benchmarks.speed_peers [--threads 2] [--repeats 1] [--cases mr,mni]
        [--out benchmarks/results/speed_peers.json]

Cases (issue 12's goals): ``mr``: the real brain MR (``mr-brain-tumour``,
no mask: the engine's automatic mask, Atropos on the whole array, K = 5);
``mni``: MNI152 at 5 % noise / 20 % bias with its brain mask (K = 3).
Each run is a fresh process (:func:`_one`) so that neither pays the
other's imports or memory; engine and Atropos alternate, so both meet the
same machine load. Both get the same number of threads (torch's intra-op
threads; ITK's global default for Atropos).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from .common import ROOT

CASES = ("mr", "mni")
_K = {"mr": 5, "mni": 3}


def _load(case):
    import numpy as np

    if case == "mr":
        from .real_cases import real_cases

        (c,) = real_cases(names=("mr-brain-tumour",))
        return np.asarray(c.image, np.float32), tuple(c.spacing), None
    from napari_dfcseg.datasets import mni152

    p = mni152(noise=0.05, bias=0.2, seed=0)
    return p.image.astype(np.float32), tuple(p.spacing), p.mask


def _one(case, method, threads):
    """Run one method on one case in this process; returns wall and CPU seconds."""
    import resource

    import torch

    torch.set_num_threads(threads)
    image, spacing, mask = _load(case)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    if method == "engine":
        from napari_dfcseg import segment

        result = segment(image, spacing=spacing, mask=mask, seed=0, device="cpu")
        extra = {"n_labels": int(result.n_labels), "n_iterations": int(result.n_iterations)}
    else:
        from .peers import atropos

        atropos(image, _K[case], mask=mask, spacing=spacing)
        extra = {"k": _K[case]}
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"case": case, "method": method, "shape": list(image.shape), "wall_s": wall,
            "cpu_s": usage.ru_utime - before.ru_utime + usage.ru_stime - before.ru_stime,
            "system_s": usage.ru_stime - before.ru_stime, **extra}


def _spawn(case, method, threads):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "benchmarks.speed_peers", "--one", case, method,
           "--threads", str(threads)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{case} {method} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--out", default=None, help="JSON file of the runs")
    parser.add_argument("--one", nargs=2, metavar=("CASE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(_one(*args.one, args.threads)))
        return 0
    runs = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        for _ in range(args.repeats):
            pair = {}
            for method in ("engine", "atropos"):
                load = os.getloadavg()[0]
                r = _spawn(case, method, args.threads)
                r["load_1min_start"], r["load_1min_end"] = load, os.getloadavg()[0]
                pair[method] = r
                runs.append(r)
            print(f"{case}: engine {pair['engine']['wall_s']:.1f} s (CPU "
                  f"{pair['engine']['cpu_s']:.1f}), Atropos(K={_K[case]}) "
                  f"{pair['atropos']['wall_s']:.1f} s (CPU {pair['atropos']['cpu_s']:.1f}): "
                  f"{pair['engine']['wall_s'] / pair['atropos']['wall_s']:.2f}x wall, "
                  f"{pair['engine']['cpu_s'] / pair['atropos']['cpu_s']:.2f}x CPU "
                  f"(load {pair['engine']['load_1min_start']:.1f}-"
                  f"{pair['atropos']['load_1min_end']:.1f})", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"command": "python -m benchmarks.speed_peers " + " ".join(
                argv if argv is not None else sys.argv[1:]), "threads": args.threads,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": runs}, f,
                indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
