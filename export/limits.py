"""The serving contract's defaults, in one place: read by the export, the server and the CLI.

    DEFAULT_MAX_STEPS          the largest `n_steps` a rollout or sample call may ask for
    DEFAULT_MAX_BATCH          the largest batch (and `n` of `sample`) a call may send
    DEFAULT_MAX_REQUEST_BYTES  the largest request body the REST server reads (413 beyond)
    EXPORT_INFO_FILE           the export's description, `<version>/assets/<this>`

An export records its own caps in EXPORT_INFO_FILE; a server applies the smaller of its caps and
the export's. Plain Python: the server imports it without TensorFlow's model code.
"""

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_REQUEST_BYTES", "DEFAULT_MAX_STEPS",
           "EXPORT_INFO_FILE"]

DEFAULT_MAX_STEPS = 1000
DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_REQUEST_BYTES = 256 * 2**20
EXPORT_INFO_FILE = "hgn_export.json"
