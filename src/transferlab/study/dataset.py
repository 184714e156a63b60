"""Where the study's data come from: the one place that decides it.

With ``study.source`` set (the default: the real plates bundled in ``datasets/cn_plates``) the
study has data of its own: :func:`study_params` is params.yaml with ``data.source`` /
``data.test_source`` pointing at ``study.source`` / ``study.test_source``, the split written to
``<study.output>/prepared`` at the study's image size, and ``plates.alphabet`` / ``plates.slots``
read from the source's labels (``auto``). The pipeline's ``data/prepared`` and its metric files
are never touched. With ``study.source: null`` the study reads the pipeline's split, as before.

Either way the synthetic sources render their plates in the look ``study.look`` names
(:func:`study_look`).

:func:`prepare` makes (or reuses) that split and writes ``<study.output>/study_data.json``, a stamp
of what the study's data are (paths, the split's settings and content fingerprints, the look):
study/dvc.yaml's stages depend on the stamp, so they re-run exactly when the data or the look
change, whether the split is the study's own or the pipeline's. Every entry point
(``transferlab study``, the stages of study/dvc.yaml) turns params.yaml into :func:`study_params`
first; the study's other functions take those params.
"""

from __future__ import annotations

from pathlib import Path

from transferlab.config import AUTO, Params, StudyConfig
from transferlab.errors import TransferlabError
from transferlab.io import write_json
from transferlab.study.sources import SYNTHETIC_SOURCES

PREPARED_DIR = "prepared"
STAMP_FILE = "study_data.json"  # in study.output: what the study's data are (study/dvc.yaml's stages depend on it)
# In the study's prepared folder: its split statistics and examples per character or class and split
# (the pipeline's split writes them to metrics/data.json and metrics/data_labels.csv).
SPLIT_METRICS_FILE = "split.json"
SPLIT_LABELS_FILE = "split_labels.csv"


def prepared_dir(study: StudyConfig) -> Path:
    return Path(study.output) / PREPARED_DIR


def _with_source_named(exc: TransferlabError, study: StudyConfig) -> TransferlabError:
    """A data error of the study's own split, said in the study's keys (its data.source is study.source)."""
    test = f" and study.test_source ({study.test_source})" if study.test_source else ""
    text = str(exc).replace("data.test_source", "study.test_source").replace("data.source", "study.source")
    return TransferlabError(f"study.source ({study.source}){test}: the study's own data: {text}")


def _check_exists(study: StudyConfig) -> None:
    for key in ("source", "test_source"):
        location = getattr(study, key)
        if location is not None and not Path(location).exists():
            raise TransferlabError(f"study.{key}: {location}: not found (a plate CSV or its folder, or a folder of "
                                   "class folders, relative to the project root; study.source: null studies the "
                                   "pipeline's own split)")


def study_look(params: Params, study: StudyConfig) -> tuple[dict | None, str]:
    """The look keys the synthetic sources render with (None: params.yaml's ``generate``), and where
    they come from, in words."""
    from transferlab.generate.fitted import LOOK_FILE, look_path, read_look, read_look_file

    own = "params.yaml's generate look"
    if study.look is None:
        return None, own
    if study.look != AUTO:
        if not Path(study.look).is_file():
            raise TransferlabError(f"study.look: {study.look}: look file not found (a look.yaml as the look stage "
                                   "writes; auto: the one beside study.source; null: params.yaml's generate look)")
        found = read_look_file(study.look, "study.look", "fix study.look")
        return (found, study.look) if found else (None, f"{own} ({study.look} says fitted: false)")
    if study.source is None:  # the pipeline's data: the look stage's fit for data.source, if it made one
        found = read_look(params)
        return (found, f"{look_path(params)} (the look stage's fit)") if found else (None, own)
    from transferlab.data.datasets import plate_csv_path

    beside = plate_csv_path(study.source).parent / LOOK_FILE
    if beside.is_file():
        found = read_look_file(beside, "study.look: auto", "fix it, or set study.look to another look file or null")
        if found:
            return found, str(beside)
    return None, own


def study_params(params: Params, study: StudyConfig | None = None) -> Params:
    """params.yaml as the study reads its data: the study's own source and split when
    ``study.source`` is set, the look of its synthetic plates applied (see the module's text)."""
    from transferlab.generate.fitted import with_look
    from transferlab.generate.formats import resolve_plates

    study = study or params.study
    look, _ = study_look(params, study) if params.kind.plate_strings else (None, "")
    if study.source is None:
        return with_look(params, look) if look else params
    _check_exists(study)
    raw = params.model_dump()
    raw["data"].update(source=study.source, test_source=study.test_source, image_height=study.image_height,
                       image_width=study.image_width)
    raw["split"].update(output=str(prepared_dir(study)))
    if params.kind.plate_strings:
        raw["plates"].update(alphabet=AUTO, slots=AUTO, variable_length=False)  # auto sets it from the labels
        raw["generate"].update(formats=AUTO, format_weights=None)  # plates like the study's labels
    try:
        found = resolve_plates(Params.model_validate(raw))
    except TransferlabError as exc:
        raise _with_source_named(exc, study) from None
    return with_look(found, look) if look else found


def prepare(params: Params, study: StudyConfig | None = None) -> dict:
    """The study's data ready: its own split made (or reused when current), or the pipeline's split
    (run when missing or stale, as ``transferlab study`` always did); then the stamp. ``params``:
    params.yaml as loaded (this function turns it into :func:`study_params`)."""
    from transferlab.data.prepared import read_meta
    from transferlab.split import ensure_prepared

    study = study or params.study
    sparams = study_params(params, study)
    if study.source is None:
        ensure_prepared(sparams)
    else:
        folder = prepared_dir(study)
        try:
            ensure_prepared(sparams, folder / SPLIT_METRICS_FILE, folder / SPLIT_LABELS_FILE)
        except TransferlabError as exc:
            raise _with_source_named(exc, study) from None
    meta = read_meta(sparams.split.output)
    look, look_from = study_look(params, study) if params.kind.plate_strings else (None, "")
    stamp = {"source": study.source, "test_source": study.test_source, "prepared": sparams.split.output,
             "task": meta["task"], "classes": meta["classes"], "fingerprints": meta.get("fingerprints", {}),
             "inputs": meta.get("inputs"), "look": look, "look_from": look_from}
    write_json(Path(study.output) / STAMP_FILE, stamp)  # same data, same bytes: DVC sees no change
    where = f"its own split of {study.source}" if study.source else "the pipeline's split"
    synthetic = [s for s in study.sources if s in SYNTHETIC_SOURCES]
    look_text = f"; synthetic plates ({', '.join(synthetic)}) in {look_from}" if synthetic else ""
    print(f"study: data: {where} ({sparams.split.output}){look_text}", flush=True)
    return stamp
