"""Typed, frozen configs for data, model and training, and the presets written in Python.

A run is described by one `RunConfig` (data + model + train + geco). It round-trips through JSON
(`to_dict` / `from_dict`, `save` / `load`); unknown keys are errors, so a typo in a preset file
cannot be silently ignored.

Presets:
  `paper(system)`: HGN appendix A.1 / A.5 -- batch 16, Adam 1.5e-4, 15,000 steps, dt 0.125,
      leapfrog, encoder 8 layers (32, 64 x 6, 48), f_psi 3 strided convs of 64, Hamiltonian 6 convs
      of 64, decoder 3 residual blocks of 64, state 4x4x(16+16), 30 frames, 50,000 sequences.
  `small(system)`: a CPU preset, about 10 minutes on 2 cores (narrower nets, 12 frames, 4,096
      training sequences, 1,200 steps, GECO starting at lambda = 1e5).
"""

from __future__ import annotations

import dataclasses
import json
import typing

from hgn_tf import errors
from hgn_tf.errors import check as _check
from hgn_tf.geco import GecoConfig
from hgn_tf.integrators import NAMES as INTEGRATORS
from hgn_tf.physics import STORED_FRAMES, SUPPORTED_RESOLUTIONS, SYSTEM_NAMES

__all__ = [
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
    "RunConfig",
    "GecoConfig",
    "CONFIG_FILE",
    "PRESETS",
    "VARIANTS",
    "preset",
    "paper",
    "small",
    "cpu",
    "tiny",
    "dataclass_from_dict",
]

