"""Shared fixtures: one tiny pendulum build per test session (TFDS cost is paid once)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """A TFDS data dir with the first 16 sequences per split of `hamiltonian_systems/pendulum`."""
    from hgn_tf import config, data

    data_dir = tmp_path_factory.mktemp("tfds")
    cfg = config.tiny("pendulum").data
    data.build(cfg.__class__(**{**cfg.__dict__, "data_dir": str(data_dir)}), num_workers=1)
    return str(data_dir)


@pytest.fixture
def tiny_config(tiny_data_dir):
    from hgn_tf import config

    return config.tiny("pendulum").replace(data=dict(data_dir=tiny_data_dir))
