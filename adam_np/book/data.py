r"""Data for the D2L chapter 7.8 experiment: the UCI Airfoil Self-Noise set and a synthetic default.

:func:`load_airfoil` finds the file (explicit path, ``$ADAM_NP_AIRFOIL``, the copy shipped inside the
package, the user cache, or a download from UCI with a sha256 check), parses and validates it.
:func:`get_data_ch7` applies the book's preprocessing: every column standardized with the mean and
(population) standard deviation over all 1503 rows,

.. math::

    z_{ij} = (a_{ij} - \bar a_j) / \sigma_j ,

then the first 1500 rows are split into features (1500×5) and labels (1500,). :func:`make_synthetic`
gives an offline regression problem with a known solution.

The data: UCI Airfoil Self-Noise (id 291), NASA, CC BY 4.0, DOI 10.24432/C5VW2C. Columns: frequency
(Hz), angle of attack (deg), chord length (m), free-stream velocity (m/s), suction-side displacement
thickness (m), scaled sound pressure level (dB, the target). The package ships the file unmodified as
package data (``adam_np/book/airfoil_self_noise.dat``, attribution in ``AIRFOIL_LICENSE.txt`` beside it), so
everything works offline from a clone or a wheel.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..core._xp import namespace_for

__all__ = [
    "AIRFOIL_URL",
    "AirfoilError",
    "Synthetic",
    "cache_dir",
    "get_data_ch7",
    "load_airfoil",
    "make_synthetic",
]

AIRFOIL_URL = "https://archive.ics.uci.edu/static/public/291/airfoil+self+noise.zip"
"""The UCI zip that holds ``airfoil_self_noise.dat``."""

AIRFOIL_FILENAME = "airfoil_self_noise.dat"
AIRFOIL_ROWS, AIRFOIL_COLUMNS = 1503, 6

#: sha256 of the file as UCI ships it (CRLF line endings) and of the same bytes with LF endings.
AIRFOIL_SHA256 = (
    "74c75fd71783f1e6b71f8a622b993dc592897a97cd689c5090a07147a1b097b3",
    "10ee06e6cfb27dae6b44213d421d217012fb1f9b697592e73a4e4016b52d425f",
)
#: sha256 of the parsed values, (1503, 6) little-endian float64 in C order: any re-encoding of the
#: same numbers (other line endings, trailing blanks) passes this check.
AIRFOIL_VALUES_SHA256 = "11fab2c660f61031935f9995d27929df39a175d3551271b397c8aa254b19b6b6"

ENV_PATH = "ADAM_NP_AIRFOIL"
ENV_CACHE = "ADAM_NP_CACHE"


class AirfoilError(ValueError):
    """The airfoil file is missing, malformed or does not match the published data (a ValueError).

    Examples
    --------
    >>> issubclass(AirfoilError, ValueError)
    True
    """


def cache_dir() -> Path:
    """The user cache directory of adam_np: ``$ADAM_NP_CACHE``, else pooch's OS cache for ``adam_np``.

    Returns
    -------
    pathlib.Path
        Not created by this function.

    Examples
    --------
    >>> import os
    >>> os.environ["ADAM_NP_CACHE"] = "/tmp/adam-np-cache"
    >>> str(cache_dir())
    '/tmp/adam-np-cache'
    >>> del os.environ["ADAM_NP_CACHE"]
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env)
    import pooch  # lazy: only needed when no explicit path is given

    return Path(pooch.os_cache("adam_np"))


def packaged_path() -> Path:
    """The airfoil file shipped inside the package (UCI's bytes, CC BY 4.0; see ``AIRFOIL_LICENSE.txt``).

    Returns
    -------
    pathlib.Path
        May be missing in a stripped install; :func:`load_airfoil` then falls back to the cache.

    Examples
    --------
    >>> packaged_path().name
    'airfoil_self_noise.dat'
    """
    return Path(__file__).resolve().parent / AIRFOIL_FILENAME


def _parse(text: str, source: str) -> np.ndarray:
    """Rows of 6 tab/space-separated finite numbers; errors name ``source`` and the line."""
    rows = []
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        cells = line.split()
        if len(cells) != AIRFOIL_COLUMNS:
            raise AirfoilError(
                f"{source}, line {lineno}: expected {AIRFOIL_COLUMNS} columns, found {len(cells)}: {line[:80]!r}"
            )
        try:
            row = [float(c) for c in cells]
        except ValueError:
            bad = next(c for c in cells if not _is_float(c))
            raise AirfoilError(f"{source}, line {lineno}: non-numeric cell {bad!r}") from None
        if not all(math.isfinite(x) for x in row):
            raise AirfoilError(f"{source}, line {lineno}: non-finite cell in {line[:80]!r}")
        rows.append(row)
    if len(rows) != AIRFOIL_ROWS:
        raise AirfoilError(
            f"{source}: truncated or padded, expected {AIRFOIL_ROWS} rows, found {len(rows)} "
            f"(file ends after line {len(lines)})"
        )
    return np.asarray(rows, dtype=np.float64)


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _values_sha256(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype="<f8").tobytes()).hexdigest()


