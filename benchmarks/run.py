"""Run the benchmark suite and render docs/benchmarks.md.

    python -m benchmarks.run [--quick] [--device cpu|cuda] [--only quality,speed,e2e,...]
    python -m benchmarks.run --only real [--quick]    # real scans, MNI 9/40, demo (issue 11)

Full runs write ``benchmarks/results/*.json`` (``benchmarks/results/gpu/`` with
``--device cuda``) and ``docs/benchmarks.md`` + ``docs/img/bench_*.png``; quick
runs write everything under ``benchmarks/results/quick/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .common import RESULTS, load_results, machine_info, save_results

PARTS = ("quality", "real", "speed", "e2e", "ct", "scaling", "figures")


def _items(text):
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _overrides(items):
    """``["n_clusters=3", "lr=0.01"]`` → ``{"n_clusters": 3, "lr": 0.01}``."""
    import ast

    out = {}
    for item in items:
        field, _, value = item.partition("=")
        try:
            out[field.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[field.strip()] = value.strip()  # a bare word, e.g. stop_rule=eval
    return out


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few iterations")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts among {', '.join(PARTS)}")
    parser.add_argument("--no-engine", action="store_true",
                        help="quality: baselines only (seconds, no torch)")
    parser.add_argument("--presets", default="default,fast,paper", help="quality: engine presets")
    parser.add_argument("--modes", default="2d,3d", help="quality: engine modes")
    parser.add_argument("--seeds", default="0,1,2", help="quality: engine seeds")
    parser.add_argument("--scribble-slices", default="1,3",
                        help="quality: numbers of scribbled slices ('' for none)")
    parser.add_argument("--override", action="append", default=[], metavar="FIELD=VALUE",
                        help="quality: change a DFCConfig field in every engine run "
                             "(repeatable; VALUE is a Python literal), e.g. n_clusters=3")
    parser.add_argument("--no-grid", action="store_true", help="quality: skip the MNI grid")
    parser.add_argument("--no-phantoms", action="store_true", help="quality: skip the phantoms")
    parser.add_argument("--no-reference", action="store_true",
                        help="quality: skip the MNI reference point (baselines and engine)")
    parser.add_argument("--tag", default=None,
                        help="quality: write quality-TAG.json (merged with the others "
                             "by the report) instead of quality.json; real: real-TAG.json")
    parser.add_argument("--real-parts", default="scans,mni,demo",
                        help="real: among scans (CT/MR), mni (5/20, 9/40), demo (seeds 0-9)")
    parser.add_argument("--real-cases", default=None,
                        help="real: comma-separated scans (default all), e.g. ct-abdomen-3mm")
    parser.add_argument("--real-preset", default="default", help="real: the engine preset")
    parser.add_argument("--real-reuse-peers", default=None, metavar="NAME",
                        help="real: copy the peers' records from results/NAME.json (e.g. "
                             "real-before) instead of re-running them; GMM(8) on the CT is "
                             "always re-run as the time reference")
    parser.add_argument("--real-mode", default="2d", help="real: the engine mode")
    parser.add_argument("--results", default=None, help="folder of the JSON results")
    parser.add_argument("--docs", default=None, help="folder of benchmarks.md (img/ inside)")
    parser.add_argument("--figure-downscale", type=int, default=1,
                        help="figures: keep every n-th pixel of the paper's images (faster)")
    parser.add_argument("--figure-iter", type=int, default=100,
                        help="figures: most iterations per image and implementation")
    parser.add_argument("--before-src", default=None, metavar="SRC",
                        help="ct: also time the engine of another checkout's src folder, "
                             "alternating with this one (before/after table)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, all cores)")
    parser.add_argument("--contended", action="store_true",
                        help="mark timings as taken under CPU contention")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; "
                     f"choose among {', '.join(PARTS)}")
    default_results = RESULTS / ("quick" if args.quick else "gpu" if args.device != "cpu" else "")
    args.results = Path(args.results) if args.results else default_results
    if args.docs is None:
        separate = args.quick or args.device != "cpu"  # keep docs/ for the full CPU run
        args.docs = args.results if separate else RESULTS.parents[1] / "docs"
    args.docs = Path(args.docs)
    return args


def main(argv=None):
    args = _parse(argv)
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the worker processes
    machine = machine_info(args.device)
    load = machine.get("load_average_1min", 0.0)
    contended = args.contended or load > 0.5 * (os.cpu_count() or 1)

    def stamp(payload):
        # DFC_BENCH_ENGINE: where the engine under test came from (e.g. a branch and commit)
        source = {"engine_source": os.environ["DFC_BENCH_ENGINE"]} \
            if os.environ.get("DFC_BENCH_ENGINE") else {}
        return {"command": command.strip(), "machine": machine, "contended": contended,
                "quick": args.quick, **source, **payload}

    started = time.perf_counter()
    print(f"benchmarks → {args.results} ({'quick' if args.quick else 'full'}, {args.device}; "
          f"load {load}{', contended' if contended else ''})")
    if "quality" in args.parts:
        from .quality import run_quality

        print("== quality")
        name = f"quality-{args.tag}" if args.tag else "quality"

        def checkpoint(settings, records):  # a long run keeps what it measured if stopped
            save_results(name, stamp({"settings": settings, "records": records,
                                      "partial": True}), folder=args.results)

        payload = run_quality(
            quick=args.quick, device=args.device, engine=not args.no_engine,
            presets=_items(args.presets), modes=_items(args.modes),
            seeds=tuple(int(s) for s in _items(args.seeds)),
            scribble_slices=tuple(int(n) for n in _items(args.scribble_slices)),
            grid=not args.no_grid, phantoms=not args.no_phantoms,
            reference=not args.no_reference, checkpoint=checkpoint,
            overrides=_overrides(args.override))
        save_results(name, stamp(payload), folder=args.results)
    if "real" in args.parts:
        from .real import run_real

        print("== real scans (issue 11)")
        name = f"real-{args.tag}" if args.tag else "real"

        def checkpoint_real(settings, records):
            save_results(name, stamp({"settings": settings, "records": records,
                                      "partial": True}), folder=args.results)

        # --seeds defaults to 0,1,2; --quick keeps one seed unless --seeds is given
        seeds = tuple(int(s) for s in _items(args.seeds))
        payload = run_real(quick=args.quick, seeds=None if args.quick and args.seeds == "0,1,2"
                           else seeds, device=args.device, parts=_items(args.real_parts),
                           cases=_items(args.real_cases) if args.real_cases else None,
                           reuse_peers=load_results(args.real_reuse_peers, folder=args.results)
                           if args.real_reuse_peers else None,
                           preset=args.real_preset, mode=args.real_mode,
                           overrides=_overrides(args.override), checkpoint=checkpoint_real)
        save_results(name, stamp(payload), folder=args.results)
    if "speed" in args.parts:
        from .speed import per_iteration

        print("== speed: per iteration vs the original")
        n_iter, warmup = (3, 1) if args.quick else (20, 3)
        r = per_iteration(n_iter=n_iter, warmup=warmup, crop=96 if args.quick else None,
                          device=args.device)
        save_results("speed_per_iteration", stamp({"result": r}), folder=args.results)
        print(f"   ratio engine / original = {r['ratio']:.2f}")
    if "e2e" in args.parts:
        from .speed import end_to_end_mni

        print("== speed: end to end on MNI152")
        runs = end_to_end_mni(crop=16 if args.quick else None, max_iter=3 if args.quick else None,
                              quick=args.quick, device=args.device)
        save_results("end_to_end", stamp({"runs": runs}), folder=args.results)
    if "ct" in args.parts:
        from .speed import end_to_end_ct

        print("== speed: end to end on CT, default settings")
        names = ("ct-abdomen-3mm",) if args.quick else ("ct-abdomen-3mm", "ct-512x512x20",
                                                       "ct-512x512x300")
        runs = end_to_end_ct(names=names, quick=args.quick, device=args.device)
        save_results("end_to_end_ct", stamp({"runs": runs}), folder=args.results)
        if args.before_src:
            from .speed import before_after_ct

            print("== speed: CT before/after")
            runs = before_after_ct(args.before_src, names=names[:2], device=args.device)
            save_results("end_to_end_ct_before_after",
                         stamp({"before_src": args.before_src, "runs": runs}),
                         folder=args.results)
    if "scaling" in args.parts:
        from .speed import scaling

        print("== scaling")
        save_results("scaling", stamp({"runs": scaling(quick=args.quick, device=args.device)}),
                     folder=args.results)
    if "figures" in args.parts:
        from .figures import paper_images

        print("== figures: the paper's 2D images")
        img = args.docs / "img"
        summary = paper_images(img / "bench_paper_images.png",
                               max_iter=2 if args.quick else args.figure_iter,
                               downscale=4 if args.quick else args.figure_downscale,
                               device=args.device)
        save_results("figures", stamp({"summary": summary}), folder=args.results)

    from .report import render

    print(f"report: {render(args.results, args.docs)}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
