"""Fetch MNIST / Fashion-MNIST into a data directory and verify every file's MD5.

    python -m demos.download mnist --data-dir ~/data
    python -m demos.download fashion-mnist            # uses $PREDICTIVE_CIRCUITS_DATA

Files that are already present and pass their checksum are not fetched again. A file that
fails its checksum after download is deleted and the command fails.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from algorithms.data import DATA_ENV, DATASETS, DataError, find_idx_file, read_idx

DEFAULT_DATA_DIR = Path("~/.cache/predictive-circuits/data").expanduser()


def default_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``data_dir``, else ``$PREDICTIVE_CIRCUITS_DATA``, else ``~/.cache/predictive-circuits/data``."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else DEFAULT_DATA_DIR


def download(name: str, data_dir: Path, mirrors: tuple[str, ...] | None = None,
             timeout: float = 30.0, log=print) -> Path:
    """Fetch the four IDX files of ``name`` into ``data_dir/name``; returns that folder.

    ``mirrors`` overrides the registry's base URLs (``file://`` URLs work, for tests).
    Raises ``OSError`` when no mirror answers and :class:`DataError` when a checksum fails.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; downloadable: {', '.join(DATASETS)}")
    info = DATASETS[name]
    folder = data_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in info.files.values():
        present = find_idx_file(folder, f)
        if present is not None:
            try:
                read_idx(present, f)
                continue
            except DataError as exc:
                log(f"{present.name}: {exc}; fetching it again")
                present.unlink()
        target = folder / f"{f.name}.gz"
        errors = []
        for base in mirrors or info.mirrors:
            url = f"{base}{f.name}.gz"
            try:
                log(f"fetching {url}")
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    payload = resp.read()
                break
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                errors.append(f"{url}: {exc}")
        else:
            raise OSError(
                f"could not download {f.name} ({'; '.join(errors)}). Without network access, "
                f"copy the canonical IDX files (raw or .gz) into {folder}"
            )
        try:
            raw = gzip.decompress(payload)
        except (OSError, EOFError) as exc:
            raise DataError(f"{url}: not a valid gzip file ({exc})") from exc
        digest = hashlib.md5(raw).hexdigest()
        if digest != f.md5 or len(raw) != f.size:
            raise DataError(f"{url}: MD5 {digest} ({len(raw)} bytes) does not match the "
                            f"published {f.md5} ({f.size} bytes); nothing was kept")
        tmp = target.with_suffix(".gz.part")
        tmp.write_bytes(payload)
        os.replace(tmp, target)
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("--data-dir", help=f"default: ${DATA_ENV} or {DEFAULT_DATA_DIR}")
    args = p.parse_args(argv)
    folder = default_data_dir(args.data_dir)
    try:
        out = download(args.dataset, folder)
    except (OSError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.dataset}: all files present and verified in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
