"""The keras-tuner search space of `hgn tune`, as data (no TensorFlow import).

`SEARCH_SPACE` is the one definition: `hgn_tf.tuning.hypermodel.config_from_hp` registers it in a
`keras_tuner.HyperParameters`, and `search_space_table()` prints it (`hgn tune --help`). The
reasons for each range are in `hgn_tf.tuning.hypermodel`'s docstring.
"""

from __future__ import annotations

import dataclasses

__all__ = ["LEARNING_RATE_RANGE", "SEARCH_SPACE", "Hyperparameter", "search_space_table"]

LEARNING_RATE_RANGE = (1e-4, 3e-3)


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One searched field.

    Attributes:
      name: the `GecoConfig` / `TrainConfig` field it sets (and the keras-tuner name).
      section: "geco" or "train".
      values: the choices (`log_uniform=False`) or the (low, high) range (`log_uniform=True`).
      default: the value of a fresh `HyperParameters()`; None: the base config's value.
      active_when: (parent, value): only sampled when hyperparameter `parent` is `value`.
    """

    name: str
    section: str
    values: tuple
    default: object = None
    log_uniform: bool = False
    active_when: tuple[str, str] | None = None

    def register(self, hp, default=None):
        """Register in `hp` (inside its conditional scope); returns the value (None: inactive)."""
        default = self.default if self.default is not None else default
        if self.active_when is None:
            return self._register(hp, default)
        parent, value = self.active_when
        with hp.conditional_scope(parent, [value]):
            return self._register(hp, default)

    def _register(self, hp, default):
        if self.log_uniform:
            low, high = self.values
            return hp.Float(self.name, low, high, sampling="log", default=default)
        return hp.Choice(self.name, list(self.values), default=default)

    def describe(self) -> tuple[str, str, str, str]:
        """(name, sampling, default, active when) as text."""
        if self.log_uniform:
            sampling = f"log-uniform [{self.values[0]:g}, {self.values[1]:g}]"
        else:
            sampling = f"Choice({', '.join(map(str, self.values))})"
        default = "base's" if self.default is None else f"{self.default:g}" \
            if isinstance(self.default, float) else str(self.default)
        if self.active_when is not None:
            active = f"{self.active_when[0]} == {self.active_when[1]}"
        elif self.section == "train":
            active = f"tune_{self.name}=True"
        else:
            active = "always"
        return self.name, sampling, default, active


# The defaults are the PyTorch reproduction's GECO settings; the module docstring gives the
# reasons for each range.
SEARCH_SPACE: tuple[Hyperparameter, ...] = (
    Hyperparameter("mode", "geco", ("geco", "fixed_beta"), "geco"),
    Hyperparameter("kappa", "geco", (0.01, 0.1), 0.033, True, ("mode", "geco")),
    Hyperparameter("alpha", "geco", (0.0, 0.9, 0.99), 0.99, False, ("mode", "geco")),
    Hyperparameter("initial_multiplier", "geco", (0.1, 1e6), 1.0, True, ("mode", "geco")),
    Hyperparameter("nu", "geco", (0.01, 1.0), 0.1, True, ("mode", "geco")),
    Hyperparameter("beta", "geco", (1e-6, 1.0), 1e-3, True, ("mode", "fixed_beta")),
    Hyperparameter("learning_rate", "train", LEARNING_RATE_RANGE, None, True),
)


def search_space_table() -> str:
    """`SEARCH_SPACE` as an aligned text table."""
    rows = [("name", "sampling", "default", "active when")]
    rows += [h.describe() for h in SEARCH_SPACE]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
