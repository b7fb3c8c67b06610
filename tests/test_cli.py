"""The `hgn` command: data pictures, and bad input reported as a clear error (exit 2)."""

import numpy as np
import pytest
from PIL import Image

from hgn_tf import cli


def test_data_show_writes_a_png_grid_and_a_gif(tiny_data_dir, tmp_path, capsys):
    rc = cli.main(["data", "show", "pendulum", "--data-dir", tiny_data_dir, "--max-examples", "16",
                   "--n", "3", "--out", str(tmp_path)])
    assert rc == 0
    png = Image.open(tmp_path / "pendulum_train.png")
    gif = Image.open(tmp_path / "pendulum_train.gif")
    assert gif.n_frames == 30
    # Three rows of 30 frames at 2x scale, with 1-pixel gaps.
    assert png.size == (1 + 30 * 65, 1 + 3 * 65)
    # The bob moves: two frames of the GIF differ.
    gif.seek(0)
    a = np.asarray(gif.convert("RGB"))
    gif.seek(15)
    assert np.abs(a.astype(int) - np.asarray(gif.convert("RGB")).astype(int)).max() > 50
    assert "pendulum_train.gif" in capsys.readouterr().out


def test_train_refuses_a_bad_config_with_a_named_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {"integrater": "leapfrog"}}')
    rc = cli.main(["train", "--config", str(bad), "--run-dir", str(tmp_path / "run")])
    assert rc == 2
    assert "model.integrater" in capsys.readouterr().err


def test_unknown_system_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["data", "show", "spring"])
    assert e.value.code == 2
    assert "invalid choice: 'spring'" in capsys.readouterr().err


def _sub_commands(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _sub_commands(sub, (*prefix, name))


def test_every_option_of_every_sub_command_has_help_text():
    missing = []
    for path, sub in _sub_commands(cli.build_parser()):
        for action in sub._actions:
            if action.dest != "help" and not action.help:
                name = "/".join(action.option_strings) or action.dest
                missing.append(f"hgn {' '.join(path)} {name}")
    assert not missing, missing


@pytest.mark.parametrize("flags, section, field, value", [
    (["--integrator", "yoshida"], "model", "integrator", "yoshida"),
    (["--integrator", "euler"], "model", "integrator", "euler"),
    (["--variant", "deterministic"], "model", "deterministic", True),
    (["--variant", "no-f-psi"], "model", "use_f_psi", False),
    (["--variant", "direct"], "model", "dynamics", "direct"),
    (["--input-mode", "inference", "--input-frames", "2"], "model", "input_frames", 2),
    (["--input-mode", "inference", "--input-frames", "2"], "model", "input_mode", "inference"),
    (["--frames", "6"], "data", "n_frames", 6),
    (["--learning-rate", "0.003"], "train", "learning_rate", 0.003),
    (["--steps", "7"], "train", "steps", 7),
    (["--lr-schedule", "cosine"], "train", "lr_schedule", "cosine"),
    (["--precision", "mixed_bfloat16"], "model", "precision", "mixed_bfloat16"),
    (["--xla-steps"], "model", "xla_steps", True),  # the tiny preset has it off
    (["--predictive-draws", "3"], "model", "predictive_draws", 3),
])
def test_each_train_flag_reaches_the_config_field_it_names(tmp_path, flags, section, field, value):
    base = ["train", "--run-dir", str(tmp_path / "r"), "--preset", "tiny"]
    cfg = cli._run_config(cli.build_parser().parse_args(base + flags))
    assert getattr(getattr(cfg, section), field) == value
    untouched = cli._run_config(cli.build_parser().parse_args(base))
    assert getattr(getattr(untouched, section), field) != value


def test_variant_full_is_the_published_model(tmp_path):
    from hgn_tf import config as C

    args = cli.build_parser().parse_args(
        ["train", "--run-dir", str(tmp_path / "r"), "--preset", "tiny", "--variant", "full"])
    assert cli._run_config(args) == C.tiny()


@pytest.mark.parametrize("flags, named", [
    (["--input-mode", "inference", "--input-frames", "9"], "--input-frames 9: "),
    (["--frames", "40"], "--frames 40: "),
    (["--learning-rate", "-1"], "--learning-rate -1.0: "),
    (["--input-frames", "0"], "--input-frames 0: "),
    (["--predictive-draws", "0"], "--predictive-draws 0: "),
    (["--variant", "deterministic", "--predictive-draws", "2"], "--predictive-draws 2: "),
])
def test_bad_flag_values_are_one_line_naming_the_flag(tmp_path, capsys, flags, named):
    argv = ["train", "--run-dir", str(tmp_path / "r"), "--preset", "tiny", *flags]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err, err


def test_a_flag_that_changes_an_existing_run_is_refused_not_ignored(tmp_path, capsys):
    from hgn_tf import config as C

    run = tmp_path / "r"
    run.mkdir()
    C.tiny().save(run / "config.json")
    args = cli.build_parser().parse_args(["train", "--run-dir", str(run), "--steps", "9"])
    assert cli._run_config(args) == C.tiny().replace(train=dict(steps=9))
    assert cli.main(["train", "--run-dir", str(run), "--steps", "9"]) == 2
    assert "another config" in capsys.readouterr().err


def _one_line_error(capsys, argv, command, flag):
    assert cli.main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith(f"hgn {command}: error: {flag}") and err.count("\n") == 1, err
    return err


def test_paths_that_are_files_are_one_line_errors_and_leave_nothing_behind(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "notjson.json").write_text("not json")
    cases = [
        (["train", "--config", str(tmp_path / "missing.json")], "train", "--config"),
        (["train", "--config", str(tmp_path)], "train", "--config"),
        (["train", "--config", str(tmp_path / "notjson.json")], "train", "--config"),
        (["data", "build", "--data-dir", str(afile)], "data build", "--data-dir"),
        (["export", "--run-dir", str(tmp_path), "--out", str(afile)], "export", "--out"),
        (["export", "--run-dir", str(tmp_path), "--out", str(afile / "sub")], "export", "--out"),
        (["tune", "--max-trials", "1", "--out", str(afile)], "tune", "--out"),
        (["tune", "--max-trials", "1", "--data-dir", str(afile), "--out",
          str(tmp_path / "search")], "tune", "--data-dir"),
        (["evaluate", "--run-dir", str(tmp_path / "run"), "--batch-size", "0"], "evaluate",
         "--batch-size"),
    ]
    for argv, command, flag in cases:
        if argv[0] == "train":
            argv = [*argv, "--run-dir", str(tmp_path / "run")]
        err = _one_line_error(capsys, argv, command, flag)
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "notjson.json"]