DYNAMICS = ("hamiltonian", "direct")
LATENTS = ("spatial", "vector")
# The variants of HGN's Table 1 (and the reproduction's "integrator modelling"), as the
# `ModelConfig` fields each sets; "full" is the HGN as published. The integrator is set apart.
VARIANTS = {
    "full": {},
    "deterministic": {"deterministic": True},
    "no-f-psi": {"use_f_psi": False},
    "direct": {"dynamics": "direct"},
}
# The file that holds a run's resolved config in its folder.
CONFIG_FILE = "config.json"
INPUT_MODES = ("autoencode", "inference")
PRECISIONS = ("float32", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored")
LR_SCHEDULES = ("constant", "cosine")


def _positive_int(obj, *fields):
    for f in fields:
        errors.positive_int(f, getattr(obj, f))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which `hamiltonian_systems` data a run reads and how it is cut.

    Attributes:
      system: a `hgn_tf.SYSTEM_NAMES` entry.
      resolution: 32 or 64 (selects the `<system>` or `<system>_64` TFDS config).
      n_frames: frames per training sequence (the first `n_frames` of each stored 30).
      max_examples: build only the first N sequences of each split (None: the full 50,000/10,000).
      data_dir: TFDS data directory (None: TFDS's default, ~/tensorflow_datasets).
      validation_fraction: share of the training split held out for validation (by index).
      shuffle_buffer: tf.data shuffle buffer of training sequences.
    """

    system: str = "pendulum"
    resolution: int = 32
    n_frames: int = 30
    max_examples: int | None = None
    data_dir: str | None = None
    validation_fraction: float = 0.05
    shuffle_buffer: int = 1024

    def __post_init__(self):
        _check(
            self.system in SYSTEM_NAMES,
            "system",
            self.system,
            f"one of {SYSTEM_NAMES}",
        )
        _check(
            self.resolution in SUPPORTED_RESOLUTIONS,
            "resolution",
            self.resolution,
            f"one of {SUPPORTED_RESOLUTIONS}",
        )
        _positive_int(self, "n_frames", "shuffle_buffer")
        _check(
            self.n_frames <= STORED_FRAMES,
            "n_frames",
            self.n_frames,
            f"at most {STORED_FRAMES} (the stored length)",
        )
        if self.max_examples is not None:
            _positive_int(self, "max_examples")
        _check(
            0.0 <= self.validation_fraction < 0.5,
            "validation_fraction",
            self.validation_fraction,
            "in [0, 0.5)",
        )

    @property
    def tfds_name(self) -> str:
        suffix = "" if self.resolution == 32 else f"_{self.resolution}"
        return f"hamiltonian_systems/{self.system}{suffix}"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The HGN architecture and variant (HGN appendix A.1; [Re] HGN section 3.1).

    Variants of Table 1 are fields: `integrator` (leapfrog, euler, rk4, yoshida),
    `deterministic` (no posterior sampling), `use_f_psi` (False: "no f_psi"), and
    `dynamics="direct"` (the reproduction's "integrator modelling": a conv net outputs
    (dq/dt, dp/dt) directly, Euler steps, no Hamiltonian).

    `separable_hamiltonian`: H(q, p) = K(p) + V(q) (default; HGN section 3.2 assumes it, and only
    then are leapfrog and Yoshida symplectic and of order 2 and 4). False gives one network over
    (q, p), on which those explicit schemes are first-order approximations.

    `latent`: "spatial" -- the paper's state, q and p of shape [state_size, state_size,
    latent_channels], with convolutional f_psi, Hamiltonian and decoder; "vector" -- HGN++'s
    (Botev et al. 2021): q and p in R^latent_channels, an MLP Hamiltonian (`hamiltonian_layers`
    hidden layers of `hamiltonian_filters` units), an MLP f_psi from z in R^z_channels, and a
    linear map from q to the decoder's [state_size, state_size] input.

    `input_mode`: "autoencode" -- the encoder sees every frame and all are reconstructed;
    "inference" -- the encoder sees the first `input_frames` frames, the rest are predicted.

    `predictive_draws`: K, the posterior draws whose decoded rollouts are averaged before the
    reconstruction error is taken in training (the predictive mean, which is what the best
    prediction from noisy frames is: `hgn_tf.physics.inference`); evaluation averages as many.
    1 (default, the paper): one draw, the error of that draw's rollout. K > 1 costs K rollouts
    and decodes per step; a stochastic model only.

    `precision`: "float32", or "mixed_bfloat16": the encoder's and decoder's hidden convolutions
    (almost all of a step's FLOPs) compute in bfloat16 with float32 weights (Keras dtype
    policies); their output layers, f_psi, the Hamiltonian, the integrator and the objective stay
    float32. bfloat16 has float32's exponent range, so no loss scaling is needed. It runs on CPUs
    with AVX512-BF16/AMX and on GPUs from Ampere on; on others it is emulated and slower.

    `xla_steps`: the integrator's step is compiled by XLA in training and validation
    (`hgn_tf.integrators.xla_steps`; its gradients too). The same loss and gradients to float32
    tolerance (4e-5 of the largest entry on the paper preset), and a 6-8% faster training step on
    this project's 2-core CPU (bench/README.md). False: the plain TensorFlow graph. Inference
    chooses by batch size instead (`HGN.rollout(xla_max_batch=...)`, `hgn export`).

    The frame resolution is not a model field: it is a fact of the data (`DataConfig.resolution`),
    which the model is built for (`hgn_tf.train.build_model`, `HGN(resolution=...)`).
    """

    latent_channels: int = 16
    state_size: int = 4
    encoder_filters: tuple[int, ...] = (32, 64, 64, 64, 64, 64, 64)
    z_channels: int = 48
    transformer_filters: int = 64
    hamiltonian_filters: int = 64
    hamiltonian_layers: int = 6
    separable_hamiltonian: bool = True
    decoder_filters: int = 64
    integrator: str = "leapfrog"
    dt: float = 0.125
    deterministic: bool = False
    use_f_psi: bool = True
    dynamics: str = "hamiltonian"
    latent: str = "spatial"
    input_mode: str = "autoencode"
    input_frames: int = 5
    predictive_draws: int = 1
    precision: str = "float32"
    xla_steps: bool = True

    def __post_init__(self):
        if isinstance(self.encoder_filters, list):
            object.__setattr__(self, "encoder_filters", tuple(self.encoder_filters))
        _positive_int(
            self,
            "latent_channels",
            "state_size",
            "z_channels",
            "transformer_filters",
            "hamiltonian_filters",
            "hamiltonian_layers",
            "decoder_filters",
            "input_frames",
            "predictive_draws",
        )
        _check(self.predictive_draws == 1 or not self.deterministic, "predictive_draws",
               self.predictive_draws, "1 for a deterministic model (it has no posterior to draw)")
        _check(
            len(self.encoder_filters) >= 1
            and all(isinstance(f, int) and f > 0 for f in self.encoder_filters),
            "encoder_filters",
            self.encoder_filters,
            "a non-empty tuple of positive integers",
        )
        _check(
            self.integrator in INTEGRATORS, "integrator", self.integrator, f"one of {INTEGRATORS}"
        )
        _check(self.dynamics in DYNAMICS, "dynamics", self.dynamics, f"one of {DYNAMICS}")
        _check(self.latent in LATENTS, "latent", self.latent, f"one of {LATENTS}")
        _check(
            self.input_mode in INPUT_MODES, "input_mode", self.input_mode, f"one of {INPUT_MODES}"
        )
        _check(isinstance(self.dt, (int, float)) and self.dt > 0, "dt", self.dt, "a positive float")
        _check(self.precision in PRECISIONS, "precision", self.precision, f"one of {PRECISIONS}")
        _check(isinstance(self.xla_steps, bool), "xla_steps", self.xla_steps, "true or false")

    def upsampling_blocks(self, resolution: int) -> int:
        """Decoder blocks (and f_psi strided convs): log2(resolution / state_size).

        Raises:
          ConfigError: `state_size` is not resolution / 2**k for some k >= 1.
        """
        ratio = resolution // self.state_size
        _check(
            resolution % self.state_size == 0 and ratio & (ratio - 1) == 0 and ratio >= 2,
            "model.state_size",
            self.state_size,
            f"resolution / 2**k for k >= 1 (resolution {resolution})",
        )
        return ratio.bit_length() - 1

    def conditioning_frame_count(self, sequence_length: int) -> int:
        """k, the frames the encoder reads: `input_frames` (inference) or the training length."""
        return self.input_frames if self.input_mode == "inference" else sequence_length


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping.

    Attributes:
      batch_size: sequences per step (global batch under a distribution strategy).
      learning_rate: Adam's step size (its initial one under a schedule).
      lr_schedule: "constant", or "cosine": the step size falls along a half cosine from
        `learning_rate` at step 0 to `learning_rate * lr_final_fraction` at step `steps`
        (keras.optimizers.schedules.CosineDecay); the CPU scale uses it.
      lr_final_fraction: the cosine schedule's last step size as a fraction of the first, in (0, 1].
      steps: optimiser steps in total.
      steps_per_epoch: steps between Keras epoch ends (checkpoint, validation, TensorBoard).
      validation_steps: validation batches at each epoch end.
      seed: seeds weights, posterior sampling and data shuffling.
      strategy: "default" (one device) or "mirrored" (tf.distribute.MirroredStrategy).
      curriculum: ((from_step, frames), ...): train on the first `frames` frames of each sequence
        from optimiser step `from_step` on (the first pair starts at step 0; the frames never
        exceed `data.n_frames`). Empty: every step trains on all `data.n_frames` frames. A model
        that must roll out 30 frames can first fit a short window, then a longer one: trained on
        30 frames from the start, it sits on the mean frame (measured on pendulum).
    """

    batch_size: int = 16
    learning_rate: float = 1.5e-4
    lr_schedule: str = "constant"
    lr_final_fraction: float = 0.1
    steps: int = 15_000
    steps_per_epoch: int = 500
    validation_steps: int = 20
    seed: int = 0
    strategy: str = "default"
    curriculum: tuple = ()

    def __post_init__(self):
        _positive_int(self, "batch_size", "steps", "steps_per_epoch", "validation_steps")
        stages = self.curriculum
        ok = isinstance(stages, (tuple, list)) and all(
            isinstance(s, (tuple, list)) and len(s) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in s) for s in stages)
        ok = ok and (not stages or (
            stages[0][0] == 0 and all(a[0] < b[0] for a, b in zip(stages, stages[1:]))
            and all(f >= 1 for _, f in stages)))
        _check(ok, "curriculum", stages, "pairs (from_step, frames) of integers, the first "
               "from step 0, steps increasing, frames >= 1")
        object.__setattr__(self, "curriculum", tuple(tuple(s) for s in stages))
        _check(
            isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0,
            "learning_rate",
            self.learning_rate,
            "a positive float",
        )
        _check(self.lr_schedule in LR_SCHEDULES, "lr_schedule", self.lr_schedule,
               f"one of {LR_SCHEDULES}")
        _check(isinstance(self.lr_final_fraction, (int, float))
               and not isinstance(self.lr_final_fraction, bool)
               and 0 < self.lr_final_fraction <= 1, "lr_final_fraction",
               self.lr_final_fraction, "a float in (0, 1]")
        _check(
            isinstance(self.seed, int) and self.seed >= 0,
            "seed",
            self.seed,
            "a non-negative integer",
        )
        _check(self.strategy in STRATEGIES, "strategy", self.strategy, f"one of {STRATEGIES}")

    def frames_at(self, step: int, n_frames: int) -> int:
        """The frames trained on at optimiser step `step` (`n_frames` without a curriculum)."""
        frames = n_frames
        for from_step, stage_frames in self.curriculum:
            if step >= from_step:
                frames = stage_frames
        return frames


@dataclasses.dataclass(frozen=True)
class RunConfig:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    geco: GecoConfig = GecoConfig()

    def __post_init__(self):
        self.model.upsampling_blocks(self.data.resolution)  # state_size fits the resolution
        longest = max((f for _, f in self.train.curriculum), default=0)
        _check(longest <= self.data.n_frames, "train.curriculum", self.train.curriculum,
               f"frames at most data.n_frames ({self.data.n_frames})")
        if self.model.input_mode == "inference":
            _check(
                self.model.input_frames < self.data.n_frames,
                "model.input_frames",
                self.model.input_frames,
                f"smaller than data.n_frames ({self.data.n_frames})",
            )

    @property
    def conditioning_frames(self) -> int:
        """k, the frames the encoder of this run's model reads."""
        return self.model.conditioning_frame_count(self.data.n_frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path) -> None:
        with open(path, "w") as f:
            f.write(self.to_json() + "\n")

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return dataclass_from_dict(cls, d, "")

    @classmethod
    def load(cls, path) -> RunConfig:
        """Read a config JSON file; a missing, unreadable or invalid file is a ConfigError."""
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise errors.ConfigError(
                f"config file {str(path)!r} is not a readable RunConfig JSON file: {e}.",
                "config") from None
        try:
            return cls.from_dict(d)
        except errors.ConfigError as e:
            raise errors.ConfigError(f"config file {str(path)!r}: {e}", e.field) from None

    def replace(self, **sections) -> RunConfig:
        """`cfg.replace(train=dict(steps=10))`: a copy with fields of sections replaced."""
        new = {}
        for name, changes in sections.items():
            if name not in {f.name for f in dataclasses.fields(self)}:
                raise errors.ConfigError(
                    f"Unknown config section {name!r}; valid: data, model, train, geco.", name
                )
            new[name] = dataclass_from_dict(
                type(getattr(self, name)),
                {**dataclasses.asdict(getattr(self, name)), **changes},
                name + ".",
            )
        return dataclasses.replace(self, **new)


def dataclass_from_dict(cls, d: dict, prefix: str = ""):
    """`cls(**d)` for a config dataclass: nested sections, lists to tuples, unknown keys refused."""
    if not isinstance(d, dict):
        name = prefix.rstrip(".") or "config"
        raise errors.ConfigError(f"`{name}` must be a mapping, got {d!r:.80}.", name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise errors.ConfigError(
            f"Unknown config key(s) {[prefix + k for k in unknown]}; "
            f"valid keys of `{prefix.rstrip('.') or 'config'}`: {sorted(fields)}.",
            prefix + unknown[0],
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in d.items():
        t = hints[k]
        if dataclasses.is_dataclass(t):
            v = dataclass_from_dict(t, v, f"{prefix}{k}.")
        elif isinstance(v, list):
            v = tuple(v)
        kwargs[k] = v
    return cls(**kwargs)


def paper(system: str = "pendulum") -> RunConfig:
    """The paper's settings (HGN A.1, A.5), GECO with the PyTorch reproduction's defaults."""
    return RunConfig(
        data=DataConfig(system=system), model=ModelConfig(), train=TrainConfig(), geco=GecoConfig()
    )


def small(system: str = "pendulum") -> RunConfig:
    """A CPU preset: narrower networks, 12-frame sequences, 4,096 sequences, 1,200 steps.

    About 10 minutes on 2 CPU cores. GECO keeps the reproduction's kappa, alpha and nu but starts
    the multiplier at 1e5: in this library's units (per-pixel MSE, KL in nats per latent
    location) lambda_0 = 1 (or a fixed beta = 1/lambda >= 1e-3) collapses the posterior onto the
    prior within a few hundred steps, and GECO's update (log lambda += nu * C_ma, ~1e-4 per
    step) is far too slow to recover in a short run.
    """
    return RunConfig(
        data=DataConfig(system=system, n_frames=12, max_examples=4096, shuffle_buffer=1024),
        model=ModelConfig(
            encoder_filters=(16, 32, 32),
            z_channels=16,
            latent_channels=8,
            transformer_filters=32,
            hamiltonian_filters=32,
            hamiltonian_layers=3,
            decoder_filters=32,
        ),
        train=TrainConfig(
            batch_size=16, learning_rate=1e-3, steps=1200, steps_per_epoch=200, validation_steps=8
        ),
        geco=GecoConfig(initial_multiplier=1e5),
    )


def cpu(system: str = "pendulum", long: bool = True) -> RunConfig:
    """The experiments' CPU scale (`hgn experiment table1 --scale cpu`): `small`'s networks and
    data on 30-frame sequences, fitted by a curriculum (10, 15, 20, then 30 frames), which gets a
    30-frame model off the mean-frame plateau where training on 30 frames from the start stays.

    `long` (the leapfrog rows, about 40 minutes on 2 cores): 4,500 steps, 2,700 of them on 30
    frames; otherwise (about 18 minutes) 2,000 steps on a compressed curriculum. The protocol
    (autoencode, or prediction from 5 frames) is set by the experiment; the README's Results say
    what it reaches.
    """
    if long:
        steps, curriculum = 4500, ((0, 10), (600, 15), (1200, 20), (1800, 30))
    else:
        steps, curriculum = 2000, ((0, 10), (300, 15), (600, 20), (900, 30))
    return small(system).replace(data=dict(n_frames=STORED_FRAMES),
                                 train=dict(steps=steps, curriculum=curriculum))


def tiny(system: str = "pendulum") -> RunConfig:
    """For tests: a few steps on a few sequences."""
    return RunConfig(
        data=DataConfig(
            system=system, n_frames=4, max_examples=16, shuffle_buffer=16, validation_fraction=0.25
        ),
        model=ModelConfig(
            encoder_filters=(8,),
            z_channels=4,
            latent_channels=2,
            transformer_filters=8,
            hamiltonian_filters=8,
            hamiltonian_layers=2,
            decoder_filters=8,
            xla_steps=False,  # XLA's compile (1-5 s) would cost more than these 4 steps
        ),
        train=TrainConfig(
            batch_size=4, learning_rate=1e-3, steps=4, steps_per_epoch=2, validation_steps=1
        ),
        geco=GecoConfig(),
    )


PRESETS = {"paper": paper, "small": small, "cpu": cpu, "tiny": tiny}


def preset(name: str, system: str = "pendulum") -> RunConfig:
    if name not in PRESETS:
        raise errors.ConfigError(
            f"`preset` must be one of {sorted(PRESETS)}, got {name!r}.", "preset")
    return PRESETS[name](system)
