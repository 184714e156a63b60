"""DVC links outputs from its cache (``cache.type`` in .dvc/config): hardlinks where there is no
reflink. Writing into a linked file in place would change the cached version too (read-only
protection does not stop root), so outputs are replaced, never written through."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from configobj import ConfigObj  # DVC's own config format (a DVC dependency)

from transferlab.io import unlinked

REPO = Path(__file__).resolve().parents[1]
STAGE = """
import sys
from transferlab.io import atomic_output_dir
with atomic_output_dir("out") as out:
    (out / "a.txt").write_text(sys.argv[1])
"""


def dvc(root: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(root.parent / "site-cache")}
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_committed_config_links_before_it_copies():
    types = ConfigObj(str(REPO / ".dvc/config"))["cache"]["type"]
    assert types[-1] == "copy" and {"reflink", "hardlink"} <= set(types)


def test_a_stage_replacing_its_linked_output_leaves_the_cache_intact(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    types = ",".join(ConfigObj(str(REPO / ".dvc/config"))["cache"]["type"])
    dvc(root, "config", "cache.type", types)
    (root / "stage.py").write_text(STAGE)
    (root / "params.yaml").write_text("text: first\n")
    (root / "dvc.yaml").write_text("stages:\n  make:\n    cmd: python stage.py ${text}\n    params: [text]\n"
                                   "    outs: [out]\n")
    dvc(root, "repro", "-q")
    dvc(root, "checkout", "--relink", "-q")
    linked = root / "out/a.txt"
    assert linked.stat().st_nlink >= 2 or types.startswith("reflink")  # a link into the cache, not a copy
    (root / "params.yaml").write_text("text: second\n")
    dvc(root, "repro", "-q")
    assert linked.read_text() == "second"
    cached = [p for p in (root / ".dvc/cache").rglob("*") if p.is_file() and p.read_text() == "first"]
    assert cached, "the first version's cache object was overwritten"


def test_unlinked_breaks_a_hardlink_before_an_in_place_write(tmp_path):
    cache, output = tmp_path / "cache.npy", tmp_path / "out.npy"
    np.save(cache, np.zeros(3))
    os.link(cache, output)  # what DVC's checkout leaves with cache.type hardlink
    np.save(unlinked(output), np.ones(3))
    assert np.load(cache).tolist() == [0, 0, 0] and np.load(output).tolist() == [1, 1, 1]
