"""The Keras backend in use (TensorFlow or JAX): what compiles, and what a logged model needs.

Everything else in transferlab is written against Keras 3 alone, so ``KERAS_BACKEND=jax``
runs the same pipeline on a machine that has JAX and no TensorFlow (a CUDA GPU, say).

- Compilation: Keras' ``jit_compile="auto"`` is the measured right answer on both. On
  TensorFlow it leaves XLA off on the CPU (forced XLA trained EfficientNet ~6x slower there)
  and uses it where Keras supports it on a GPU; on JAX every step is ``jax.jit``-compiled,
  which is how JAX runs at all (``jit_compile=False`` would step op by op in Python).
- Requirements: a logged model names the backend that trained it, at the installed version
  (the distribution actually installed: ``tensorflow-cpu`` here, ``tensorflow`` or
  ``jax``/``jaxlib`` elsewhere), never a hard-coded one.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import keras

JIT_COMPILE = "auto"

# Distributions that provide each backend, in the order they are looked for.
_DISTRIBUTIONS = {
    "tensorflow": (("tensorflow-cpu", "tensorflow", "tensorflow-gpu", "tf-nightly"),),
    "jax": (("jax",), ("jaxlib",)),
}


def name() -> str:
    return keras.backend.backend()


def installed(distributions: tuple[str, ...]) -> str | None:
    """``name==version`` of the first of ``distributions`` that is installed, else None."""
    for dist in distributions:
        try:
            return f"{dist}=={version(dist)}"
        except PackageNotFoundError:
            continue
    return None


def requirements() -> list[str]:
    """Pinned pip requirements of Keras and the backend it runs on."""
    found = [f"keras=={keras.__version__}"]
    for alternatives in _DISTRIBUTIONS.get(name(), ()):
        pinned = installed(alternatives)
        if pinned:
            found.append(pinned)
    return found
