"""The study's main question for plates: where should the initial weights come from?

Group ``sources`` crosses ``study.sources`` with ``study.source_strategies``:

- ``none``: random weights (with strategy full this is the scratch arm);
- ``imagenet``: ImageNet weights;
- ``synthetic``: pretrained from random weights on synthetic plates like the training labels;
- ``imagenet_synthetic``: pretrained from ImageNet on those synthetic plates.

Each synthetic source is pretrained once per study (``study.synthetic_count`` plates rendered
in the look ``study.look`` names (:func:`transferlab.study.dataset.study_look`: the bundled plates'
fitted look by default), with ``pretrain``'s schedule) into ``<study.output>/pretrained/<source>``;
its variants start from that model. The label statistics come from the whole training split
(only strings, no images), so the validation folds share them.
"""

from __future__ import annotations

from pathlib import Path

from transferlab.config import Params, StudyConfig
from transferlab.errors import TransferlabError
from transferlab.io import key_hash, read_json

SYNTHETIC_SOURCES = ("synthetic", "imagenet_synthetic")
STAMP_FILE = "source.json"


def source_folder(study: StudyConfig, source: str) -> Path:
    return Path(study.output) / "pretrained" / source


def source_model(study: StudyConfig, source: str) -> str | None:
    """The model a variant of ``source`` starts from (None: ImageNet or random weights)."""
    return str(source_folder(study, source) / "model.keras") if source in SYNTHETIC_SOURCES else None


def source_hash(params: Params, study: StudyConfig, source: str, fingerprint: str) -> str:
    return key_hash([source, study.backbone, study.image_height, study.image_width, study.synthetic_count,
                     params.generate.model_dump(), params.pretrain.model_dump(), params.plates.model_dump(),
                     params.train.head_units, study.head_pooling, params.train.dropout, fingerprint])


def pretrain_sources(params: Params, study: StudyConfig, data, only: list[str] | None = None) -> dict:
    """Pretrain every synthetic source of the study that has no model for these settings yet."""
    from transferlab.io import write_json
    from transferlab.pretrain import pretrain_model

    wanted = [s for s in study.sources if s in SYNTHETIC_SOURCES and (only is None or s in only)]
    if wanted and not params.kind.plate_strings:
        raise TransferlabError(f"study.sources: {', '.join(wanted)} render synthetic plates; task is {params.task}")
    found = {}
    for source in wanted:
        folder = source_folder(study, source)
        digest = source_hash(params, study, source, data.fingerprint)
        stamp = folder / STAMP_FILE
        if stamp.is_file() and read_json(stamp).get("hash") == digest and (folder / "model.keras").is_file():
            found[source] = read_json(stamp)
            print(f"study: pretrained source {source} reused", flush=True)
            continue
        p = Params.model_validate({**params.model_dump(), "train": {
            **params.train.model_dump(), "backbone": study.backbone, "batch_size": study.batch_size,
            "head_pooling": study.head_pooling,
            "pretrained": source == "imagenet_synthetic", "strategy": "full"}})
        folder.mkdir(parents=True, exist_ok=True)
        summary = pretrain_model(p, data, study.synthetic_count, source == "imagenet_synthetic", folder)
        found[source] = {**summary, "hash": digest}
        write_json(stamp, found[source])
        print(f"study: pretrained source {source} on {study.synthetic_count} synthetic plates in "
              f"{summary['train_seconds']:.0f}s: synthetic validation char accuracy "
              f"{summary['synthetic_val_char_accuracy']:.3f}, real validation {summary['real_val_char_accuracy']:.3f}",
              flush=True)
    return found
