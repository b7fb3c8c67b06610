"""Configs: presets pinned to the paper, JSON round trip, unknown keys and bad values rejected."""

import pytest

from hgn_tf import config as C


def test_paper_preset_matches_the_paper():
    cfg = C.paper("pendulum")
    assert (cfg.train.batch_size, cfg.train.learning_rate, cfg.train.steps) == (16, 1.5e-4, 15_000)
    m = cfg.model
    assert (m.integrator, m.dt, m.resolution, m.state_size, m.latent_channels) == (
        "leapfrog", 0.125, 32, 4, 16)
    # Encoder: 8 layers, 32 then 64 x 6, then 48 (z).
    assert m.encoder_filters == (32,) + (64,) * 6 and m.z_channels == 48
    assert (m.hamiltonian_layers, m.hamiltonian_filters, m.decoder_filters) == (6, 64, 64)
    assert m.upsampling_blocks == 3
    assert cfg.data.n_frames == 30 and cfg.data.max_examples is None
    g = cfg.geco
    assert (g.mode, g.kappa, g.alpha, g.initial_multiplier, g.nu) == ("geco", 0.033, 0.99, 1.0, 0.1)


def test_json_round_trip(tmp_path):
    cfg = C.small("two_body").replace(model=dict(integrator="yoshida"), train=dict(steps=7))
    cfg.save(tmp_path / "c.json")
    assert C.RunConfig.load(tmp_path / "c.json") == cfg


def test_unknown_key_is_an_error_naming_it():
    d = C.tiny().to_dict()
    d["model"]["integrater"] = "leapfrog"
    with pytest.raises(ValueError, match=r"model\.integrater"):
        C.RunConfig.from_dict(d)


@pytest.mark.parametrize("section, field, value, words", [
    ("model", "integrator", "verlet", "integrator.*leapfrog"),
    ("model", "dt", -0.1, "dt.*-0.1"),
    ("model", "input_mode", "both", "input_mode.*autoencode"),
    ("data", "system", "spring", "system.*mass_spring"),
    ("data", "resolution", 48, "resolution.*32, 64.*48"),
    ("data", "n_frames", 0, "n_frames.*positive"),
    ("train", "batch_size", 0, "batch_size.*0"),
    ("train", "strategy", "tpu", "strategy.*mirrored"),
    ("geco", "alpha", 1.5, "alpha.*1.5"),
])
def test_bad_values_name_field_value_and_allowed(section, field, value, words):
    with pytest.raises(ValueError, match=words):
        C.tiny().replace(**{section: {field: value}})


def test_resolution_mismatch_and_inference_frames():
    with pytest.raises(ValueError, match="model.resolution"):
        C.tiny().replace(data=dict(resolution=64))
    with pytest.raises(ValueError, match="input_frames"):
        C.tiny().replace(model=dict(input_mode="inference", input_frames=4))
