"""Where a task's rows come from: a local `.jsonl`/`.parquet` file, the small set a task ships, or a hub dataset
prepared beforehand as a local `.jsonl` (`prepare`, run by `skillexp data prepare` on a machine that can reach the
hub). Nothing here touches the hub at run time: a hub name is read from its prepared file under `data_dir()`, and a
missing one raises MissingData with the command that makes it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from skillexp.utils.io import atomic_write_json, atomic_writer

PROJECT_DIR = Path(__file__).resolve().parents[2]  # the checkout root
LOCAL_SUFFIXES = (".jsonl", ".parquet", ".json", ".csv")  # a path ending so is a file, never a hub name
FORMATS = "a .jsonl file (UTF-8, one JSON object a line), a .parquet file, or a hub dataset name"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_COMMIT = re.compile(r"[0-9a-f]{40}")

Rows = list[tuple[str, dict[str, Any]]]


def data_dir() -> Path:
    """Where prepared hub datasets live: $SKILLEXP_DATA_DIR (set from `paths.data_dir`), else <checkout>/data."""
    env = os.environ.get("SKILLEXP_DATA_DIR")
    return Path(env) if env else PROJECT_DIR / "data"


def is_hub(path: str) -> bool:
    """A hub dataset name (`openai/gsm8k`) rather than a local file: it does not exist here and has no file suffix."""
    p = Path(path)
    return not (p.exists() or p.suffix in LOCAL_SUFFIXES)


def _slug_part(text: str) -> str:
    if _SAFE.fullmatch(text) and "__" not in text:
        return text
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:60] or "x"
    return f"{cleaned}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"  # lossy: the hash keeps names apart


def prepared_file(path: str, config: str | None, split: str, root: Path | None = None) -> Path:
    """The local file a prepared hub dataset is read from: `openai/gsm8k`, `main`, `test` ->
    <root>/openai__gsm8k__main__test.jsonl (config None -> `default`)."""
    parts = [*(_slug_part(p) for p in path.split("/")), _slug_part(config or "default"), _slug_part(split)]
    return (root or data_dir()) / ("__".join(parts) + ".jsonl")


def source_file(path: str | None, config: str | None, split: str, default: Path | None) -> Path:
    """The file `read_rows` reads for these arguments, without reading it (it may not exist)."""
    if not path:
        if default is None:
            raise ValueError("no data path given and no default set ships with this task; set task.path.")
        return default
    return prepared_file(path, config, split) if is_hub(path) else Path(path)


@dataclass(frozen=True)
class Source:
    """One table a task reads: a local file, or a hub dataset (name, config, split) read from its prepared file."""

    path: str
    hf_config: str | None = None
    hf_split: str = "test"

    @property
    def hub(self) -> bool:
        return is_hub(self.path)


class MissingData(FileNotFoundError):
    """A hub dataset that has not been prepared into the data directory."""

    def __init__(self, source: str, file: Path):
        self.source, self.file = source, Path(file)
        super().__init__(
            f"{source} is a hub dataset that has not been prepared: {self.file} does not exist (runs never read the "
            f"hub). On a machine that can reach the hub run `skillexp data prepare <eval suite> --out "
            f"{self.file.parent}` and copy that directory here, or set paths.data_dir to where it was prepared.")

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (scoring workers) with its own arguments, not OSError's
        return (type(self), (self.source, self.file))


def _json_row(line: str, path: Path, n: int) -> dict[str, Any]:
    """Line `n` of the JSON-lines file `path`, a JSON object, or ValueError naming the file and the line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}, column {e.colno}); each line must hold one JSON "
                         f"object with the question and answer fields.") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path}:{n}: a JSON {type(row).__name__}, not an object with the question and answer "
                         f"fields.")
    return row


def _readable(path: str | None, config: str | None, split: str, default: Path | None, what: str) -> Path:
    """The file `read_rows` / `iter_rows` read: MissingData for an unprepared hub dataset, FileNotFoundError for a
    missing file or one that is neither .jsonl nor .parquet."""
    file = source_file(path, config, split, default)
    if path and is_hub(path) and not file.is_file():
        raise MissingData(f"{path} (config {config}, split {split})", file)
    if not (file.is_file() and file.suffix in (".jsonl", ".parquet")):
        why = "does not exist" if not file.exists() else "is not a .jsonl or .parquet file"
        raise FileNotFoundError(f"{what}: {file} {why}; give {FORMATS} as task.path.")
    return file


