"""What the look search may change, and what it must leave as the user set it.

A look is a set of ``generate`` keys (:data:`transferlab.generate.fitted.LOOK_KEYS`). The
search draws the plate styles' weights, the EU strip, a prefix glyph set, the bare '1' and every
capture condition; the render size is measured from the real crops, not searched. A key whose
params.yaml value differs from the schema's default was set by hand: it is kept and not searched.
"""

from __future__ import annotations

from typing import Any

from transferlab.config import CaptureConfig, Params, StyleWeights
from transferlab.config.recipe import default_of, value_of

STYLES = tuple(StyleWeights.model_fields)
CAPTURES = tuple(CaptureConfig.model_fields)
# Prefix glyph sets the search may choose (one glyph before the characters, not in the label).
PREFIX_SETS = {"none": "", "cjk_province": "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"}
MIN_WEIGHT = 0.05  # style weights below this are written as 0 (never drawn): a readable look
UNIFORM_SHARE = 0.5  # half the plates draw every symbol uniformly: a few hundred labels are skewed


# The look keys the search may draw; the render size and uniform_share are measured or set by rule.
DRAWN = ("generate.styles", "generate.country_strip_probability", "generate.prefix_glyphs", "generate.bare_one",
         *(f"generate.capture.{name}" for name in CAPTURES))
MEASURED = ("generate.height", "generate.width", "generate.uniform_share")


def searched_keys(params: Params) -> list[str]:
    """Dotted generate keys the search draws: every drawn key except those set by hand (and the
    bare '1' when the alphabet holds an 'I', which it would read as)."""
    bare_one_allowed = not ("1" in params.plates.alphabet and "I" in params.plates.alphabet)
    return [key for key in DRAWN if not hand_set(params, key) and (bare_one_allowed or key != "generate.bare_one")]


def hand_set(params: Params, key: str) -> bool:
    return value_of(params, key) != default_of(key)


def kept_keys(params: Params) -> dict[str, Any]:
    """The look keys the user changed from their defaults (dotted key -> value)."""
    return {key: value_of(params, key) for key in (*MEASURED, *DRAWN) if hand_set(params, key)}


def suggest(trial, keys: list[str]) -> dict[str, Any]:
    """Draw one look (flat dotted keys) for an Optuna trial."""
    look: dict[str, Any] = {}
    for key in keys:
        name = key.removeprefix("generate.")
        if name == "styles":
            look[key] = {style: trial.suggest_float(f"style_{style}", 0.0, 1.0) for style in STYLES}
        elif name == "prefix_glyphs":
            look[key] = PREFIX_SETS[trial.suggest_categorical("prefix", list(PREFIX_SETS))]
        else:
            look[key] = trial.suggest_float(name.replace("capture.", ""), 0.0, 1.0)
    return tidy(look)


def tidy(look: dict[str, Any]) -> dict[str, Any]:
    """Valid and readable: small weights dropped, probabilities rounded, crops summing to <= 1."""
    look = {key: (round(value, 2) if isinstance(value, float) else value) for key, value in look.items()}
    styles = look.get("generate.styles")
    if styles is not None:
        kept = {s: (round(w, 2) if w >= MIN_WEIGHT else 0.0) for s, w in styles.items()}
        if not any(kept.values()):
            best = max(styles, key=styles.get)
            kept[best] = 1.0
        look["generate.styles"] = kept
    tight, loose = look.get("generate.capture.tight_crop"), look.get("generate.capture.loose_crop")
    if tight is not None and loose is not None and tight + loose > 1:
        total = tight + loose
        look["generate.capture.tight_crop"] = round(tight / total - 0.005, 2)
        look["generate.capture.loose_crop"] = round(loose / total - 0.005, 2)
    return look


def trial_params(look: dict[str, Any]) -> dict[str, Any]:
    """The Optuna parameters that :func:`suggest` turns into ``look`` (for enqueue_trial)."""
    found: dict[str, Any] = {}
    for key, value in look.items():
        name = key.removeprefix("generate.")
        if name == "styles":
            found.update({f"style_{style}": float(w) for style, w in value.items()})
        elif name == "prefix_glyphs":
            found["prefix"] = next((k for k, v in PREFIX_SETS.items() if v == value), "none")
        else:
            found[name.replace("capture.", "")] = float(value)
    return found


def alternatives(look: dict[str, Any]) -> list[dict[str, Any]]:
    """``look`` with each other value of its categorical keys (one change each): TPE draws a
    categorical choice together with a dozen continuous ones, so 40 trials can miss that the
    best look would be closer still with another prefix set (on real Chinese crops it kept none,
    though the province glyph set was closer with the same style and captures)."""
    found = []
    if "generate.prefix_glyphs" in look:
        found += [{**look, "generate.prefix_glyphs": glyphs} for glyphs in PREFIX_SETS.values()
                  if glyphs != look["generate.prefix_glyphs"]]
    return found


def starting_looks(params: Params, keys: list[str]) -> list[dict[str, Any]]:
    """Looks tried first: the default look, then each plate style alone (its other keys default)."""
    base = {key: value_of(params, key) for key in keys}
    looks = [base]
    if "generate.styles" in keys:
        for style in STYLES:
            alone = {**base, "generate.styles": {s: float(s == style) for s in STYLES}}
            if alone not in looks:
                looks.append(alone)
    return looks


def describe(look: dict[str, Any]) -> str:
    """A short line of what a look draws: its styles, prefix and likeliest capture conditions."""
    styles = look.get("generate.styles", {})
    parts = ["+".join(f"{s} {w:.1f}" for s, w in sorted(styles.items(), key=lambda i: -i[1]) if w) or ""]
    if look.get("generate.prefix_glyphs"):
        parts.append("prefix glyph")
    captures = sorted(((k.rsplit(".", 1)[1], v) for k, v in look.items() if ".capture." in k), key=lambda i: -i[1])
    parts += [f"{name} {p:.1f}" for name, p in captures[:3] if p >= 0.1]
    return ", ".join(p for p in parts if p)


def nested(look: dict[str, Any]) -> dict[str, Any]:
    """Flat dotted generate keys -> the nested ``generate`` mapping of look.yaml."""
    out: dict[str, Any] = {}
    for key, value in look.items():
        *parents, last = key.removeprefix("generate.").split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out
