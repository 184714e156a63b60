"""Where the study's data come from: the one place that decides it.

``study.source: auto`` (the default) studies the user's ``data.source`` when it is theirs and
otherwise the real plates bundled in ``datasets/cn_plates`` (:func:`study_config`); either way, as
with ``study.source`` a path, the study has data of its own: :func:`study_params` is params.yaml with ``data.source`` /
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
from transferlab.config.experiments import BUNDLED_STUDY_SOURCE, BUNDLED_STUDY_TEST_SOURCE
from transferlab.errors import TransferlabError
from transferlab.io import key_hash, read_json, write_json
from transferlab.study.sources import SYNTHETIC_SOURCES

PREPARED_DIR = "prepared"
STAMP_FILE = "study_data.json"  # in study.output: what the study's data are (study/dvc.yaml's stages depend on it)
# In the study's prepared folder: its split statistics and examples per character or class and split
# (the pipeline's split writes them to metrics/data.json and metrics/data_labels.csv).
SPLIT_METRICS_FILE = "split.json"
SPLIT_LABELS_FILE = "split_labels.csv"
LOOK_DIR = "look"  # in study.output: the look the study fitted (when no look file is given for its data)
FIT_STAMP = "fit.json"  # in LOOK_DIR: what the fit was made for
PARAMS_LOOK = "params.yaml's generate look"  # where the look comes from when no look file applies


def study_config(params: Params, study: StudyConfig | None = None) -> StudyConfig:
    """``study`` (default: params.yaml's) with ``source`` / ``test_source: auto`` resolved: the user's
    ``data.source`` / ``data.test_source`` when ``data.source`` is theirs (the study's own split of
    them, its alphabet and slots read from their labels, so it needs no pipeline settings), else
    the bundled real plates (``data.source`` is generate's own output: nothing real to study). A
    ``test_source: auto`` beside a source path is none: the test part is split from that source."""
    study = study or params.study
    source, test = study.source, study.test_source
    if source == AUTO:
        bundled = params.reads_generator_output and params.kind.plate_strings
        source, test = (BUNDLED_STUDY_SOURCE, BUNDLED_STUDY_TEST_SOURCE) if bundled else \
            (params.data.source, params.data.test_source)
    elif test == AUTO:
        test = None
    return study if (source, test) == (study.source, study.test_source) else \
        study.model_copy(update={"source": source, "test_source": test})


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
    from transferlab.generate.fitted import read_look_file

    study = study_config(params, study)

    own = PARAMS_LOOK
    if study.look is None:
        return None, own
    if study.look != AUTO:
        if not Path(study.look).is_file():
            raise TransferlabError(f"study.look: {study.look}: look file not found (a look.yaml as the look stage "
                                   "writes; auto: the one beside study.source; null: params.yaml's generate look)")
        found = read_look_file(study.look, "study.look", "fix study.look")
        return (found, study.look) if found else (None, f"{own} ({study.look} says fitted: false)")
    found = _given_look(params, study)
    return found if found[0] is not None else _own_fit(study)


def _given_look(params: Params, study: StudyConfig) -> tuple[dict | None, str]:
    """``study.look: auto``'s look file for the data: the look stage's fit (the pipeline's data) or
    the look.yaml beside ``study.source``; (None, "") when there is none."""
    from transferlab.data.datasets import plate_csv_path
    from transferlab.generate.fitted import LOOK_FILE, look_path, read_look, read_look_file

    if study.source is None or study.source == params.data.source:  # the look stage fits data.source
        found = read_look(params)
        if found or study.source is None:
            return (found, f"{look_path(params)} (the look stage's fit)") if found else (None, "")
    beside = plate_csv_path(study.source).parent / LOOK_FILE
    if beside.is_file():
        found = read_look_file(beside, "study.look: auto", "fix it, or set study.look to another look file or null")
        if found:
            return found, str(beside)
    return None, ""


def _own_fit(study: StudyConfig) -> tuple[dict | None, str]:
    """The look the study fitted itself (:func:`fit_look_if_needed`), when it has one."""
    from transferlab.generate.fitted import LOOK_FILE, read_look_file

    path = Path(study.output) / LOOK_DIR / LOOK_FILE
    found = read_look_file(path, "the study", "delete it: transferlab study fits it again") if path.is_file() else None
    return (found, f"{path} (fitted by the study to the training crops)") if found else (None, PARAMS_LOOK)


def fit_look_if_needed(params: Params, study: StudyConfig, fingerprints: dict) -> None:
    """With ``study.look: auto`` and no look file for the data (none beside ``study.source``, no
    look stage fit), fit one to the study's training crops as the look stage does, into
    ``<study.output>/look`` (refitted only when the data or the look settings change): synthetic
    plates in params.yaml's look read a few per cent of real plates unlike them (docs/in_domain.md).
    The crops are the split's training part, whose images some repetitions validate on: the look
    (a dozen render settings, no labels) sees them, the variants' weights do not. ``params``:
    params.yaml as loaded."""
    from transferlab.look import fit_look

    wanted = [s for s in study.sources if s in SYNTHETIC_SOURCES]
    if not (wanted and params.kind.plate_strings and study.look == AUTO and params.look.fit):
        return
    if _given_look(params, study)[0] is not None:
        return
    folder = Path(study.output) / LOOK_DIR
    # The study's data and split, in params.yaml's look: keys it changed are kept, the rest searched.
    sparams = study_params(params, study.model_copy(update={"look": None}))
    digest = key_hash([fingerprints, sparams.data.model_dump(), sparams.split.model_dump(),
                       params.look.model_dump(exclude={"output"}), params.generate.model_dump()])
    stamp = folder / FIT_STAMP
    if stamp.is_file() and read_json(stamp).get("hash") == digest and _own_fit(study)[0] is not None:
        return
    print(f"study: fitting the synthetic sources' look to the training crops of {sparams.data.source} "
          "(no look file for these data)", flush=True)
    summary = fit_look(sparams.model_copy(update={"look": params.look.model_copy(update={"output": str(folder)})}))
    write_json(stamp, {"hash": digest, **summary})


def study_params(params: Params, study: StudyConfig | None = None) -> Params:
    """params.yaml as the study reads its data: the study's own source and split when
    ``study.source`` is set, the look of its synthetic plates applied (see the module's text)."""
    from transferlab.generate.fitted import with_look
    from transferlab.generate.formats import resolve_plates

    study = study_config(params, study)
    look, _ = study_look(params, study) if params.kind.plate_strings else (None, "")
    params = params.model_copy(update={"study": study})  # auto resolved once: later calls see the data it chose
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

    study = study_config(params, study)
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
    fit_look_if_needed(params, study, meta.get("fingerprints", {}))
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
