"""Benchmark evaluation at SOP test scale: dml's metrics vs pytorch-metric-learning's AccuracyCalculator.

Makes N x D L2-normalised float32 embeddings around C class centres (default: SOP's test set,
60,502 x 512 over 11,316 classes, 2 to ~15 images per class), then runs each method in its own
subprocess on the same data and reports wall time of the metric call and the process's peak
resident memory (ru_maxrss: everything, torch and faiss included; "RSS before the call" is the
process with its imports and the data loaded). Also measures the machine's
float32 matmul rate and the time 2 N^2 D flops would take at that rate (the matmul floor of a
full similarity matrix). Prints a markdown table.

    python scripts/bench_eval.py            # full size (minutes on 2 cores)
    python scripts/bench_eval.py --n 5000   # quick run
    python scripts/bench_eval.py --repeats 2 --methods dml-retrieval,pml-retrieval
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOP_N, SOP_CLASSES, SOP_KS = 60502, 11316, (1, 10, 100, 1000)

METHODS = {
    "dml-retrieval": "dml retrieval_metrics, ks 1,2,4,8 (Recall@K, MAP@R, R-Precision)",
    "dml-retrieval-sop": "dml retrieval_metrics, SOP ks 1,10,100,1000",
    "dml-clustering": "dml clustering_metrics (faiss k-means K=C, NMI, F1)",
    "pml-retrieval": "PML AccuracyCalculator (precision_at_1, r_precision, MAP@R), k=max_bin_count",
    "pml-nmi": "PML AccuracyCalculator NMI (faiss k-means K=C)",
}


def make_data(n: int, classes: int, dim: int, noise: float, seed: int):
    """Clustered unit vectors: every class has >= 2 items, the rest assigned at random."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if n < 2 * classes:
        raise SystemExit(f"--n {n} is too small for {classes} classes with 2 items each")
    labels = np.concatenate(
        [np.arange(classes), np.arange(classes), rng.integers(0, classes, n - 2 * classes)]
    )
    labels = rng.permutation(labels)
    centres = rng.standard_normal((classes, dim), dtype=np.float32)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 8192):  # in chunks: no float64 copy of the whole set
        part = centres[labels[s : s + 8192]] + noise * rng.standard_normal(
            (len(labels[s : s + 8192]), dim), dtype=np.float32
        )
        x[s : s + 8192] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return x, labels.astype(np.int64)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def worker(method: str, data: str) -> None:
    """Run one method on the saved data and print one JSON line: seconds, peak RSS, metrics."""
    import numpy as np
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    from dml.metrics import clustering_metrics, retrieval_metrics

    x, labels = np.load(data + ".x.npy"), np.load(data + ".labels.npy")
    rate = matmul_gflops(size=2048)  # how much of the machine this process gets right now
    baseline = current_rss_mb()
    start = time.perf_counter()
    if method == "dml-retrieval":
        out = retrieval_metrics(x, labels, ks=(1, 2, 4, 8))
    elif method == "dml-retrieval-sop":
        out = retrieval_metrics(x, labels, ks=SOP_KS)
    elif method == "dml-clustering":
        out = clustering_metrics(x, labels)
    elif method in ("pml-retrieval", "pml-nmi"):
        include = (
            ("precision_at_1", "r_precision", "mean_average_precision_at_r")
            if method == "pml-retrieval"
            else ("NMI",)
        )
        calc = AccuracyCalculator(include=include, k="max_bin_count", device=torch.device("cpu"))
        out = calc.get_accuracy(torch.from_numpy(x), torch.from_numpy(labels))
    else:
        raise SystemExit(f"unknown method {method}; choose from {sorted(METHODS)}")
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak_rss_mb(),
                "baseline_mb": baseline,
                "gflops": rate,
                "metrics": {k: float(v) for k, v in out.items()},
            }
        )
    )


def matmul_gflops(size: int = 4096, repeats: int = 3) -> float:
    """Best float32 GFLOP/s of a size^3 torch matmul on this machine, now."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def short(metrics: dict) -> str:
    names = {
        "recall@1": "R@1",
        "precision_at_1": "R@1",
        "map@r": "MAP@R",
        "mean_average_precision_at_r": "MAP@R",
        "r_precision": "RP",
        "recall@1000": "R@1000",
        "nmi": "NMI",
        "NMI": "NMI",
        "f1": "F1",
    }
    return ", ".join(f"{names[k]} {v:.4f}" for k, v in metrics.items() if k in names)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, default=SOP_N, help="number of embeddings (default: SOP test, 60502)"
    )
    parser.add_argument(
        "--classes",
        type=int,
        default=None,
        help="classes (default: SOP's ratio, 11316 at full size)",
    )
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument(
        "--noise", type=float, default=2.4, help="noise std per dimension around class centres"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods",
        default="dml-retrieval,dml-retrieval-sop,pml-retrieval,dml-clustering",
        help=f"comma-separated, from: {','.join(METHODS)}",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds over the methods (best time kept)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data)
        return

    import numpy as np
    import torch

    classes = args.classes or max(2, round(SOP_CLASSES * args.n / SOP_N))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    x, labels = make_data(args.n, classes, args.dim, args.noise, args.seed)
    gflops_before = matmul_gflops()
    load_before = os.getloadavg()
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "emb")
        np.save(data + ".x.npy", x)
        np.save(data + ".labels.npy", labels)
        del x
        order = [
            m for rep in range(args.repeats) for m in (methods if rep % 2 == 0 else methods[::-1])
        ]
        for m in order:
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", m, "--data", data],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{m} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.setdefault(m, []).append(result)
            print(
                f"# {m}: {result['seconds']:.1f} s, peak {result['peak_mb']:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
    load_after = os.getloadavg()
    gflops_after = matmul_gflops()
    gflops = max(gflops_before, gflops_after)
    floor_s = 2 * args.n**2 * args.dim / (gflops * 1e9)

    sizes = np.bincount(labels)
    print(
        f"\nN = {args.n:,} x D = {args.dim}, {classes:,} classes ({sizes.min()}-{sizes.max()} per class), "
        f"float32, noise {args.noise}, seed {args.seed}"
    )
    print(
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), load average {load_before[0]:.1f} before / {load_after[0]:.1f} after"
    )
    print(
        f"float32 matmul (torch, 4096^3): {gflops_before:.0f} GFLOP/s before, {gflops_after:.0f} after; "
        f"floor 2*N^2*D = {2 * args.n**2 * args.dim / 1e12:.2f} TFLOP at the better rate -> {floor_s:.1f} s\n"
    )
    print(
        f"each method in its own process, run {args.repeats}x (order reversed on every other round); "
        "time: best run (all runs); x floor: best time / (2*N^2*D at the matmul rate measured in that "
        "process just before its call)\n"
    )
    print(
        "| method | what | time (s) | x floor | matmul GFLOP/s before call | peak RSS (MiB) "
        "| RSS before call (MiB) | metrics |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    flops = 2 * args.n**2 * args.dim
    for m, runs in rows.items():
        best = min(runs, key=lambda r: r["seconds"])
        times = ", ".join(f"{r['seconds']:.1f}" for r in runs)
        print(
            f"| {m} | {METHODS[m]} | {best['seconds']:.1f} ({times}) "
            f"| {best['seconds'] * best['gflops'] * 1e9 / flops:.2f} | {best['gflops']:.0f} "
            f"| {max(r['peak_mb'] for r in runs):.0f} | {best['baseline_mb']:.0f} | {short(best['metrics'])} |"
        )


if __name__ == "__main__":
    main()
