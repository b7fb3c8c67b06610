"""The floor of the physical plausibility scores: ground-truth frames read back (issue 9).

For each system, the first N sequences of the test split (seed 0, exactly the TFDS test split's
first N: `physics.generate` is what the builder calls) are read back with
`hgn_tf.physics.readback` and scored with `hgn_tf.plausibility`, twice: the stored frames
(rendered from the noisy states: the floor a model is compared with) and the clean states
rendered (what a perfect model of the clean dynamics would draw). Prints a Markdown table.

    python bench/physics_floor.py [--n 64] [--systems pendulum ...]
"""

import argparse
import time

from hgn_tf import physics, plausibility


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="test sequences per system")
    ap.add_argument("--systems", nargs="+", default=list(physics.SYSTEM_NAMES),
                    choices=physics.SYSTEM_NAMES, help="the systems to score")
    args = ap.parse_args()
    print("| system | frames | found | energy rel. var. mean / median | energy rel. drift mean / "
          "median | position error (px) mean / median | rod residual |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.systems:
        system = physics.get(name)
        start = time.time()
        data = physics.generate(system, args.n, seed=0, split="test")
        for label, frames in (("test (noisy)", data["frames"]),
                              ("clean states", physics.render_states(system, data["q"]))):
            r = plausibility.physics_report(frames, system, 0.125, true_q=data["q"])
            rod = r.get("constraint_residual")
            print(f"| {name} | {label} | {r['found_fraction']:.3f} | "
                  f"{r['energy_rel_var']:.2e} / {r['energy_rel_var_median']:.2e} | "
                  f"{r['energy_rel_drift']:.3f} / {r['energy_rel_drift_median']:.3f} | "
                  f"{r['position_error_px']:.3f} / {r['position_error_px_median']:.3f} | "
                  f"{'-' if rod is None else f'{rod:.4f}'} |", flush=True)
        print(f"<!-- {name}: {time.time() - start:.1f} s -->", flush=True)


if __name__ == "__main__":
    main()