def _check(raw: bytes, source: str) -> np.ndarray:
    """Parse ``raw`` and check it against the published file (byte hash or value hash)."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise AirfoilError(f"{source}, line {line}: not an ASCII text file") from None
    values = _parse(text, source)
    if hashlib.sha256(raw).hexdigest() not in AIRFOIL_SHA256 and _values_sha256(values) != AIRFOIL_VALUES_SHA256:
        raise AirfoilError(
            f"{source}: sha256 {hashlib.sha256(raw).hexdigest()} matches neither the published file "
            f"{AIRFOIL_SHA256} nor its values; the file differs from UCI's airfoil_self_noise.dat"
        )
    return values


def _download(cache: Path, url: str, progressbar: bool) -> Path:
    """Download and unzip with pooch, check, then move the .dat atomically into ``cache``; nothing cached on failure.

    pooch downloads to a temporary file (moved into place when complete) and ``pooch.Unzip`` extracts the
    archive. The hash check is ours, on the extracted ``.dat``: UCI publishes no digest of the zip (whose
    bytes change with every repackaging), and the file is accepted with CRLF or LF line endings or by the
    digest of its parsed values, which pooch's single ``known_hash`` cannot express.
    """
    import pooch  # lazy: the download is the only place that needs it (and its requests dependency)

    target = cache / AIRFOIL_FILENAME
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
    try:
        try:
            files = pooch.retrieve(url, known_hash=None, fname="airfoil.zip", path=tmp, progressbar=progressbar,
                                   processor=pooch.Unzip(extract_dir="unzipped"))
        except zipfile.BadZipFile as exc:
            raise AirfoilError(f"{url}: downloaded file is not a valid zip ({exc})") from None
        except Exception as exc:  # network errors come in many types (requests, OSError, ...)
            raise AirfoilError(
                f"could not download the airfoil data from {url} ({type(exc).__name__}: {exc}). "
                f"Put {AIRFOIL_FILENAME} (from that zip) at {target}, or set ${ENV_PATH} to its path, "
                "or pass the path explicitly."
            ) from exc
        found = [Path(f) for f in files if Path(f).name == AIRFOIL_FILENAME]
        if not found:
            raise AirfoilError(f"{url}: the zip holds no {AIRFOIL_FILENAME} (members: {[Path(f).name for f in files]})")
        _check(found[0].read_bytes(), f"{url}!{AIRFOIL_FILENAME}")
        os.replace(found[0], target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_airfoil(path: str | os.PathLike | None = None, *, download: bool = True,
                 progressbar: bool = True, url: str = AIRFOIL_URL) -> np.ndarray:
    """Load the UCI Airfoil Self-Noise table as a (1503, 6) float64 NumPy array.

    Parameters
    ----------
    path : str or path-like, optional
        The ``airfoil_self_noise.dat`` file. If omitted: ``$ADAM_NP_AIRFOIL``, then the copy shipped
        with the package (:func:`packaged_path`, used when its hash checks), then the cached copy in
        :func:`cache_dir`, then a download of :data:`AIRFOIL_URL` into the cache (a missing or altered
        packaged copy falls through to these).
    download : bool, default True
        Whether a missing file may be downloaded.
    progressbar : bool, default True
        Show a download progress bar (tqdm, on stderr).
    url : str, optional
        Where to download the zip from.

    Returns
    -------
    numpy.ndarray
        Shape (1503, 6): five features and the sound pressure level (dB) in the last column.

    Raises
    ------
    AirfoilError
        (a ValueError) naming the file and the line for a wrong column count, a non-numeric or
        non-finite cell, a truncated file, or content that matches neither the published sha256
        (CRLF or LF line endings) nor the published values; when offline with no copy, saying
        where to put the file. A download that fails any check leaves nothing in the cache.
    FileNotFoundError
        If an explicit ``path`` (or ``$ADAM_NP_AIRFOIL``) does not exist.

    Examples
    --------
    >>> load_airfoil("no/such/airfoil.dat")
    Traceback (most recent call last):
    ...
    FileNotFoundError: airfoil data file no/such/airfoil.dat does not exist
    """
    if path is None and os.environ.get(ENV_PATH):
        path = os.environ[ENV_PATH]
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"airfoil data file {path} does not exist")
        return _check(path.read_bytes(), str(path))
    shipped = packaged_path()
    if shipped.is_file():
        try:
            return _check(shipped.read_bytes(), str(shipped))
        except AirfoilError as exc:  # an altered install: the cache or a fresh download stands in
            warnings.warn(f"ignoring the packaged airfoil file ({exc}); using the cache or a download", stacklevel=2)
    cache = cache_dir()
    cached = cache / AIRFOIL_FILENAME
    if cached.is_file():
        return _check(cached.read_bytes(), str(cached))
    if not download:
        raise AirfoilError(
            f"no airfoil data: put {AIRFOIL_FILENAME} (from {url}) at {cached}, or set ${ENV_PATH} to its path"
        )
    return _check(_download(cache, url, progressbar).read_bytes(), str(cached))


def _namespace(xp: Any) -> Any:
    return namespace_for("numpy") if xp is None else xp


def get_data_ch7(path: str | os.PathLike | None = None, n: int = 1500, *, dtype: Any = None,
                 xp: Any = None, progressbar: bool = True) -> tuple[Any, Any]:
    r"""The book's ``get_data_ch7``: standardized airfoil features and labels.

    Every column :math:`j` is standardized over all 1503 rows, :math:`z_{ij} = (a_{ij} - \bar a_j)/\sigma_j`
    (population standard deviation, computed in float64), then rows :math:`[0, n)` are returned.

    Parameters
    ----------
    path : str or path-like, optional
        Passed to :func:`load_airfoil`.
    n : int, default 1500
        Number of rows kept, 1 ≤ n ≤ 1503.
    dtype : dtype of ``xp``, optional
        Default ``xp.float32`` (as the book).
    xp : namespace, optional
        Array-API namespace of the result; default NumPy (``array_api_compat.numpy``).
    progressbar : bool, default True
        Show a progress bar if the file has to be downloaded.

    Returns
    -------
    features : array, shape (n, 5)
    labels : array, shape (n,)

    Examples
    --------
    >>> X, y = get_data_ch7()           # the copy shipped with the package: offline
    >>> X.shape, y.shape, X.dtype
    ((1500, 5), (1500,), dtype('float32'))
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= AIRFOIL_ROWS:
        raise ValueError(f"n must be an int in [1, {AIRFOIL_ROWS}], got {n!r}")
    xp = _namespace(xp)
    data = load_airfoil(path, progressbar=progressbar)
    data = (data - data.mean(axis=0)) / data.std(axis=0)
    dtype = xp.float32 if dtype is None else dtype
    data = xp.asarray(np.ascontiguousarray(data[:n]), dtype=dtype)
    return data[:, :-1], data[:, -1]


