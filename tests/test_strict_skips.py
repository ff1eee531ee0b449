"""The ADAM_NP_CI_STRICT_SKIPS=1 hook of tests/conftest.py: collection-time skips fail CI, xfail does not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # a pytest subprocess per case

CASES = {
    "module_skip": ('import pytest\npytest.importorskip("nonexistent_mod_xyz")\n\n\ndef test_a():\n    pass\n', 1),
    "test_skip": ('import pytest\n\n\ndef test_a():\n    pytest.skip("no reason")\n', 1),
    "xfail": ('import pytest\n\n\n@pytest.mark.xfail(reason="known")\ndef test_a():\n    assert False\n', 0),
    "gpu_skip": ('import pytest\n\n\n@pytest.mark.gpu\n@pytest.mark.skip(reason="no GPU")\ndef test_a():\n'
                 '    pass\n', 0),
}


@pytest.fixture(scope="module")
def strict_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("strict")
    shutil.copy(REPO_ROOT / "tests" / "conftest.py", d / "conftest.py")
    (d / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    for name, (source, _) in CASES.items():
        (d / f"test_{name}.py").write_text(source)
    return d


@pytest.mark.parametrize("name", list(CASES))
def test_strict_skip_hook(strict_dir, name):
    env = {**os.environ, "ADAM_NP_CI_STRICT_SKIPS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"test_{name}.py"],
                          cwd=strict_dir, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == CASES[name][1], proc.stdout + proc.stderr
    assert ("unexpected skips" in proc.stdout) == bool(CASES[name][1]), proc.stdout
