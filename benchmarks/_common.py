"""What the Dask benchmarks share: the workers' peak RSS and the writing of results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["peak_rss_mib", "write_results"]


def peak_rss_mib(client: Any) -> dict:
    """Peak resident memory of each worker of ``client``, in MiB (``ru_maxrss``).

    Parameters
    ----------
    client : distributed.Client

    Returns
    -------
    dict
        ``{worker address: MiB}``.
    """
    import resource

    def peak() -> float:  # ru_maxrss is KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    return {addr: round(mib, 1) for addr, mib in client.run(peak).items()}


def write_results(folder: Path | None, stem: str, table: str, result: dict) -> None:
    """Print ``table``; with a ``folder``, also write it as ``STEM.md`` and ``result`` as ``STEM.json`` there.

    Parameters
    ----------
    folder : pathlib.Path or None
    stem : str
    table : str
    result : dict

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_results(Path(d), "b", "| x |", {"x": 1})
    ...     sorted(p.name for p in Path(d).iterdir())
    | x |
    ['b.json', 'b.md']
    """
    print(table)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.md").write_text(table + "\n")
        (folder / f"{stem}.json").write_text(json.dumps(result, indent=2))
