"""Shared fixtures: the array namespaces under test, the airfoil data path, hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

REPO_ROOT = Path(__file__).resolve().parents[1]

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _cupy_available() -> bool:
    try:
        import cupy
    except ImportError:
        return False
    try:
        return bool(cupy.cuda.is_available())
    except Exception:  # a CUDA runtime error means: no usable device
        return False


CUPY_AVAILABLE = _cupy_available()
requires_gpu = pytest.mark.skipif(not CUPY_AVAILABLE, reason="CuPy has no CUDA device on this machine")


def _numpy_ns():
    import array_api_compat.numpy as xp

    return xp


def _strict_ns():
    import array_api_strict as xp

    return xp


def _torch_ns():
    import array_api_compat.torch as xp

    return xp


def _cupy_ns():
    import array_api_compat.cupy as xp

    return xp


XP_PARAMS = [
    pytest.param(_numpy_ns, id="numpy"),
    pytest.param(_strict_ns, id="array_api_strict"),
    pytest.param(_torch_ns, id="torch"),
    pytest.param(_cupy_ns, id="cupy", marks=[pytest.mark.gpu, requires_gpu]),
]


@pytest.fixture(params=XP_PARAMS, scope="session")
def xp(request):
    """An array-API namespace: numpy, array_api_strict, torch (CPU, via compat) or cupy (GPU only)."""
    return request.param()


def to_numpy(x) -> np.ndarray:
    """Copy any backend's array to a NumPy array (for comparisons)."""
    if hasattr(x, "get"):  # cupy
        return x.get()
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits(x):
    """The raw bits (so -0.0 != 0.0 and NaN payloads count)."""
    x = np.ascontiguousarray(x)
    return x.view(UINT[x.dtype.itemsize])


def assert_bitwise(a, b):
    """Same bits everywhere, except that NaNs only need to be NaN in both (payloads may differ)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b))
    np.testing.assert_array_equal(np.where(nan, 0, bits(a)), np.where(nan, 0, bits(b)))


def run_cli(capsys, *argv) -> tuple:
    """``adam-np ARGV`` in this process: ``(exit status, stdout, stderr)``, argparse's exits included."""
    from adam_np.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def normwise_rel_err(x, ref) -> float:
    """max|x - ref| / max|ref| (the project's normwise relative error: README, "Accuracy")."""
    x, ref = np.asarray(x, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    scale = np.max(np.abs(ref))
    diff = np.max(np.abs(x - ref))
    return float(diff / scale) if scale > 0 else float(diff)


@pytest.fixture(scope="session")
def airfoil_path() -> Path:
    """The airfoil data file shipped inside the package (``adam_np.book.data.packaged_path``)."""
    from adam_np.book.data import packaged_path

    path = packaged_path()
    if not path.is_file():
        pytest.fail(f"the package's airfoil file is missing at {path}")
    return path


_UNEXPECTED_SKIPS: list[str] = []


def _strict_skip(report) -> None:
    """Under ADAM_NP_CI_STRICT_SKIPS=1 (set by .ci/run) only GPU tests may skip (xfail is not a skip)."""
    if (os.environ.get("ADAM_NP_CI_STRICT_SKIPS") == "1" and report.skipped and not hasattr(report, "wasxfail")
            and "gpu" not in getattr(report, "keywords", {})):
        _UNEXPECTED_SKIPS.append(report.nodeid)


def pytest_runtest_logreport(report):
    _strict_skip(report)


def pytest_collectreport(report):
    """Skips at collection time (a module-level ``pytest.importorskip`` or ``pytest.skip``) count too."""
    _strict_skip(report)


def pytest_sessionfinish(session, exitstatus):
    if _UNEXPECTED_SKIPS:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _UNEXPECTED_SKIPS:
        terminalreporter.section("unexpected skips (ADAM_NP_CI_STRICT_SKIPS=1)", red=True)
        for nodeid in _UNEXPECTED_SKIPS:
            terminalreporter.line(f"ERROR: skipped: {nodeid}")


@pytest.fixture(scope="module")
def client():
    """A dask.distributed cluster started in this process (2 workers as threads, no dashboard), the default
    scheduler of every dask computation in the module that asks for it; shut down after the module."""
    from adam_np.cluster import local_client

    # No memory limit: in-process workers measure the whole pytest process (torch, jax, numba... > 1 GiB late in
    # the suite), and a limit below it pauses them, which hangs every computation.
    with local_client(n_workers=2, threads_per_worker=1, memory_limit=0) as c:
        yield c


def run_fault_script(name: str, *args: str, timeout: float) -> dict:
    """Run ``tests/NAME`` (a worker-kill scenario on a real cluster) in a subprocess bounded by ``timeout`` seconds;
    it must exit 0 and print its report as JSON on the last line, which is returned."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "tests" / name), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)  # bounded: a hung cluster fails the test
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
