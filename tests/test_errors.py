"""One error family: classes, the field they name, and the `hgn` command's one-line errors."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hgn_tf.export import server

from hgn_tf import cli, errors
from hgn_tf import config as C
from hgn_tf.errors import ConfigError, DataError, ExportError, HGNError, RunError


def test_the_family_is_value_errors_naming_a_field():
    for cls in (ConfigError, DataError, RunError, ExportError, errors.ServingInputError):
        assert issubclass(cls, HGNError) and issubclass(cls, ValueError)
    assert ConfigError("`n_steps` must be in [1, 10], got 0.").field == "n_steps"
    assert DataError("`split='validation'` needs more.").field == "split"
    assert RunError("no field quoted here").field is None
    assert ExportError("`a` and `b`", field="b").field == "b"


def test_check_and_positive_int():
    assert errors.positive_int("n", np.int64(3)) == 3
    for bad in (0, -1, 2.0, True, np.bool_(True), "3", None):
        with pytest.raises(ConfigError, match=f"`n` must be a positive integer, got {bad!r}"):
            errors.positive_int("n", bad)
    with pytest.raises(DataError) as e:
        errors.positive_int("chunk", 0, DataError)
    assert e.value.field == "chunk"
    errors.check(True, "x", 1, "anything")
    with pytest.raises(ConfigError, match=r"`x` must be in \[0, 1\], got 2\.") as e:
        errors.check(False, "x", 2, "in [0, 1]")


def test_request_checks_raise_the_serving_input_error_naming_the_input():
    spec = tf.TensorSpec([None, None, 32, 32, 3], tf.uint8, name="frames")
    with pytest.raises(errors.ServingInputError) as e:
        server.as_input_array("frames", np.zeros((1, 2, 16, 16, 3), np.uint8).tolist(), spec)
    assert e.value.field == "frames"
    with pytest.raises(errors.ServingInputError) as e:
        server.check_values({"n_steps": np.int32(0)}, {}, max_steps=10, max_batch=4)
    assert e.value.field == "n_steps"


def _cases(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    bad_key = tmp_path / "bad.json"
    bad_key.write_text('{"model": {"integrater": "leapfrog"}}')
    other = tmp_path / "other_run"
    other.mkdir()
    C.tiny().save(other / "config.json")
    return [
        # (argv, error class, field, text the line must contain)
        (["train", "--config", str(passwd), "--run-dir", str(tmp_path / "r")], ConfigError,
         "config", str(passwd)),
        (["train", "--config", str(tmp_path / "none.json"), "--run-dir", str(tmp_path / "r")],
         ConfigError, "config", "none.json"),
        (["train", "--config", str(bad_key), "--run-dir", str(tmp_path / "r")], ConfigError,
         "model.integrater", "model.integrater"),
        (["train", "--preset", "tiny", "--steps", "0", "--run-dir", str(tmp_path / "r")],
         ConfigError, "steps", "`steps` must be a positive integer, got 0"),
        (["train", "--preset", "tiny", "--seed", "4", "--run-dir", str(other)], RunError,
         "run_dir", "another config"),
        (["evaluate", "--run-dir", str(tmp_path / "nothing")], RunError, "run_dir",
         "not a training run"),
        (["evaluate", "--run-dir", str(other), "--max-sequences", "0"], ConfigError,
         "max_sequences", "`max_sequences`"),
        (["export", "--run-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "e")],
         ExportError, "run_dir", "does not exist"),
        (["rollout", "--server", "http://127.0.0.1:9", "--frames", str(tmp_path / "x.npy")],
         DataError, "frames_path", "x.npy"),
    ]


def test_cli_errors_are_one_line_of_the_right_class(tmp_path, capsys):
    for argv, cls, field, text in _cases(tmp_path):
        with pytest.raises(HGNError) as e:
            cli.run(argv)
        assert type(e.value) is cls and e.value.field == field, (argv, e.value)
        capsys.readouterr()
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and text in err and err.startswith(f"hgn {argv[0]}: error:")


def test_usage_errors_are_one_line(capsys):
    for argv in (["train", "--steps", "x", "--run-dir", "r"], ["data", "show", "spring"],
                 ["evaluate"], ["frobnicate"]):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and "error:" in err, (argv, err)


def test_a_bad_file_reaches_the_user_as_one_line_without_a_traceback(tmp_path):
    """The installed command, in its own process: TensorFlow's start-up notes are not printed."""
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0\n")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from hgn_tf.cli import main; sys.exit(main())",
         "train", "--config", str(passwd), "--run-dir", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"hgn train: error: --config: config file {str(passwd)!r} is not a readable RunConfig "
        "JSON file: "
        "Expecting value: line 1 column 1 (char 0)."], proc.stderr
