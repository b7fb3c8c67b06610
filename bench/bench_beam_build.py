"""Apache Beam build vs in-process build of `hamiltonian_systems/<system>`: time and equality.

    python bench/bench_beam_build.py [--system pendulum] [--num-train N --num-test M]
                                     [--beam-runner DirectRunner] [--beam-workers 2]
                                     [--workers W] [--data-dir DIR] [--keep]

Builds the same config twice into separate data dirs: in process (`hgn_tf.physics.parallel`,
W threads; default all cores) and as a Beam pipeline (default: DirectRunner, 2 worker processes,
`direct_running_mode=multi_processing`). Prints each build's wall time (the
`download_and_prepare` call only: the process's own imports are not counted; the Beam workers'
start-up, which imports TensorFlow in each, is), sequences/s, and then:

- files: whether every file of the two builds (records, dataset_info.json, features.json) is
  the same byte for byte;
- records: per split, the SHA-256 of all records read in shard order, for each build (equal when
  the records are the same bytes in the same order, whatever the shard boundaries);
- shards: each build's shard lengths per split (TFDS's Beam writer cuts shards by hashed-key
  range, its in-process writer by count, so they differ once a split has several shards).

Default sizes: the builder's config (50,000 + 10,000 for the registered configs). With
--num-train/--num-test, a config `<system>_<N>_<M>` of that size (`HamiltonianSystemsConfig`).
Exit status 1 when the record streams differ.
"""

import argparse
import hashlib
import os
import pathlib
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import hgn_tf.datasets  # noqa: E402,F401
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from hgn_tf.datasets.hamiltonian_systems import HamiltonianSystemsConfig  # noqa: E402

from hgn_tf import data, physics  # noqa: E402


def _builder(args, data_dir):
    if args.num_train is None and args.num_test is None:
        return tfds.builder(f"hamiltonian_systems/{args.system}", data_dir=data_dir,
                            num_workers=args.workers)
    n = args.num_train or HamiltonianSystemsConfig.num_train
    m = args.num_test or HamiltonianSystemsConfig.num_test
    cfg = HamiltonianSystemsConfig(name=f"{args.system}_{n}_{m}", system=args.system,
                                   num_train=n, num_test=m)
    return tfds.builder("hamiltonian_systems", config=cfg, data_dir=data_dir,
                        num_workers=args.workers)


def _timed_build(builder, beam_options=None):
    t0 = time.perf_counter()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(beam_options=beam_options))
    return time.perf_counter() - t0


def _record_digest(builder, split):
    files = sorted(str(f) for f in pathlib.Path(builder.data_dir).glob(f"*-{split}.tfrecord-*"))
    digest = hashlib.sha256()
    for record in tf.data.TFRecordDataset(files).as_numpy_iterator():
        digest.update(len(record).to_bytes(8, "little"))
        digest.update(record)
    return digest.hexdigest()


def _files(builder):
    return {f.name: f for f in sorted(pathlib.Path(builder.data_dir).iterdir())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", default="pendulum", choices=physics.SYSTEM_NAMES)
    ap.add_argument("--num-train", type=int, default=None)
    ap.add_argument("--num-test", type=int, default=None)
    ap.add_argument("--beam-runner", default="DirectRunner")
    ap.add_argument("--beam-workers", type=int, default=2)
    ap.add_argument("--workers", type=int, default=None, help="in-process threads (all cores)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--running-mode", choices=("multi_processing", "multi_threading", "in_memory"),
                    default="multi_processing",
                    help="the DirectRunner's direct_running_mode (its workers: processes or "
                         "threads)")
    ap.add_argument("--beam-only", action="store_true",
                    help="skip the in-process build; print the Beam build's record digests "
                         "(compare them with an in-process run's)")
    args = ap.parse_args()
    tfds.disable_progress_bar()
    if args.beam_runner in data.BEAM_LOCAL_RUNNERS:
        options = data.beam_options(args.beam_runner, None, [
            f"direct_num_workers={args.beam_workers}",
            f"direct_running_mode={args.running_mode}"])
    else:
        options = data.beam_options(args.beam_runner, args.beam_workers)
    root = pathlib.Path(args.data_dir or tempfile.mkdtemp(prefix="hgn_bench_beam_"))
    print(f"cores: {os.cpu_count()}, in-process threads: {args.workers or os.cpu_count()}, "
          f"Beam: {args.beam_runner} with {args.beam_workers} workers ({args.running_mode}), "
          f"data dir: {root}")
    try:
        plain = _builder(args, str(root / "plain"))
        on_beam = _builder(args, str(root / "beam"))
        n = plain.builder_config.num_train + plain.builder_config.num_test
        print(f"config {plain.builder_config.name}: {plain.builder_config.num_train} + "
              f"{plain.builder_config.num_test} sequences")
        seconds = {}
        builds = (("in-process", plain, None), ("beam", on_beam, options))
        for name, builder, beam in builds[1:] if args.beam_only else builds:
            seconds[name] = s = _timed_build(builder, beam)
            print(f"{name:10}  {s:8.1f} s  {n / s:7.1f} sequences/s  (finished "
                  f"{time.strftime('%H:%M:%S')})", flush=True)
        if args.beam_only:
            for split in ("train", "test"):
                print(f"{split:5} records sha256  beam {_record_digest(on_beam, split)[:16]}  "
                      f"shard lengths {on_beam.info.splits[split].shard_lengths}")
            return 0
        print(f"beam / in-process time: {seconds['beam'] / seconds['in-process']:.2f}x")
        a, b = _files(plain), _files(on_beam)
        same = sorted(a) == sorted(b) and all(a[k].read_bytes() == b[k].read_bytes() for k in a)
        print(f"files: {len(a)} in-process, {len(b)} beam; all byte-identical: {same}")
        ok = True
        for split in ("train", "test"):
            da, db = _record_digest(plain, split), _record_digest(on_beam, split)
            ok &= da == db
            print(f"{split:5} records sha256  in-process {da[:16]}  beam {db[:16]}  "
                  f"equal: {da == db}")
            print(f"{split:5} shard lengths   in-process "
                  f"{plain.info.splits[split].shard_lengths}  beam "
                  f"{on_beam.info.splits[split].shard_lengths}")
    finally:
        if not args.keep and args.data_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
