"""adam_np.book.data: airfoil loading (path / env / cache / download), validation errors, preprocessing, synthetic."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from adam_np.book import data as D

from conftest import to_numpy


@pytest.fixture
def raw(airfoil_path) -> bytes:
    return airfoil_path.read_bytes()


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    """No $ADAM_NP_AIRFOIL, an empty cache in tmp_path/cache and no packaged copy (a stripped install)."""
    monkeypatch.delenv("ADAM_NP_AIRFOIL", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ADAM_NP_CACHE", str(cache))
    monkeypatch.setattr(D, "packaged_path", lambda: tmp_path / "site-packages" / D.AIRFOIL_FILENAME)
    return cache


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection fails, as on a machine without network."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_packaged_copy_offline_with_empty_cache(monkeypatch, tmp_path, no_network):
    """A fresh clone or wheel: no $ADAM_NP_AIRFOIL, an empty cache, no network: the shipped file is read."""
    monkeypatch.delenv("ADAM_NP_AIRFOIL", raising=False)
    monkeypatch.setenv("ADAM_NP_CACHE", str(tmp_path / "cache"))
    shipped = D.packaged_path()
    assert shipped.parent == Path(D.__file__).resolve().parent
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == D.AIRFOIL_SHA256[0]  # UCI's bytes, CRLF kept
    assert "CC BY 4.0" in (shipped.parent / "AIRFOIL_LICENSE.txt").read_text()
    X, y = D.get_data_ch7(progressbar=False)
    assert X.shape == (1500, 5) and y.shape == (1500,)
    assert not (tmp_path / "cache").exists()  # nothing downloaded or cached


def test_altered_packaged_copy_falls_back_to_the_cache(monkeypatch, tmp_path, raw):
    monkeypatch.delenv("ADAM_NP_AIRFOIL", raising=False)
    altered = _write(tmp_path, raw.replace(b"126.201", b"126.202", 1), D.AIRFOIL_FILENAME)
    monkeypatch.setattr(D, "packaged_path", lambda: altered)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / D.AIRFOIL_FILENAME).write_bytes(raw)
    monkeypatch.setenv("ADAM_NP_CACHE", str(cache))
    with pytest.warns(UserWarning, match="ignoring the packaged airfoil file"):
        values = D.load_airfoil(download=False)
    assert values[0, -1] == 126.201


def test_nothing_in_the_repository_reads_the_shared_folder():
    """The repository stands alone: no file in it points at a folder beside it."""
    root = Path(__file__).resolve().parents[2]
    folder = "".join(["sh", "ared"])  # spelled in pieces so that this file does not match itself
    needles = (f"{folder}/data", f"../{folder}", f'"{folder}"')
    offenders = []
    for path in root.rglob("*"):
        if ".git" in path.parts or not path.is_file() or path.suffix not in {".py", ".md", ".cfg", ".toml", ""}:
            continue
        text = path.read_text(errors="ignore")
        if any(needle in text for needle in needles):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


def _write(tmp_path: Path, content: bytes, name: str = "air.dat") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_published_hashes_and_values(raw, airfoil_path):
    assert hashlib.sha256(raw).hexdigest() == D.AIRFOIL_SHA256[0]
    assert hashlib.sha256(raw.replace(b"\r\n", b"\n")).hexdigest() == D.AIRFOIL_SHA256[1]
    values = D.load_airfoil(airfoil_path)
    assert values.shape == (1503, 6) and values.dtype == np.float64
    np.testing.assert_array_equal(values, np.loadtxt(airfoil_path))
    np.testing.assert_array_equal(values[0], [800, 0, 0.3048, 71.3, 0.00266337, 126.201])


def test_lf_and_trailing_blank_variants_accepted(raw, tmp_path):
    lf = D.load_airfoil(_write(tmp_path, raw.replace(b"\r\n", b"\n")))
    spaced = D.load_airfoil(_write(tmp_path, raw.replace(b"\t", b" ") + b"\n\n", "spaced.dat"))
    np.testing.assert_array_equal(lf, spaced)
    assert D._values_sha256(lf) == D.AIRFOIL_VALUES_SHA256


def _lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n")


def test_wrong_column_count_names_file_and_line(raw, tmp_path):
    lines = _lines(raw)
    lines[6] = lines[6].rsplit(b"\t", 1)[0]
    path = _write(tmp_path, b"\r\n".join(lines))
    with pytest.raises(D.AirfoilError, match=rf"{path}, line 7: expected 6 columns, found 5"):
        D.load_airfoil(path)


def test_non_numeric_cell_names_file_line_and_cell(raw, tmp_path):
    lines = _lines(raw)
    lines[11] = lines[11].replace(b"\t0\t", b"\tabc\t", 1)
    path = _write(tmp_path, b"\r\n".join(lines))
    with pytest.raises(D.AirfoilError, match=rf"{path}, line 12: non-numeric cell 'abc'"):
        D.load_airfoil(path)


def test_non_finite_cell(raw, tmp_path):
    lines = _lines(raw)
    lines[2] = b"nan" + lines[2][lines[2].index(b"\t"):]
    with pytest.raises(D.AirfoilError, match="line 3: non-finite"):
        D.load_airfoil(_write(tmp_path, b"\r\n".join(lines)))


def test_truncated_rows(raw, tmp_path):
    path = _write(tmp_path, b"\r\n".join(_lines(raw)[:1500]) + b"\r\n")
    with pytest.raises(D.AirfoilError, match=rf"{path}: truncated .* expected 1503 rows, found 1500"):
        D.load_airfoil(path)


def test_truncated_mid_line(raw, tmp_path):
    path = _write(tmp_path, raw[: len(raw) - 12])
    with pytest.raises(D.AirfoilError, match=rf"{path}, line 1503: expected 6 columns"):
        D.load_airfoil(path)


def test_changed_value_fails_hash_check(raw, tmp_path):
    path = _write(tmp_path, raw.replace(b"126.201", b"126.202", 1))
    with pytest.raises(D.AirfoilError, match="sha256 .* matches neither"):
        D.load_airfoil(path)


def test_binary_file(tmp_path):
    with pytest.raises(D.AirfoilError, match="line 2: not an ASCII"):
        D.load_airfoil(_write(tmp_path, b"1\t2\n\xff\xfe"))


def test_missing_explicit_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.dat does not exist"):
        D.load_airfoil(tmp_path / "nope.dat")


def test_env_var_then_cache(no_env, monkeypatch, raw, airfoil_path, tmp_path):
    no_env.mkdir()
    (no_env / D.AIRFOIL_FILENAME).write_bytes(raw.replace(b"\r\n", b"\n"))
    np.testing.assert_array_equal(D.load_airfoil(), np.loadtxt(airfoil_path))  # from the cache
    monkeypatch.setenv("ADAM_NP_AIRFOIL", str(tmp_path / "missing.dat"))
    with pytest.raises(FileNotFoundError, match="missing.dat"):  # the env var wins over the cache
        D.load_airfoil()
    # an explicit path wins over both
    assert D.load_airfoil(airfoil_path).shape == (1503, 6)


def _zip(tmp_path: Path, content: bytes, member: str = "airfoil_self_noise.dat") -> Path:
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, content)
    return archive


@pytest.fixture
def serve(monkeypatch):
    """Replace pooch.retrieve by a local fake that 'downloads' a given zip (no network)."""
    import pooch

    calls = []

    def install(archive: Path | None, error: Exception | None = None):
        def fake_retrieve(url, known_hash, fname, path, progressbar, processor=None):
            calls.append({"url": url, "fname": fname, "path": Path(path), "progressbar": progressbar})
            if error is not None:
                raise error
            target = Path(path) / fname
            target.write_bytes(archive.read_bytes())
            return str(target) if processor is None else processor(str(target), "download", None)

        monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
        return calls

    return install


def test_download_unzips_checks_and_caches(no_env, serve, raw, tmp_path, airfoil_path):
    calls = serve(_zip(tmp_path, raw))
    values = D.load_airfoil(progressbar=False)
    np.testing.assert_array_equal(values, np.loadtxt(airfoil_path))
    assert calls[0]["url"] == D.AIRFOIL_URL and calls[0]["path"].parent == no_env
    assert calls[0]["progressbar"] is False
    assert sorted(p.name for p in no_env.iterdir()) == [D.AIRFOIL_FILENAME]  # temp folder removed
    assert (no_env / D.AIRFOIL_FILENAME).read_bytes() == raw
    D.load_airfoil()  # second call: from the cache, no download
    assert len(calls) == 1


def test_download_with_wrong_hash_caches_nothing(no_env, serve, raw, tmp_path):
    serve(_zip(tmp_path, raw.replace(b"126.201", b"126.202", 1)))
    with pytest.raises(D.AirfoilError, match="matches neither"):
        D.load_airfoil(progressbar=False)
    assert list(no_env.iterdir()) == []


def test_download_zip_without_member(no_env, serve, raw, tmp_path):
    serve(_zip(tmp_path, raw, member="other.dat"))
    with pytest.raises(D.AirfoilError, match="holds no airfoil_self_noise.dat"):
        D.load_airfoil(progressbar=False)
    assert list(no_env.iterdir()) == []


def test_download_that_is_not_a_zip_caches_nothing(no_env, serve, raw, tmp_path):
    page = tmp_path / "page.html"
    page.write_bytes(b"<html>moved</html>")
    serve(page)
    with pytest.raises(D.AirfoilError, match="downloaded file is not a valid zip"):
        D.load_airfoil(progressbar=False)
    assert list(no_env.iterdir()) == []


def test_download_finds_the_member_in_a_subfolder(no_env, serve, raw, tmp_path):
    serve(_zip(tmp_path, raw, member="airfoil/airfoil_self_noise.dat"))
    assert D.load_airfoil(progressbar=False).shape == (1503, 6)
    assert sorted(p.name for p in no_env.iterdir()) == [D.AIRFOIL_FILENAME]


def test_offline_error_says_where_to_put_the_file(no_env, serve):
    serve(None, error=OSError("Name or service not known"))
    with pytest.raises(D.AirfoilError) as info:
        D.load_airfoil(progressbar=False)
    message = str(info.value)
    assert str(no_env / D.AIRFOIL_FILENAME) in message and "ADAM_NP_AIRFOIL" in message
    assert "Name or service not known" in message
    assert list(no_env.iterdir()) == []


def test_no_download_allowed(no_env):
    with pytest.raises(D.AirfoilError, match=rf"put airfoil_self_noise.dat .* at {no_env}"):
        D.load_airfoil(download=False)


def test_get_data_ch7_matches_book_preprocessing(airfoil_path, xp):
    X, y = D.get_data_ch7(airfoil_path, xp=xp)
    assert tuple(X.shape) == (1500, 5) and tuple(y.shape) == (1500,)
    assert X.dtype == xp.float32 and y.dtype == xp.float32
    a = np.loadtxt(airfoil_path)
    z = (a - a.mean(axis=0)) / a.std(axis=0)
    np.testing.assert_allclose(to_numpy(X), z[:1500, :5], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(to_numpy(y), z[:1500, 5], rtol=1e-6, atol=1e-6)


def test_get_data_ch7_dtype_and_n(airfoil_path):
    import array_api_compat.numpy as xp

    X, y = D.get_data_ch7(airfoil_path, n=1503, dtype=xp.float64)
    assert X.dtype == np.float64
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)  # all 1503 rows standardized
    np.testing.assert_allclose(y.std(), 1.0)
    with pytest.raises(ValueError, match="n must be an int in \\[1, 1503\\], got 1504"):
        D.get_data_ch7(airfoil_path, n=1504)


def test_make_synthetic_has_known_solution():
    data = D.make_synthetic(n=200, d=4, noise=0.0, seed=3, dtype=np.float64)
    A = np.column_stack([data.features, np.ones(200)])
    sol = np.linalg.lstsq(A, data.labels, rcond=None)[0]
    np.testing.assert_allclose(sol[:4], data.w[:, 0], atol=1e-12)
    np.testing.assert_allclose(sol[4], data.b, atol=1e-12)
    noisy = D.make_synthetic(seed=3, noise=0.1)
    resid = noisy.labels - (noisy.features @ noisy.w[:, 0] + noisy.b)
    assert 0.08 < float(np.std(resid)) < 0.12
    assert noisy.features.dtype == np.float32 and noisy.features.shape == (1500, 5)


def test_make_synthetic_seeded(xp):
    a, b, c = (D.make_synthetic(n=10, seed=s, xp=xp) for s in (1, 1, 2))
    np.testing.assert_array_equal(to_numpy(a.features), to_numpy(b.features))
    assert not np.array_equal(to_numpy(a.features), to_numpy(c.features))


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "n must be an int >= 1, got 0"),
    ({"d": 2.5}, "d must be an int >= 1, got 2.5"),
    ({"noise": -1.0}, "noise must be a finite number >= 0, got -1.0"),
])
def test_make_synthetic_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        D.make_synthetic(**kwargs)


def test_download_shows_progress_by_default(no_env, serve, raw, tmp_path):
    calls = serve(_zip(tmp_path, raw))
    D.get_data_ch7()
    assert calls[0]["progressbar"] is True


def test_cli_quiet_download_has_no_progress_bar(no_env, serve, raw, tmp_path, capsys):
    from adam_np.cli import main

    calls = serve(_zip(tmp_path, raw))
    assert main(["train", "--data", "airfoil", "--quiet", "--epochs", "1"]) == 0
    assert calls[0]["progressbar"] is False and (no_env / D.AIRFOIL_FILENAME).is_file()


def test_cli_offline_error(no_env, serve, capsys):
    from adam_np.cli import main

    serve(None, error=OSError("network unreachable"))
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", "airfoil", "--quiet"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --data: could not download" in err and str(no_env / D.AIRFOIL_FILENAME) in err
