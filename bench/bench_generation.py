"""Full-dataset generation benchmark: builds `hamiltonian_systems/<system>` with TFDS and prints
sequences/s and the total time (simulation, rendering, encoding and writing TFRecords), then how
fast the stored sequences decode (tf.data over the train split).

    python bench/bench_generation.py [--systems pendulum two_body ...] [--workers N]
                                     [--max-examples N] [--data-dir DIR] [--keep]

Default: every system, the full 50,000 + 10,000 sequences, all cores, a temporary data dir that
is removed afterwards (unless --keep).
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import hgn_tf.datasets  # noqa: E402,F401
import tensorflow_datasets as tfds  # noqa: E402

from hgn_tf import physics  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--systems", nargs="+", default=list(physics.SYSTEM_NAMES),
                    choices=physics.SYSTEM_NAMES)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--max-examples", type=int, default=None)
    ap.add_argument("--resolution", type=int, default=32, choices=(32, 64))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--read", type=int, default=10_000,
                    help="also time decoding this many train sequences (0: skip)")
    args = ap.parse_args()
    tfds.disable_progress_bar()
    root = args.data_dir or tempfile.mkdtemp(prefix="hgn_bench_")
    print(f"cores: {os.cpu_count()}, workers: {args.workers or os.cpu_count()}, data dir: {root}")
    rows = []
    try:
        for system in args.systems:
            name = system if args.resolution == 32 else f"{system}_{args.resolution}"
            builder = tfds.builder(f"hamiltonian_systems/{name}", data_dir=root,
                                   num_workers=args.workers)
            config = None
            if args.max_examples:
                config = tfds.download.DownloadConfig(max_examples_per_split=args.max_examples)
            t0 = time.perf_counter()
            builder.download_and_prepare(download_config=config)
            seconds = time.perf_counter() - t0
            n = sum(s.num_examples for s in builder.info.splits.values())
            size = sum(s.num_bytes for s in builder.info.splits.values()) / 2**20
            rows.append((system, n, seconds, n / seconds, size))
            read = ""
            if args.read:
                ds = builder.as_dataset(split="train").take(args.read).prefetch(64)
                t0 = time.perf_counter()
                count = sum(1 for _ in ds)
                read = f"  read {count / (time.perf_counter() - t0):6.0f} seq/s"
            print(f"{system:18} {n:6d} sequences  {seconds:7.1f} s  {n / seconds:7.0f} seq/s  "
                  f"{size:7.1f} MiB{read}", flush=True)
            if not args.keep and not args.data_dir:
                shutil.rmtree(os.path.join(root, "hamiltonian_systems"), ignore_errors=True)
    finally:
        if not args.keep and not args.data_dir:
            shutil.rmtree(root, ignore_errors=True)
    total = sum(r[2] for r in rows)
    print(f"total: {sum(r[1] for r in rows)} sequences in {total:.1f} s")


if __name__ == "__main__":
    main()
