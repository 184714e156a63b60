"""The model: a backbone from the registry plus a plate or classification head, and the
functions that freeze and unfreeze it for each transfer strategy.

Plain Keras 3 (``keras.ops`` only) so the same code runs on the TensorFlow and JAX backends.
Inputs are always 0-255 RGB: each backbone owns its preprocessing.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from transferlab.training.backbones import Backbone
from transferlab.errors import TransferlabError
from transferlab.tasks import task_for

HEAD_NAME = "head"
POOL_NAME = "global_pool"


@keras.saving.register_keras_serializable(package="transferlab")
class PlateAccuracy(keras.metrics.Metric):
    """Share of images whose every character slot is right (the standard plate metric).

    Counted per image over the whole epoch, not averaged per batch, so a small last
    batch does not weigh as much as a full one.
    """

    def __init__(self, name: str = "plate_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        slot_right = ops.equal(ops.argmax(y_true, axis=-1), ops.argmax(y_pred, axis=-1))
        plate_right = ops.all(slot_right, axis=-1)
        self.correct.assign_add(ops.sum(ops.cast(plate_right, "float32")))
        self.total.assign_add(ops.cast(ops.shape(plate_right)[0], "float32"))

    def result(self):
        return ops.divide_no_nan(self.correct, self.total)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)


@keras.saving.register_keras_serializable(package="transferlab")
class CharAccuracy(PlateAccuracy):
    """Share of the plates' real characters that are right, counted per character over the epoch.

    With variable-length plates (``pad_index`` set) pad slots are left out: a model that
    predicts pads where pads belong would otherwise score well without reading anything.
    """

    def __init__(self, name: str = "char_accuracy", pad_index: int | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_index = pad_index

    def update_state(self, y_true, y_pred, sample_weight=None):
        true = ops.argmax(y_true, axis=-1)
        slot_right = ops.cast(ops.equal(true, ops.argmax(y_pred, axis=-1)), "float32")
        counted = ops.ones_like(slot_right) if self.pad_index is None else \
            ops.cast(ops.not_equal(true, self.pad_index), "float32")
        self.correct.assign_add(ops.sum(slot_right * counted))
        self.total.assign_add(ops.sum(counted))

    def get_config(self):
        return {**super().get_config(), "pad_index": self.pad_index}


def pool_features(feature_map, pooling: str, units: int):
    """Feature map (B, h, w, C) -> one vector per image.

    ``global``: global average pooling, as in the original question; it keeps *what* is in
    the image but not *where*, so each slot head must recover character positions from
    channel statistics. ``spatial``: a 1x1 convolution to ``units`` channels, then the whole
    (h, w) layout is kept by flattening, so slot i can look at the left or right of the plate.
    """
    if pooling == "global":
        return layers.GlobalAveragePooling2D(name=POOL_NAME)(feature_map)
    x = layers.Conv2D(units or 64, 1, use_bias=False, name="spatial_conv")(feature_map)
    x = layers.BatchNormalization(name="spatial_bn")(x)
    x = layers.Activation("relu", name="spatial_relu")(x)
    return layers.Flatten(name=POOL_NAME)(x)


def build_head(feature_shape: tuple[int, int, int], task: str, slots: int, num_classes: int, units: int,
               dropout: float, pooling: str = "global") -> keras.Model:
    """Backbone feature map -> predictions.

    Plates: the original question's head, one branch per character slot
    (Dense -> BatchNorm -> ReLU -> Dropout -> softmax over the alphabet), stacked to
    (slots, classes). Classification: the same branch once, a new softmax replacing
    ImageNet's 1000-class layer.
    """
    feature_map = keras.Input(feature_shape, name="feature_map")
    shared = layers.Dropout(dropout, name="feature_dropout")(pool_features(feature_map, pooling, units))
    branches = []
    kind = task_for(task)
    for prefix in kind.branch_names(slots):
        x = shared
        if units:
            x = layers.Dense(units, name=f"{prefix}_dense")(x)
            x = layers.BatchNormalization(name=f"{prefix}_bn")(x)
            x = layers.Activation("relu", name=f"{prefix}_relu")(x)
            x = layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
        branches.append(layers.Dense(num_classes, activation="softmax", name=f"{prefix}_softmax")(x))
    return keras.Model(feature_map, kind.stack_branches(branches, num_classes), name=HEAD_NAME)


def build_model(backbone: Backbone, task: str, slots: int, num_classes: int, units: int, dropout: float,
                pooling: str = "global") -> keras.Model:
    """0-255 RGB image -> backbone feature map -> head (pooling and one branch per slot)."""
    inputs = keras.Input(backbone.model.input.shape[1:], name="image")
    feature_map = backbone.model(inputs)
    head = build_head(tuple(feature_map.shape[1:]), task, slots, num_classes, units, dropout, pooling)
    return keras.Model(inputs, head(feature_map), name=f"{backbone.name}_{task}")


def set_backbone_trainable(backbone: Backbone, unfrozen_blocks: int, bn_trainable: bool) -> None:
    """Freeze the backbone except its top ``unfrozen_blocks`` blocks.

    A block is a whole stage unit of the backbone (``backbone.blocks``: stem ... head
    conv); unfreezing counts whole blocks from the output side, because later blocks
    hold the task-specific features and early ones the generic edges and strokes.
    BatchNorm layers stay frozen, which in Keras 3 also runs them in inference mode,
    unless ``bn_trainable``: small fine-tuning batches would otherwise overwrite the
    statistics the pretrained weights depend on.
    """
    total = len(backbone.blocks)
    if not 0 <= unfrozen_blocks <= total:
        raise TransferlabError(
            f"train.unfreeze_depth: {unfrozen_blocks} but {backbone.name} has {total} blocks (use 0..{total})"
        )
    backbone.model.trainable = True
    for layer in backbone.model.layers:
        layer.trainable = False
    for block in backbone.blocks[total - unfrozen_blocks:]:
        for name in block:
            layer = backbone.model.get_layer(name)
            layer.trainable = bn_trainable or not isinstance(layer, layers.BatchNormalization)


def count_trainable(model: keras.Model) -> int:
    """Number of trainable scalar weights (what a strategy really trains)."""
    return int(sum(ops.size(w) for w in model.trainable_weights))
