"""The `transferlab` command as a user meets it: fast failures and the commands it lists."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap


def run_cli_in_fresh_process(*args: str, cwd=None) -> tuple[int, str, list[str]]:
    """Exit code, output and the heavy modules imported, for `transferlab ARGS` in a new interpreter."""
    script = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from transferlab import cli
        result = CliRunner().invoke(cli.main, {list(args)!r})
        print(result.exit_code)
        print([m for m in ("tensorflow", "keras", "mlflow") if m in sys.modules])
        print(result.output)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True,
                          cwd=cwd)
    code, modules, output = done.stdout.split("\n", 2)
    return int(code), output, ast.literal_eval(modules)


def test_a_missing_params_file_fails_before_tensorflow_is_imported(tmp_path):
    code, output, imported = run_cli_in_fresh_process("train", "--params", str(tmp_path / "missing.yaml"))
    assert code == 1 and "missing.yaml: parameters file not found" in output
    assert imported == []


def test_the_internal_test_source_stage_is_callable_but_not_listed():
    from click.testing import CliRunner

    from transferlab import cli

    listed = CliRunner().invoke(cli.main, ["--help"]).output
    assert "test-source" not in listed and "train" in listed
    own = CliRunner().invoke(cli.main, ["test-source", "--help"])
    assert own.exit_code == 0 and "Stamp data.test_source" in own.output


def test_the_disabled_pretrain_stage_imports_neither_tensorflow_nor_mlflow(tmp_path):
    import yaml

    from helpers import tiny_params

    params = tiny_params(tmp_path, pretrain={"enabled": False})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
    code, output, imported = run_cli_in_fresh_process("pretrain", cwd=tmp_path)
    assert code == 0 and "pretrain: disabled" in output, output
    assert imported == []


def test_set_overrides_keys_for_one_run_as_dvc_exp_run_does(tmp_path, monkeypatch):
    """-S KEY=VALUE (repeatable) sets dotted params.yaml keys with YAML values for this run only;
    a malformed item or an unknown key is one clear error naming it, and params.yaml is unchanged."""
    import shutil
    from pathlib import Path

    import yaml
    from click.testing import CliRunner

    from transferlab import cli

    shutil.copy(Path(__file__).parents[1] / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_text()
    monkeypatch.chdir(tmp_path)
    shown = CliRunner().invoke(cli.main, ["check-params", "-S", "train.epochs=3", "--set", "train.pretrained=false",
                                          "-S", "study.seeds=[0, 1]"])
    assert shown.exit_code == 0, shown.output
    effective = yaml.safe_load(shown.output)
    assert effective["train"]["epochs"] == 3 and effective["train"]["pretrained"] is False
    assert effective["study"]["seeds"] == [0, 1]
    assert (tmp_path / "params.yaml").read_text() == before
    for bad, named in (("train.epocks=3", "train.epocks"), ("train.epochs", "expected KEY=VALUE"),
                       ("train.epochs.x=1", "train.epochs is a value")):
        failed = CliRunner().invoke(cli.main, ["check-params", "-S", bad])
        assert failed.exit_code == 1 and named in failed.output, failed.output
