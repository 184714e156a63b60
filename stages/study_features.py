"""DVC stage `study/dvc.yaml:features`: pooled backbone features (ImageNet and random init) for the linear probe."""

from pathlib import Path

from transferlab import study
from transferlab.io import write_json
from transferlab.stage import run_stage


def main(params) -> None:
    if not any(v.arm == "probe" for v in study.variants(params.study)):  # as transferlab study: only for the probe
        write_json(Path(params.study.output) / "features" / "summary.json", {"probe": False})
        print("study: no probe arm in the study: no features cached", flush=True)
        return
    sparams = study.study_params(params)
    study.compute_features(sparams, sparams.study)


if __name__ == "__main__":
    run_stage(main)