def test_data_build_into_a_smaller_build_says_so_and_rebuilds_on_request(tmp_path, capsys):
    data_dir = str(tmp_path / "tfds")
    build = ["data", "build", "--data-dir", data_dir, "--workers", "1", "--max-examples"]
    assert cli.main([*build, "2"]) == 0
    assert "train: 2 sequences" in capsys.readouterr().out
    err = _one_line_error(capsys, [*build, "3"], "data build", "--max-examples")
    assert "2 sequences" in err and "--rebuild" in err
    assert cli.main([*build, "2"]) == 0  # a build as large as asked for is used as it is
    assert cli.main([*build, "3", "--rebuild"]) == 0
    assert "train: 3 sequences" in capsys.readouterr().out


def test_a_killed_builds_leftovers_are_deleted_by_the_next_complete_build(tmp_path):
    from hgn_tf import config as C
    from hgn_tf import data

    cfg = C.DataConfig(system="pendulum", max_examples=2, data_dir=str(tmp_path))
    # What `kill -9` during generation leaves: TFDS's temporary folder beside the version folder.
    leftover = tmp_path / "hamiltonian_systems" / "pendulum" / "incomplete.0123abcd_1.0.0"
    leftover.mkdir(parents=True)
    (leftover / "hamiltonian_systems-train.tfrecord-00000-of-00001").write_bytes(b"half")
    builder = data.build(cfg, num_workers=1)
    assert builder.info.splits["train"].num_examples == 2
    assert sorted(p.name for p in leftover.parent.iterdir()) == ["1.0.0"]


def test_data_build_on_beam_gives_the_bytes_of_the_in_process_build(tiny_data_dir, tmp_path):
    """`--beam-runner`: the first 16 sequences (TFDS alone ignores the cap on Beam), same bytes."""
    pytest.importorskip("apache_beam", reason="the Beam build path needs the `beam` extra "
                        "(pip install 'hgn_tf[beam]'); CI installs it")
    import pathlib

    out = tmp_path / "tfds"
    assert cli.main(["data", "build", "--data-dir", str(out), "--max-examples", "16",
                     "--beam-runner", "FnApiRunner"]) == 0
    version = pathlib.Path("hamiltonian_systems", "pendulum", "1.0.0")
    plain = {f.name: f.read_bytes() for f in (pathlib.Path(tiny_data_dir) / version).iterdir()}
    on_beam = {f.name: f.read_bytes() for f in (out / version).iterdir()}
    assert sorted(on_beam) == sorted(plain) and len(plain) >= 4
    assert all(on_beam[name] == data for name, data in plain.items())


@pytest.mark.parametrize("flags, flag", [
    (["--beam-workers", "2"], "--beam-workers"),
    (["--beam-option", "project=p"], "--beam-option"),
    (["--beam-runner", "DirectRunner", "--workers", "2"], "--workers"),
    (["--beam-runner", "DirectRunner", "--beam-workers", "0"], "--beam-workers"),
    (["--beam-runner", "SparkRunner", "--beam-workers", "2"], "--beam-workers"),
    (["--beam-runner", "DirectRunner", "--beam-option", "project"], "--beam-option"),
])
def test_bad_beam_flags_are_one_line_errors(tmp_path, capsys, flags, flag):
    argv = ["data", "build", "--data-dir", str(tmp_path), *flags]
    _one_line_error(capsys, argv, "data build", flag)
    assert list(tmp_path.iterdir()) == []


def test_beam_flags_become_pipeline_options_or_a_named_error(monkeypatch):
    from hgn_tf import data
    from hgn_tf.errors import DataError

    pytest.importorskip("apache_beam", reason="the Beam build path needs the `beam` extra")
    got = data.beam_options("DirectRunner", 2, ["job_name=x"]).get_all_options()
    assert (got["runner"], got["direct_num_workers"], got["direct_running_mode"],
            got["job_name"]) == ("DirectRunner", 2, "multi_processing", "x")
    assert data.beam_options("DataflowRunner", 8).get_all_options()["num_workers"] == 8
    assert data.beam_options("FlinkRunner", 4).get_all_options()["parallelism"] == 4
    with pytest.raises(DataError, match="'Foo'") as e:
        data.beam_options("Foo")
    assert e.value.field == "beam_runner"
    for module in ("apache_beam", "apache_beam.options", "apache_beam.options.pipeline_options"):
        monkeypatch.setitem(__import__("sys").modules, module, None)  # as if not installed
    with pytest.raises(DataError, match=r"hgn_tf\[beam\]") as e:
        data.beam_options("DirectRunner")
    assert e.value.field == "beam_runner"
