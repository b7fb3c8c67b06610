"""Configs: presets pinned to the paper, JSON round trip, unknown keys and bad values rejected."""

import pytest

from hgn_tf import config as C
from hgn_tf.errors import ConfigError


def test_paper_preset_matches_the_paper():
    cfg = C.paper("pendulum")
    assert (cfg.train.batch_size, cfg.train.learning_rate, cfg.train.steps) == (16, 1.5e-4, 15_000)
    m = cfg.model
    assert (m.integrator, m.dt, cfg.data.resolution, m.state_size, m.latent_channels) == (
        "leapfrog", 0.125, 32, 4, 16)
    # Encoder: 8 layers, 32 then 64 x 6, then 48 (z).
    assert m.encoder_filters == (32,) + (64,) * 6 and m.z_channels == 48
    assert (m.hamiltonian_layers, m.hamiltonian_filters, m.decoder_filters) == (6, 64, 64)
    assert m.upsampling_blocks(cfg.data.resolution) == 3
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
    with pytest.raises(ConfigError, match=r"model\.integrater") as e:
        C.RunConfig.from_dict(d)
    assert e.value.field == "model.integrater"


def test_config_files_that_are_not_configs_are_named(tmp_path):
    not_json = tmp_path / "passwd"
    not_json.write_text("root:x:0:0:root:/root:/bin/bash\n")
    for path in (not_json, tmp_path / "missing.json"):
        with pytest.raises(ConfigError, match=str(path)) as e:
            C.RunConfig.load(path)
        assert e.value.field == "config"
    bad = tmp_path / "bad.json"
    bad.write_text('{"train": {"steps": -1}}')
    with pytest.raises(ConfigError, match=f"{bad}.*steps.*-1") as e:
        C.RunConfig.load(bad)
    assert e.value.field == "steps"


@pytest.mark.parametrize("section, field, value, words", [
    ("model", "integrator", "verlet", "integrator.*leapfrog"),
    ("model", "dt", -0.1, "dt.*-0.1"),
    ("model", "input_mode", "both", "input_mode.*autoencode"),
    ("data", "system", "spring", "system.*mass_spring"),
    ("data", "resolution", 48, "resolution.*32, 64.*48"),
    ("data", "n_frames", 0, "n_frames.*positive"),
    ("train", "batch_size", 0, "batch_size.*0"),
    ("train", "strategy", "tpu", "strategy.*mirrored"),
    ("train", "lr_schedule", "step", "lr_schedule.*cosine"),
    ("train", "lr_final_fraction", 0.0, r"lr_final_fraction.*\(0, 1\].*0.0"),
    ("geco", "alpha", 1.5, "alpha.*1.5"),
])
def test_bad_values_name_field_value_and_allowed(section, field, value, words):
    with pytest.raises(ConfigError, match=words) as e:
        C.tiny().replace(**{section: {field: value}})
    assert e.value.field in (field, f"geco.{field}")


def test_resolution_is_the_datas_and_fixes_the_decoder_depth():
    cfg = C.tiny().replace(data=dict(resolution=64))
    assert not hasattr(cfg.model, "resolution")
    assert cfg.model.upsampling_blocks(64) == 4 and cfg.model.upsampling_blocks(32) == 3
    with pytest.raises(ConfigError, match="state_size.*resolution 32") as e:
        C.tiny().replace(model=dict(state_size=3))
    assert e.value.field == "model.state_size"


def test_conditioning_frames_are_a_config_fact():
    cfg = C.tiny().replace(data=dict(n_frames=6))
    assert cfg.conditioning_frames == 6  # autoencode: every training frame
    cfg = cfg.replace(model=dict(input_mode="inference", input_frames=2))
    assert cfg.conditioning_frames == 2
    with pytest.raises(ConfigError, match="input_frames"):
        C.tiny().replace(model=dict(input_mode="inference", input_frames=4))


def test_curriculum_schedule_and_its_checks(tmp_path):
    cfg = C.tiny().replace(data=dict(n_frames=6), train=dict(curriculum=[[0, 2], [3, 4], [5, 6]]))
    assert cfg.train.curriculum == ((0, 2), (3, 4), (5, 6))  # lists from JSON become tuples
    assert [cfg.train.frames_at(s, 6) for s in range(7)] == [2, 2, 2, 4, 4, 6, 6]
    assert C.tiny().train.frames_at(100, 4) == 4  # no curriculum: every frame
    cfg.save(tmp_path / "c.json")
    assert C.RunConfig.load(tmp_path / "c.json") == cfg
    for bad in ([[1, 2]], [[0, 2], [0, 3]], [[0, 0]], [[0, 2, 3]], [[0, True]]):
        with pytest.raises(ConfigError) as e:
            C.tiny().replace(train=dict(curriculum=bad))
        assert e.value.field == "curriculum"
    with pytest.raises(ConfigError, match="data.n_frames \\(4\\)") as e:
        C.tiny().replace(train=dict(curriculum=[[0, 5]]))
    assert e.value.field == "train.curriculum"


def test_bfloat16_matrix_units_are_read_from_the_cpu_flags():
    from hgn_tf import hardware

    amx = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n\nprocessor\t: 1\n"
    avx = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    assert hardware.bfloat16_matrix_units(amx)
    assert not hardware.bfloat16_matrix_units(avx)  # AVX512-BF16 alone: not measured, not used
    assert not hardware.bfloat16_matrix_units("")  # no flags line (not Linux)
    assert "avx2" in hardware.cpu_flags(avx)


def test_the_demo_trains_in_bfloat16_only_where_the_cpu_multiplies_it(monkeypatch, tmp_path):
    import pytest

    from hgn_tf import demo, hardware
    from hgn_tf.errors import ConfigError

    for units, precision, recipe in ((True, "mixed_bfloat16", demo.BFLOAT16_RECIPE),
                                     (False, "float32", demo.FLOAT32_RECIPE)):
        monkeypatch.setattr(hardware, "bfloat16_matrix_units", lambda units=units: units)
        cfg = demo.demo_config(tmp_path)
        assert cfg.model.precision == precision
        assert (cfg.train.steps, cfg.train.curriculum) == (recipe["steps"], recipe["curriculum"])
        # The curriculum ends on the 30 frames the demo is scored on.
        assert cfg.train.frames_at(cfg.train.steps - 1, cfg.data.n_frames) == 30
    # An explicit precision wins over the detection, and takes its own recipe.
    cfg = demo.demo_config(tmp_path, precision="float32")
    assert (cfg.model.precision, cfg.train.steps) == ("float32", 1400)
    with pytest.raises(ConfigError, match="precision"):
        demo.demo_config(tmp_path, precision="float16")


def test_the_demo_keeps_a_run_of_another_config_and_trains_its_own(tmp_path):
    from hgn_tf import demo

    cfg = demo.demo_config(tmp_path, precision="float32")
    run = tmp_path / "run"
    run.mkdir()
    cfg.save(run / "config.json")
    (run / "model.weights.h5").write_bytes(b"weights")
    assert demo._run_dir_for(tmp_path, cfg) == run and run.exists()  # the same config: resumed
    other = demo.demo_config(tmp_path, precision="mixed_bfloat16")
    assert demo._run_dir_for(tmp_path, other) == run
    assert not run.exists()  # the folder is free for the new run, and nothing was lost:
    kept = tmp_path / "run.previous-1"
    assert (kept / "model.weights.h5").read_bytes() == b"weights"
    run.mkdir()
    cfg.save(run / "config.json")
    demo._run_dir_for(tmp_path, other)
    assert (tmp_path / "run.previous-2" / "config.json").exists()
