"""The study: "does transfer learning help here, and with which strategy?" answered with evidence.

A study is a grid of variants, each a copy of params.yaml with a few settings changed and
trained (in memory, no per-variant data files) on the study's prepared split: its own split of
``study.source`` / ``study.test_source`` (default: the real plates bundled in
``datasets/cn_plates``), or with ``study.source: null`` the pipeline's split
(:mod:`.dataset` decides which). Its groups:

- ``factorial``: ``arms`` (scratch = random init vs the transfer arm, e.g. finetune) ×
  ``augment_strengths`` × ``seeds``: hypotheses H1-H4;
- ``strategies``: further strategies (frozen head, linear probe, full fine-tune) × ``seeds``
  without augmentation, ranked together with the factorial arms;
- ``sizes``: scratch vs the transfer arm at other training-set sizes × ``size_seeds``: the
  data-size curve (the factorial adds its own size as the last point);
- ``sources`` (plates; the default study's only group): where the initial weights come from
  (``sources``: random, ImageNet, synthetic plates, ImageNet then synthetic) × ``source_strategies``
  × ``seeds`` (:mod:`.sources`).

Every variant is one MLflow run (experiment ``study.experiment``, tag ``study``) and writes
``<study.output>/variants/<group>/<key>/{result.json,history.csv}``. The report
(:func:`report`, in :mod:`transferlab.study.verdict`) reads them back, computes effect sizes
with 95 % intervals over seeds, corrected for overlapping folds and the fixed test set, and their
probabilities against ``study.rope`` (:mod:`transferlab.evaluation.comparison`), withholds verdicts the evidence
cannot carry (:mod:`transferlab.study.evidence`), runs the diagnostics and writes
``<study.report>/report.md``, ``results.csv`` and the figures, also logged to MLflow.

Seeds pair the arms: variants with the same seed train on the same random subset of the
training split and augment with the same seed, so differences are paired by seed.

Run it all in one process with :func:`run_all` (``transferlab study``; it makes the study's
split when missing or stale), or through
DVC (``dvc repro study/dvc.yaml``), where every variant is a ``matrix`` stage whose output
DVC caches: changing one list value only trains the new variants.

The package: :mod:`.dataset` (where the data come from), :mod:`.grid` (the variants), :mod:`.runner` (training them, the report run),
:mod:`.sources` (pretrained sources), :mod:`.evidence` / :mod:`.curves` / :mod:`.diagnostics`
(what the results can carry), :mod:`.recommend` (ranking, recommendation) and :mod:`.verdict`
(hypotheses, report).
"""

from transferlab.study.grid import (  # noqa: F401 - the study's API
    FIGURES,
    HISTORY_FILE,
    REPORT_FILE,
    RESULT_FILE,
    RESULTS_TABLE,
    Variant,
    find_variant,
    fold_of,
    metric_name,
    variant_hash,
    variant_params,
    variants,
)
from transferlab.study.dataset import prepare, study_config, study_params  # noqa: F401
from transferlab.study.runner import (  # noqa: F401
    compute_features,
    finished,
    load_results,
    load_study_data,
    run_variant,
    run_variants,
    variant_data,
)
from transferlab.study.sources import pretrain_sources
from transferlab.study.verdict import report  # noqa: F401


def run_all(params, cfg=None) -> dict:
    """The whole study in one process (``transferlab study``): its data (:func:`prepare`: the study's
    own split of ``study.source``, or the pipeline's split, made when missing or stale), features,
    every variant (finished ones reused), the report. ``params``: params.yaml as loaded."""
    import time

    study = study_config(params, cfg)
    started = time.monotonic()
    prepare(params, study)
    params = study_params(params, study)
    data = load_study_data(params, study)
    if any(v.arm == "probe" for v in variants(study)):
        compute_features(params, study, data)
    pretrain_sources(params, study, data)
    run_variants(params, study, data=data)
    summary = report(params, study)
    print(f"study: done in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    return summary
