"""Published numbers to print beside ours (pixel MSE and H variance, x1e4, train / test).

    HGN_TABLE1[variant][system]     Toth et al. 2020, Table 1: average pixel MSE over a 30-step
                                    unroll whose 31 frames the encoder read (autoencode)
    HGN_TABLE2[variant][system]     Toth et al. 2020, Table 2: variance of the learned H along
                                    one train and one test rollout
    REPRO_TABLE1[protocol][system]  Balsells Rodas et al. 2021 ([Re] HGN), Table 1, leapfrog:
                                    "autoencode" and 5-frame "prediction" (their "inference")
    REPRO_PENDULUM_INTEGRATORS      [Re] HGN, Table 2: pendulum test pixel MSE and std of H per
                                    integrator (their leapfrog and Yoshida were wrong: q moved by
                                    p instead of dH/dp)
"""

__all__ = ["HGN_TABLE1", "HGN_TABLE2", "REPRO_PENDULUM_INTEGRATORS", "REPRO_TABLE1"]

_SYSTEMS = ("mass_spring", "pendulum", "two_body", "three_body")


def _rows(values):
    return {s: (values[2 * i], values[2 * i + 1]) for i, s in enumerate(_SYSTEMS)}


HGN_TABLE1 = {
    "leapfrog": _rows([3.84, 6.23, 4.9, 11.72, 6.36, 16.47, 7.88, 9.8]),
    "euler": _rows([3.67, 6.2, 5.43, 10.93, 6.62, 15.06, 7.51, 9.4]),
    "deterministic": _rows([0.23, 3.07, 0.79, 10.68, 2.34, 14.47, 4.1, 5.17]),
    "no-f-psi": _rows([4.95, 7.04, 6.83, 13.98, 6.35, 16.49, 8.37, 10.41]),
}

HGN_TABLE2 = {
    "leapfrog": _rows([1.38, 0.68, 3.15, 7.13, 0.15, 0.45, 0.31, 1.65]),
    "euler": _rows([157.28, 120.16, 135.53, 19.53, 405.83, 682.02, 1.18, 8.36]),
    "deterministic": _rows([0.08, 0.09, 0.03, 0.02, 0.03, 0.05, 3.08, 0.22]),
    "no-f-psi": _rows([0.02, 0.02, 0.02, 0.04, 0.04, 0.02, 4.03, 1.82]),
}

REPRO_TABLE1 = {
    "autoencode": _rows([7.11, 7.12, 14.89, 14.97, 3.36, 3.36, 8.81, 8.81]),
    "prediction": _rows([12.15, 12.21, 44.29, 44.12, 6.28, 6.33, 3.35, 3.35]),
}

REPRO_PENDULUM_INTEGRATORS = {  # (test pixel MSE x1e4, std of H)
    "euler": (17.86, 3.81),
    "rk4": (76.88, 0.0),
    "leapfrog": (14.97, 1961.93),
    "yoshida": (14.70, 1893.05),
}