def read_rows(path: str | None, config: str | None, split: str, default: Path | None, what: str) -> Rows:
    """(where, row) pairs, `where` naming the file and line (or row) for error messages. `path` None (or "") reads
    `default` (a task's shipped set); a hub name reads its prepared file (MissingData when there is none); `what`
    names the task in errors ("the math task")."""
    return list(iter_rows(path, config, split, default, what))


def iter_rows(path: str | None, config: str | None, split: str, default: Path | None,
              what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """`read_rows` one row at a time, for a table too large to hold whole (OpenThoughts3: 1.2M rows, ~60 GB as
    JSON lines): only the row being read is in memory. Errors name the file and the line (or byte, or row)."""
    file = _readable(path, config, split, default, what)
    n = offset = 0
    if file.suffix == ".jsonl":
        with open(file, "rb") as f:
            # split on b"\n" only, not splitlines(): JSON strings may hold U+2028 or \x85
            for line_no, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8").removesuffix("\n")
                except UnicodeDecodeError as e:
                    raise ValueError(f"{file}: byte {offset + e.start} is not UTF-8 text; {what} reads "
                                     f"{FORMATS}.") from None
                offset += len(raw)
                if line.strip():
                    n += 1
                    yield f"{file}:{line_no}", _json_row(line, file, line_no)
    else:
        import pyarrow
        import pyarrow.parquet as pq

        try:
            batches = pq.ParquetFile(file).iter_batches(batch_size=256)
            for batch in batches:
                for row in batch.to_pylist():
                    n += 1
                    yield f"{file} row {n}", row
        except (pyarrow.ArrowException, OSError) as e:
            raise ValueError(f"{file}: not a readable parquet file ({str(e)[:120]}); {what} reads "
                             f"{FORMATS}.") from None
    if not n:
        raise ValueError(f"{file} holds no rows; {what} reads {FORMATS}.")


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


def _revision(ds: Any, requested: str | None) -> str | None:
    """The hub commit the rows came from: datasets caches a hub dataset under a directory named by it."""
    for entry in getattr(ds, "cache_files", None) or []:
        found = [p for p in Path(str(entry.get("filename", ""))).parts if _COMMIT.fullmatch(p)]
        if found:
            return found[-1]
    return requested


def prepare(path: str, config: str | None, split: str, out: Path, revision: str | None = None) -> Path:
    """Download one split of a hub dataset (this needs the hub) into `out` as the .jsonl `read_rows` reads, with a
    manifest `<slug>.json` beside it (source, revision/fingerprint, rows, sha256, time). Returns the .jsonl path."""
    import datasets

    ds = datasets.load_dataset(path, config, split=split, revision=revision)
    file = prepared_file(path, config, split, Path(out))
    digest, rows = hashlib.sha256(), 0
    with atomic_writer(file) as f:  # a line at a time, renamed into place when whole: 60 GB never sit in memory
        for row in ds:
            line = json.dumps(_json_safe(dict(row)), ensure_ascii=False) + "\n"
            f.write(line)
            digest.update(line.encode("utf-8"))
            rows += 1
    atomic_write_json(file.with_suffix(".json"), {
        "source": {"path": path, "config": config, "split": split},
        "revision": _revision(ds, revision), "fingerprint": getattr(ds, "_fingerprint", None),
        "rows": rows, "sha256": digest.hexdigest(),
        "prepared_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return file


@functools.lru_cache(maxsize=256)
def _sha256(resolved: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(resolved, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(file: Path) -> str:
    """sha256 hex of the file's bytes, cached on (resolved path, inode, size, mtime, ctime) so a stage can key on
    the data cheaply; an atomic rewrite (a new inode) or any change of size or time reads it again."""
    resolved = Path(file).resolve()
    st = resolved.stat()
    return _sha256(str(resolved), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