class Synthetic(NamedTuple):
    """A synthetic linear-regression problem :math:`y = Xw + b + \\text{noise}`.

    Attributes
    ----------
    features : array, shape (n, d)
    labels : array, shape (n,)
    w : array, shape (d, 1)
        The weights that generated the labels.
    b : float
        The bias that generated the labels.

    Examples
    --------
    >>> features, labels, w, b = make_synthetic(n=3, d=2)
    >>> w.shape, b
    ((2, 1), 0.5)
    """

    features: Any
    labels: Any
    w: Any
    b: float


def make_synthetic(n: int = 1500, d: int = 5, noise: float = 0.1, seed: int = 0, *, dtype: Any = None,
                   xp: Any = None) -> Synthetic:
    r"""A linear-regression problem with a known solution, for offline runs.

    Features :math:`X_{ij} \sim \mathcal N(0, 1)`, weights :math:`w_j \sim \mathcal N(0, 1)`, bias
    :math:`b = 0.5`, labels :math:`y = Xw + b + \text{noise}\cdot\mathcal N(0, 1)`, all drawn from
    ``numpy.random.default_rng(seed)`` in float64 and cast to ``dtype``. The least squared loss
    :math:`\tfrac12\,\mathrm{mean}(\hat y - y)^2` is about :math:`\text{noise}^2/2`.

    Parameters
    ----------
    n, d : int, default 1500 and 5
        Examples and features (the airfoil shapes).
    noise : float, default 0.1
        Standard deviation of the label noise, ≥ 0.
    seed : int, default 0
    dtype : dtype of ``xp``, optional
        Default ``xp.float32``.
    xp : namespace, optional
        Default NumPy.

    Returns
    -------
    Synthetic
        ``(features, labels, w, b)``.

    Examples
    --------
    >>> data = make_synthetic(n=4, d=2, noise=0.0)
    >>> data.features.shape, data.labels.shape, data.b
    ((4, 2), (4,), 0.5)
    >>> import numpy as np
    >>> bool(np.allclose(data.features @ data.w[:, 0] + data.b, data.labels))
    True
    """
    for name, value in (("n", n), ("d", d)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    xp = _namespace(xp)
    dtype = xp.float32 if dtype is None else dtype
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal((d, 1))
    b = 0.5
    y = X @ w[:, 0] + b + noise * rng.standard_normal(n)
    return Synthetic(xp.asarray(X, dtype=dtype), xp.asarray(y, dtype=dtype), xp.asarray(w, dtype=dtype), b)
