"""The linear probe: bottleneck features of a frozen backbone + a linear classifier.

What practitioners recommend for tiny datasets: run the (pretrained) backbone once,
global-average-pool its last feature map to one vector per image, and fit a linear model
(logistic regression or a linear SVM, scikit-learn) on those vectors, one per character
slot for plates. No gradient flows through the backbone, so it runs in seconds once the
features are cached (``.npy`` per backbone, initial weights and split).

The same probe on the features of a *randomly initialised* backbone measures the domain
gap: if ImageNet features are no better than random ones, the pretrained weights carry
nothing this data can use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferlab.errors import TransferlabError
from transferlab.io import unlinked

PROBE_KINDS = ("logistic", "svm")


def weights_name(pretrained: bool) -> str:
    return "imagenet" if pretrained else "random"


def feature_dir(root: str | Path, backbone: str, pretrained: bool) -> Path:
    """``<root>/<backbone>-imagenet`` or ``<root>/<backbone>-random``."""
    return Path(root) / f"{backbone}-{weights_name(pretrained)}"


def pooled_features(extractor, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Backbone feature maps (N, h, w, C) of 0-255 images -> (N, C) by global average pooling."""
    from transferlab.training.engine import feature_pass  # the frozen head's feature pass: one trace, fixed-size batches

    maps = feature_pass(extractor, images, batch_size)
    return maps.mean(axis=(1, 2)) if maps.ndim == 4 else maps


def build_extractor(backbone: str, input_shape: tuple[int, int, int], pretrained: bool, seed: int = 0):
    """The frozen backbone (0-255 RGB in); random-init weights are fixed by ``seed``."""
    import keras

    from transferlab.training.backbones import build_backbone

    keras.utils.set_random_seed(seed)
    built = build_backbone(backbone, input_shape, pretrained)
    built.model.trainable = False
    return built.model


def cache_features(root: str | Path, backbone: str, pretrained: bool, splits: dict[str, np.ndarray],
                   batch_size: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``<root>/<backbone>-<weights>/<split>.npy`` for every split; return the arrays."""
    images = next(iter(splits.values()))
    extractor = build_extractor(backbone, tuple(images.shape[1:]), pretrained, seed)
    folder = feature_dir(root, backbone, pretrained)
    folder.mkdir(parents=True, exist_ok=True)
    found = {}
    for name, split_images in splits.items():
        found[name] = pooled_features(extractor, split_images, batch_size)
        np.save(unlinked(folder / f"{name}.npy"), found[name])  # the folder is a DVC output
    return found


def load_features(root: str | Path, backbone: str, pretrained: bool, split: str) -> np.ndarray:
    path = feature_dir(root, backbone, pretrained) / f"{split}.npy"
    if not path.is_file():
        raise TransferlabError(f"{path}: cached features not found: run the study's features stage first "
                               "(dvc repro study/dvc.yaml)")
    return np.load(path)


@dataclass
class LinearProbe:
    """One linear classifier per character slot (plates) or one for the classes.

    ``labels`` are class indices: (N, slots) for plates, (N,) for classification.
    ``predict_proba`` returns (N, slots, classes) or (N, classes) over *all* classes, so
    the usual metrics (plate_report, classification_report) apply unchanged.
    """

    num_classes: int
    kind: str = "logistic"
    c: float = 1.0
    max_iter: int = 200
    models: list = field(default_factory=list, repr=False)
    slotted: bool = False

    def __post_init__(self):
        if self.kind not in PROBE_KINDS:
            raise TransferlabError(f"probe kind {self.kind!r}: use one of {', '.join(PROBE_KINDS)}")

    def _classifier(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        if self.kind == "svm":
            return make_pipeline(StandardScaler(), LinearSVC(C=self.c, max_iter=self.max_iter * 4))
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.c, max_iter=self.max_iter, tol=1e-3))

    def fit(self, features: np.ndarray, labels: np.ndarray) -> LinearProbe:
        features = np.asarray(features, np.float64)
        labels = np.asarray(labels)
        self.slotted = labels.ndim == 2
        columns = labels if self.slotted else labels[:, None]
        if len(features) != len(columns):
            raise ValueError(f"{len(features)} feature rows but {len(columns)} labels")
        self.models = []
        for slot in range(columns.shape[1]):
            y = columns[:, slot]
            present = np.unique(y)
            if len(present) == 1:  # one class only in training: scikit-learn refuses; predict it
                self.models.append(int(present[0]))
                continue
            self.models.append(self._classifier().fit(features, y))
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if not self.models:
            raise TransferlabError("the linear probe is not fitted")
        features = np.asarray(features, np.float64)
        out = np.zeros((len(features), len(self.models), self.num_classes), np.float64)
        for slot, model in enumerate(self.models):
            if isinstance(model, int):
                out[:, slot, model] = 1.0
                continue
            classes = model.classes_.astype(int)
            if self.kind == "svm":
                scores = model.decision_function(features)
                if scores.ndim == 1:  # two classes: one margin
                    scores = np.stack([-scores, scores], axis=1)
                scores = np.exp(scores - scores.max(axis=1, keepdims=True))
                probs = scores / scores.sum(axis=1, keepdims=True)
            else:
                probs = model.predict_proba(features)
            out[:, slot, classes] = probs
        return out if self.slotted else out[:, 0, :]
