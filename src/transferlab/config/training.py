"""params.yaml sections of the training stages and their records: train, pretrain, evaluate, mlflow."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from transferlab.config.base import BackboneName, Fraction, Section, Seed, Strategy


class TrainConfig(Section):
    """Backbone, transfer strategy and optimisation of the training stage."""

    backbone: BackboneName = "efficientnet_lite0"
    pretrained: bool = Field(True, description="ImageNet initial weights; the only difference between the two arms")
    strategy: Strategy = Field(
        "finetune",
        description="scratch: random init, all trainable; frozen: backbone frozen, head trained; "
        "finetune: head first, then the top unfreeze_depth blocks at a smaller rate; full: all trainable from the start",
    )
    unfreeze_depth: int = Field(2, ge=0, le=1000, description="finetune: backbone blocks unfrozen, counted from the top")
    learning_rate: float = Field(2e-3, gt=0.0, le=1.0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="cosine: decay each phase's rate to zero over its epochs (converges in fewer epochs)"
    )
    finetune_lr_factor: float = Field(0.1, gt=0.0, le=1.0, description="finetune phase rate = factor x learning_rate")
    bn_trainable: bool = Field(False, description="let BatchNorm update its statistics while fine-tuning")
    batch_size: int = Field(32, ge=1, le=4096)
    epochs: int = Field(5, ge=1, le=10_000, description="epochs of training (finetune: of the head phase)")
    finetune_epochs: int = Field(10, ge=0, le=10_000, description="finetune: epochs after unfreezing")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    head_pooling: Literal["global", "spatial"] = Field(
        "global", description="global: average pooling (the original question); spatial: keep the feature map layout"
    )
    head_units: int = Field(128, ge=0, le=4096, description="per-slot dense layer width (0: softmax directly)")
    early_stopping_patience: int = Field(3, ge=0, le=10_000, description="0 disables early stopping")
    init_from: str | None = Field(None, description="a model saved by an earlier run to start from")
    cache_features: bool = Field(True, description="frozen: compute backbone features once, train the head on them")
    seed: Seed = 0
    output: str = "models"

    @model_validator(mode="after")
    def _check_strategy(self) -> TrainConfig:
        if self.strategy == "scratch" and self.pretrained:
            raise ValueError("strategy scratch starts from random weights: set pretrained: false "
                             "(or use strategy frozen, finetune or full with pretrained weights)")
        if self.backbone == "plain_cnn" and self.pretrained:
            raise ValueError("backbone plain_cnn has no pretrained weights: set pretrained: false")
        return self


class PretrainConfig(Section):
    """Stage ``pretrain``: in-domain transfer through synthetic plates like the user's (plates only)."""

    enabled: bool = Field(False, description="train on the generate stage's synthetic plates first; train starts "
                          "from that model (from ImageNet when train.pretrained, else from random weights)")
    epochs: int = Field(5, ge=1, le=10_000)
    learning_rate: float = Field(2e-3, gt=0.0, le=1.0)
    early_stopping_patience: int = Field(2, ge=0, le=10_000, description="0 disables early stopping")
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.05, description="synthetic plates held out to measure the synthetic validation accuracy")
    recipe: Literal["auto", "as_set"] = Field(
        "auto", description="auto: the synthetic budget and the fine-tuning recipe (epochs, patience, learning rate, "
        "augmentation copies, head pooling) follow from the real training set's size (transferlab.config.recipe); "
        "a key changed from its default wins. as_set: params.yaml as it is")
    seed: Seed = 0
    output: str = Field("pretrain", min_length=1, description="the pretrained model and its metrics")


class EvaluateConfig(Section):
    """Stage ``evaluate``: test-set metrics, diagnostics and inference speed."""

    output: str = Field("evaluation", min_length=1, description="folder of the figures, predictions and report")
    augmented_strengths: list[Fraction] = Field(
        default_factory=lambda: [1.0],
        description="extra augmentation strengths checked on the test images (augment.strength is always checked)",
    )
    augment_seed: Seed = 0
    worst_mistakes: int = Field(16, ge=0, le=100, description="wrong predictions shown in worst_mistakes.png")
    mistakes_by: Literal["lowest_confidence", "highest_confidence"] = Field(
        "lowest_confidence", description="which wrong predictions are the worst: least sure or most confidently wrong",
    )
    top_confusions: int = Field(20, ge=1, le=1000, description="rows of metrics/evaluate_confusions.csv")
    example_images: int = Field(4, ge=0, le=32, description="test images shown at each strength in augmented_examples.png")
    latency_calls: int = Field(20, ge=1, le=10_000, description="single-image calls timed after warm-up")
    export: bool = Field(True, description="export the model to ONNX (evaluate.output/reader/) and check it "
                                           "reads the test images like the Keras model")
    export_samples: int = Field(64, ge=1, le=100_000, description="test images of the export's parity check")
    # Here, not under mlflow: train declares the whole mlflow section, so a rename would retrain.
    registered_model: str | None = Field(
        "transferlab-reader", min_length=1, max_length=200,
        description="MLflow registry name of the evaluated reader (alias candidate); null: not registered")




class MlflowConfig(Section):
    """The MLflow experiment of the pipeline's runs (recorded in the repository's mlruns/ store, or in
    team mode the server named by $TRANSFERLAB_TRACKING_URI: transferlab.tracking.team_store)."""

    experiment: str = Field("transferlab", min_length=1)
