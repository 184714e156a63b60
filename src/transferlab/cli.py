"""The ``transferlab`` command: one subcommand per stage, plus predict, export, tune, study and ui."""

from __future__ import annotations

import importlib
import sys

import click

from transferlab.errors import TransferlabError

# The stage runner (it also quiets TensorFlow and MLflow). DEFAULT_PARAMS_FILE is config's,
# not imported from there: the schema loads pydantic, which `transferlab predict` on an
# exported model does not need.
from transferlab.stage import DEFAULT_PARAMS_FILE, run_stage


params_option = click.option("--params", "params_file", default=DEFAULT_PARAMS_FILE, show_default=True,
                             type=click.Path(dir_okay=False), help="parameters file")
# As `dvc exp run -S`: for this run only, not written to params.yaml (and outside DVC's lock).
set_option = click.option("-S", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="set a params.yaml key for this run only, e.g. -S train.epochs=3 (repeatable)")


@click.group()
@click.version_option(package_name="transferlab")
def main() -> None:
    """Reproducible transfer-learning experiments for plate reading and image classification.

    The pipeline runs through DVC (`dvc repro`); these commands run single stages.
    """


# Stage commands: name -> (module, its entry point, help). Each imports its module only when run,
# so `transferlab predict` on an exported model never loads TensorFlow.
STAGE_COMMANDS = {
    "look": ("transferlab.look", "run", "Fit the synthetic plates' look to your real training crops, when "
             "pretraining on your own plates (stage `look`)."),
    "generate": ("transferlab.generate.render", "run", "Render the synthetic plate dataset (stage `generate`)."),
    "test-source": ("transferlab.test_source", "run",
                    "Stamp data.test_source's files, so that split re-runs when they change (stage `test-source`)."),
    "split": ("transferlab.split", "run", "Validate the dataset and write the train/val/test cache (stage `split`)."),
    "augment": ("transferlab.augment", "run", "Write the augmented training set and its preview (stage `augment`)."),
    "pretrain": ("transferlab.pretrain", "run",
                 "Train on synthetic plates like yours first, when pretrain.enabled (stage `pretrain`)."),
    "train": ("transferlab.train", "run", "Train the configured variant and record it in MLflow (stage `train`)."),
    "evaluate": ("transferlab.evaluate", "run",
                 "Test-set metrics, diagnostics and speed, logged into the training run (stage `evaluate`)."),
    "tune": ("transferlab.tune", "run", "Run (or continue) the Optuna study over strength, learning rate and "
             "unfreeze depth."),
    "study": ("transferlab.study", "run_all",
              "Run the study (its data, every variant, report): by default where the weights should come "
              "from, on the bundled real plates; finished variants are reused."),
}


# Internal stages: dvc.yaml runs them, users never need to; callable, but not listed in --help.
HIDDEN_STAGES = ("test-source",)


def _stage_command(name: str, module: str, entry: str, help_text: str) -> None:
    @main.command(name, help=help_text, hidden=name in HIDDEN_STAGES)
    @params_option
    @set_option
    def command(params_file: str, overrides: tuple[str, ...]) -> None:
        # The module is imported only once the params file has loaded: stages import TensorFlow
        # (seconds), and a mistyped --params or -S must fail at once.
        run_stage(lambda params: getattr(importlib.import_module(module), entry)(params), params_file, overrides)


for _name, _spec in STAGE_COMMANDS.items():
    _stage_command(_name, *_spec)


@main.command("predict")
@click.argument("model")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--csv", "csv_out", default=None, type=click.Path(dir_okay=False), help="write every row to this CSV")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
def predict_cmd(model: str, images: tuple[str, ...], csv_out: str | None, batch_size: int) -> None:
    """Read IMAGES (files or folders) with MODEL (a .keras, .onnx or .tflite file, or a runs:/ or models:/ URI).

    Prints the text and per-character confidence per image; an unreadable file gets an
    error row and the others are still read. Exit code 1 only when no image could be read.
    An exported .onnx model is read without importing TensorFlow.
    """
    from transferlab.inference import runtime  # not transferlab.inference.predict: that imports MLflow (and Keras when used)

    try:
        code = runtime.predict_command(model, list(images), csv_out, batch_size, echo=click.echo)
    except TransferlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


@main.command("export")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["onnx", "tflite"]), default="onnx", show_default=True)
@click.option("--quantize", type=click.Choice(["int8"]), default=None, help="post-training int8 (tflite only)")
@click.option("--output", default=None, type=click.Path(dir_okay=False),
              help="exported file (default: beside MODEL, e.g. model.onnx)")
@click.option("--samples", multiple=True, type=click.Path(),
              help="images (files or folders) for the parity check and int8 calibration; default: seeded random images")
@click.option("--run", "run_id", default=None, help="MLflow run id to log the exported files and metrics into")
def export_cmd(model: str, fmt: str, quantize: str | None, output: str | None, samples: tuple[str, ...],
               run_id: str | None) -> None:
    """Export MODEL (a .keras file, labels.json beside it) for fast reading, checked against Keras.

    Writes the exported file, its decoder (model.labels.json) and the parity report
    (model.onnx.parity.json). Exit code 1, and nothing written, when the export does not
    read the sample images like the Keras model.
    """
    from transferlab.inference import export

    run_stage(lambda _params: export.export_command(model, fmt, quantize, output, list(samples) or None,
                                                    run_id, echo=click.echo), params_file=None)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind")
@click.option("--port", default=5000, show_default=True, type=int, help="port to listen on")
def ui(host: str, port: int) -> None:
    """Browse this repository's MLflow runs (mlruns/) in a browser; Ctrl-C stops it."""
    from transferlab.tracking import servers as mlflow_servers

    run_stage(lambda _params: mlflow_servers.serve_ui(host=host, port=port), params_file=None)


@main.command("team-server")
@click.option("--backend-store-uri", required=True, help="the team's database: postgresql://user:password@host/db")
@click.option("--artifacts", required=True, help="folder (or URI) where the server keeps and serves artifacts")
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind (0.0.0.0: the network)")
@click.option("--port", default=5000, show_default=True, type=int, help="port to listen on")
@click.option("--workers", default=2, show_default=True, type=int, help="server worker processes")
@click.option("--allowed-hosts", "hosts", default="", envvar="MLFLOW_SERVER_ALLOWED_HOSTS", show_envvar=True,
              help="comma-separated host names members reach this server by (wildcards allowed, '*': any); "
                   "localhost, private addresses and this machine's own names are always allowed")
def team_server(backend_store_uri: str, artifacts: str, host: str, port: int, workers: int, hosts: str) -> None:
    """Serve one MLflow tracking server for a team (runs in PostgreSQL); members set
    TRANSFERLAB_TRACKING_URI=http://NAME:PORT, NAME this machine's name or one of --allowed-hosts.
    Ctrl-C stops it."""
    from transferlab.tracking import servers as mlflow_servers
    from transferlab.tracking import team_store

    def serve(_params) -> None:
        command = team_store.server_command(backend_store_uri, artifacts, host, port, workers, hosts.split(","))
        mlflow_servers.serve(command, host, port, "MLflow team server")

    run_stage(serve, params_file=None)


@main.command("check-params")
@params_option
@set_option
def check_params(params_file: str, overrides: tuple[str, ...]) -> None:
    """Validate params.yaml (with any -S overrides) and print the effective configuration."""
    import yaml

    run_stage(lambda p: click.echo(yaml.safe_dump(p.model_dump(), sort_keys=False)), params_file, overrides)


if __name__ == "__main__":
    main()
