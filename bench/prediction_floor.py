"""What a model that reads the first K frames can score at best on the frames after them.

    python bench/prediction_floor.py [--systems ...] [--samples 256 --seed 1] [--pictures DIR]

For each system's `hamiltonian_systems` dataset (the `cpu` preset's data, 30 frames), prints the
prediction protocol's floors beside the clean-states noise floor, test split, frames K-29:

    expected frame   the true dynamics' expected frames given the noisy positions of
                     the K frames read (`hgn_tf.physics.inference`): the lowest expected pixel
                     MSE any predictor that reads those frames can reach
    best fit, sharp  the best-fit initial state's rollout, rendered sharp (maximum likelihood;
                     for the n-body systems the jitter's Gaussian prior is in the fit)
    clean states     the stored clean states rendered sharp (`table1`'s noise floor): a model
                     that knew the true state, which K noisy frames do not give
    clean states, noise averaged in, frames read copied
                     the best a model that knew the clean states could draw: the K frames read
                     as they are, each later frame the expected render of its clean position
                     plus the observation noise (n noise draws averaged); no model that reads
                     K frames has a lower expected MSE on any later frame, on any system

each with the pixel MSE, its ratio to the mean-frame baseline, the mean and median valid
prediction time (`hgn_tf.metrics`), and the importance sampler's median effective sample size.
With
`--pictures DIR`, writes DIR/<system>_prediction_floor.png: four test sequences, truth, floor
(the expected frames) and the best fit's sharp rollout, the red line after frame K - 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hgn_tf import config as C  # noqa: E402
from hgn_tf import data as data_lib  # noqa: E402
from hgn_tf import physics, plots  # noqa: E402
from hgn_tf.evaluate import PREDICTION_FLOOR_SAMPLES, rollout_report  # noqa: E402
from hgn_tf.experiments import table1  # noqa: E402
from hgn_tf.physics.inference import posterior_frames  # noqa: E402


def pictures(cfg, frames_read: int, n_samples: int, seed: int, out: pathlib.Path) -> None:
    data_cfg = dataclasses.replace(cfg.data, n_frames=physics.STORED_FRAMES)
    a = data_lib.load_arrays(data_cfg, "test", keys=("frames", "q_noisy", "t"), limit=4)
    system = physics.get(cfg.data.system)
    post = posterior_frames(system, a["q_noisy"], a["t"][0], frames_read=frames_read,
                            n_samples=n_samples, seed=seed, resolution=data_cfg.resolution)
    sharp = physics.render_states(system, post["fit_q"], data_cfg.resolution) / 255.0
    out.mkdir(parents=True, exist_ok=True)
    path = plots.grid_png([a["frames"], post["frames"], sharp],
                          out / f"{cfg.data.system}_prediction_floor.png",
                          labels=[f"truth {i}" for i in range(4)] + [f"floor {i}" for i in range(4)]
                          + [f"fit {i}" for i in range(4)], mark_after=frames_read - 1)
    print(f"  wrote {path}")


def clean_expected(cfg, frames_read: int, n_sequences: int, n_draws: int, seed: int) -> dict:
    """A model that knew the clean states: the frames read copied, each later frame the expected
    render of its clean position plus the observation noise (`n_draws` noise draws averaged)."""
    data_cfg = dataclasses.replace(cfg.data, n_frames=physics.STORED_FRAMES)
    mean_frame = data_lib.load_arrays(data_cfg, "train", limit=n_sequences)["frames"].mean(
        axis=(0, 1))
    a = data_lib.load_arrays(data_cfg, "test", keys=("frames", "q"), limit=n_sequences)
    system = physics.get(cfg.data.system)
    rng = np.random.default_rng(seed)
    q = a["q"].astype(np.float64)
    pred = np.zeros(a["frames"].shape, np.float32)
    for _ in range(n_draws):
        pred += physics.render_states(system, q + system.noise_std * rng.standard_normal(q.shape),
                                      data_cfg.resolution) / np.float32(255)
    pred /= n_draws
    pred[:, :frames_read] = a["frames"][:, :frames_read]
    return rollout_report(pred, a["frames"], None, mean_frame=mean_frame,
                          frames_read=frames_read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(table1.SYSTEMS),
                        help="systems to score (default: the four of Table 1)")
    parser.add_argument("--frames-read", type=int, default=table1.PREDICTION_INPUT_FRAMES,
                        help="K, the frames the predictor reads (default: the protocol's 5)")
    parser.add_argument("--samples", type=int, default=PREDICTION_FLOOR_SAMPLES,
                        help="importance samples per sequence")
    parser.add_argument("--sequences", type=int, default=256, help="test sequences scored")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    parser.add_argument("--pictures", type=pathlib.Path, default=None,
                        help="folder for a picture per system (truth, floor, best-fit rollout)")
    args = parser.parse_args()
    print(f"frames read {args.frames_read}, {args.sequences} sequences, {args.samples} samples, "
          f"seed {args.seed}; test split, scored on frames {args.frames_read}-29")
    print("| system | floor | pixel MSE x1e4 | / mean frame | VPT mean / median |")
    print("| --- | --- | --- | --- | --- |")
    for system in args.systems:
        cfg = C.cpu(system)
        start = time.perf_counter()
        post = table1.prediction_floor(cfg, args.frames_read, args.sequences, args.samples,
                                       args.seed)["test"]
        print(f"  ({system}: {time.perf_counter() - start:.1f} s for both splits' posterior)")
        rows = [(f"expected frame (ESS median {post['ess_median']:.1f} of {args.samples})", post),
                (f"best fit, sharp (chi2 median {post['chi2_median']:.2f})", post["fit"]),
                ("clean states, sharp (noise floor)",
                  table1.noise_floor(cfg, args.frames_read, args.sequences)["test"]),
                 ("clean states, noise averaged in, frames read copied",
                  clean_expected(cfg, args.frames_read, args.sequences, args.samples, args.seed))]
        for name, r in rows:
            w = r["after"]
            print(f"| {system} | {name} | {w['pixel_mse'] * 1e4:.2f} | "
                  f"{w['ratio_to_mean_frame']:.2f}x | {r['vpt']:.1f} / {r['vpt_median']:.1f} |",
                  flush=True)
        if args.pictures is not None:
            pictures(cfg, args.frames_read, args.samples, args.seed, args.pictures)

if __name__ == "__main__":
    main()
