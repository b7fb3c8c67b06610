"""The serving contract's defaults, in one place: read by the export, the server and the CLI.

    DEFAULT_MAX_STEPS           the largest `n_steps` a rollout or sample call may ask for
    DEFAULT_MAX_BATCH           the largest batch (and `n` of `sample`) a call may send
    DEFAULT_MAX_BATCH_STEPS     the largest batch x n_steps (frames rolled out) of one call
    DEFAULT_MAX_RESPONSE_BYTES  the largest answer a call may produce (estimated before the call,
                                RESPONSE_BYTES_PER_VALUE per output value: JSON text of a float)
    DEFAULT_MAX_REQUEST_BYTES   the largest request body the REST server reads (413 beyond)
    DEFAULT_READ_TIMEOUT        seconds the REST server waits on a silent connection
    DEFAULT_MAX_CONNECTIONS     connections the REST server holds open at once (503 beyond)
    DEFAULT_XLA_MAX_BATCH       rollouts and samples of at most this many sequences run their
                                integrator steps compiled by XLA (`integrators.xla_steps`)
    MAX_DT_FACTOR               |dt| may be at most this many times the model's training dt
    MAX_ABS_STATE               |q| and |p| given to `decode` / `hamiltonian` may be at most this
    NON_FINITE_OUTPUT           how the graph's and the server's error for a NaN or infinite
                                output reads ("`frames` output is not finite ..."; HTTP 422)
    EXPORT_INFO_FILE            the export's description, `<version>/assets/<this>`

The value contract: dt finite with |dt| <= MAX_DT_FACTOR x the training dt (1.0 for the paper's
0.125; negative runs backward), states finite with every |value| <= MAX_ABS_STATE (a trained
encoder's posterior means are of order 1), pixels in [0, 255]. A call inside these ranges whose
output is still not finite (a learned Hamiltonian that diverges over a long rollout) is refused
too: never an answer with NaN or infinity in it.

An export records its own caps in EXPORT_INFO_FILE; a server applies the smaller of its caps and
the export's. Plain Python: the server imports it without TensorFlow's model code.
"""

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_BATCH_STEPS", "DEFAULT_MAX_CONNECTIONS",
           "DEFAULT_MAX_REQUEST_BYTES", "DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_MAX_STEPS",
           "DEFAULT_READ_TIMEOUT", "DEFAULT_XLA_MAX_BATCH", "EXPORT_INFO_FILE", "MAX_ABS_STATE",
           "MAX_DT_FACTOR", "NON_FINITE_OUTPUT", "RESPONSE_BYTES_PER_VALUE"]

DEFAULT_MAX_STEPS = 1000
DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_BATCH_STEPS = 2048
DEFAULT_MAX_RESPONSE_BYTES = 128 * 2**20
RESPONSE_BYTES_PER_VALUE = 24  # "-1.2345678901234567e-05, ": a float printed in full
DEFAULT_MAX_REQUEST_BYTES = 256 * 2**20
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_XLA_MAX_BATCH = 16
MAX_DT_FACTOR = 8.0
MAX_ABS_STATE = 1000.0
NON_FINITE_OUTPUT = "output is not finite"
EXPORT_INFO_FILE = "hgn_export.json"
