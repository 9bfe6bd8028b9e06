"""Stage outputs shared across runs, addressed by what produced them.

A stage's key hashes its inputs record (`StageInputs`: exactly the settings the stage reads, and the keys of the
artifacts it consumes) and its version, so two runs of a sweep that need the same SFT data or the same SFT
checkpoint compute it once, and a changed eval setting reuses the training stages before it. Layout under the
stage cache (default `<log_dir>/stages`, i.e. `outputs/stages`):

    <stage>/<key>/             a finished output; never modified once published
    <stage>/<key>.partial/     a build in progress, with its checkpoints: the next run that claims the key resumes it
    <stage>/<key>.lock         held while building, so concurrent runs wait instead of racing (released by the
                               OS when a holder dies)
    <stage>/<key>/stage.json   provenance: the keyed inputs, the stage version, the run that built it, when

A build is published by renaming `.partial` to the final name, which is atomic on one file system: a crash or a
preemption never leaves a half-written output that a later run would trust. With the cache off, each stage writes
into `<run dir>/<stage>` and resumes there, as a single run always did.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from filelock import FileLock

from skillexp import preemption
from skillexp.utils.io import atomic_write_json
from skillexp.utils.schema import keyed, parsed_value

log = logging.getLogger(__name__)
PROVENANCE = "stage.json"


def digest(obj: Any) -> str:
    """A short, stable hash of JSON-able data (dict key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Artifact:
    """A stage output (or the base model) that a stage consumes: its key, which is what the consumer's key holds,
    and where it is on disk, which is not (the same output may sit in a run dir or in the cache)."""

    key: str
    path: str


def key_data(value: Any) -> Any:
    """What of `value` a stage key hashes: every field of a dataclass except those marked `UNKEYED` in its
    schema, an `Artifact`'s key (not its path), and containers recursively."""
    if isinstance(value, Artifact):
        return {"artifact": value.key}
    if parsed_value(type(value)):  # as the config writes it (a task spec: {kind: ..., params})
        return key_data(value.as_config())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: key_data(getattr(value, f.name)) for f in dataclasses.fields(value)
                if keyed(type(value), f.name)}
    if isinstance(value, dict):
        return {str(k): key_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [key_data(v) for v in value]
    return value


class StageInputs:
    """The base of every stage's inputs record: a frozen dataclass holding exactly what the stage reads (settings,
    and the artifacts it consumes). `STAGE` names the stage, `VERSION` is bumped when the stage's code changes
    what it writes, and the record's `key` addresses its output in the cache."""

    STAGE: ClassVar[str]
    VERSION: ClassVar[int]
    # fields the stage never reads, there only to key its output: digests of what it reads by other means (the
    # contents of its data files); every other field is read by the stage (tests/test_records.py)
    KEY_ONLY: ClassVar[tuple[str, ...]] = ()

    @property
    def name(self) -> str:
        return self.STAGE

    @property
    def key(self) -> str:
        return digest({"stage": self.STAGE, "version": self.VERSION, "inputs": key_data(self)})


class StageCache:
    """Runs a stage's build function once per key and returns the directory that holds its output."""

    def __init__(self, root: Path | None, run_dir: Path):
        self.root, self.run_dir = root, run_dir
        self.built: set[str] = set()  # keys this run built (the others it reused)

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def output(self, spec: StageInputs, link: str | None = None) -> Path:
        """Where `spec`'s output is (or will be) once built: the cache entry, or the run dir's stage dir."""
        if not self.enabled:
            return self.run_dir / (link or spec.name)
        return self.root / spec.name / spec.key

    def run(self, spec: StageInputs, build: Callable[[Path], Any], link: str | None = None) -> Path:
        """The output directory of `spec`: reused when published, else built by `build(work_dir)` (which may
        resume from what a killed build left in `work_dir`) and published. The run dir gets a link `link`
        (default: the stage name) to it, so a run's artifacts can be browsed in one place."""
        name = link or spec.name
        preemption.exit_if_requested()  # a safe point: between stages nothing is half done
        if not self.enabled:
            out = self.run_dir / name
            build(out)
            self.built.add(spec.key)
            return out
        final = self.root / spec.name / spec.key
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(final) + ".lock"):
                if not final.exists():  # another run may have published it while we waited for the lock
                    self._build(spec, build, final, name)
        if spec.key not in self.built:
            log.info("stage %s: reusing %s", spec.name, final)
        self._link(final, self.run_dir / name)
        return final

    def _build(self, spec: StageInputs, build: Callable[[Path], Any], final: Path, name: str) -> None:
        work = final.with_name(final.name + ".partial")
        if work.exists():
            log.info("stage %s: resuming the unfinished build in %s", spec.name, work)
        work.mkdir(exist_ok=True)
        self._link(work, self.run_dir / name)  # live view of the build (checkpoints, data) from the run dir
        start = time.time()
        build(work)
        self.built.add(spec.key)
        atomic_write_json(work / PROVENANCE, {"stage": spec.name, "key": spec.key, "version": spec.VERSION,
                                              "inputs": key_data(spec), "built_by": str(self.run_dir),
                                              "seconds": round(time.time() - start, 1), "finished": time.time()})
        os.replace(work, final)

    @staticmethod
    def _link(target: Path, link: Path) -> None:
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():  # a stage dir from a run made with the cache off: keep it, do not link over it
            return
        link.symlink_to(target, target_is_directory=True)


def entries(root: Path) -> list[dict[str, Any]]:
    """Every published and unfinished output under `root`, with its size, age and provenance (for the CLI)."""
    out = []
    for stage_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        for path in sorted(p for p in stage_dir.iterdir() if p.is_dir()):
            meta_file = path / PROVENANCE
            meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
            out.append({"stage": stage_dir.name, "key": path.name.removesuffix(".partial"), "path": str(path),
                        "finished": not path.name.endswith(".partial"), "bytes": size,
                        "age_days": (time.time() - path.stat().st_mtime) / 86400, "built_by": meta.get("built_by")})
    return out


def remove(entry: dict[str, Any]) -> None:
    """Delete one output under its lock, so a build in progress is not removed under its feet (a run that only
    reads a finished output holds no lock: clean while no sweep is running)."""
    path = Path(entry["path"])
    final = path.with_name(entry["key"])
    with FileLock(str(final) + ".lock", timeout=10):
        shutil.rmtree(path, ignore_errors=True)


def default_root() -> Path:
    """The stage cache of the default config (conf/paths/default.yaml) for commands run in this directory:
    $SKILLEXP_STAGE_CACHE, else $SKILLEXP_LOG_DIR/stages, else ./outputs/stages."""
    if os.environ.get("SKILLEXP_STAGE_CACHE"):
        return Path(os.environ["SKILLEXP_STAGE_CACHE"])
    return Path(os.environ.get("SKILLEXP_LOG_DIR") or "outputs") / "stages"


def main(argv: list[str]) -> int:
    """`skillexp cache [list|clean]`: what the stage cache holds, and removing outputs no longer wanted."""
    import argparse

    ap = argparse.ArgumentParser(prog="skillexp cache", description=main.__doc__)
    ap.add_argument("action", nargs="?", choices=("list", "clean"), default="list")
    ap.add_argument("--root", type=Path, default=None, help="the stage cache (default: %(default)s from the env)")
    ap.add_argument("--stage", action="append", help="only these stages (sft_data, sft, rl, eval); repeatable")
    ap.add_argument("--unfinished", action="store_true", help="only builds that never finished (.partial)")
    ap.add_argument("--older-than", type=float, metavar="DAYS", help="only outputs not touched for DAYS days")
    ap.add_argument("--yes", action="store_true", help="clean: really delete (without it, only list)")
    args = ap.parse_args(argv)
    root = args.root or default_root()
    if not root.is_dir():
        print(f"skillexp cache: {root} is not a directory: set --root or SKILLEXP_STAGE_CACHE", file=sys.stderr)
        return 2
    chosen = [e for e in entries(root) if (not args.stage or e["stage"] in args.stage)
              and (not args.unfinished or not e["finished"])
              and (args.older_than is None or e["age_days"] >= args.older_than)]
    print(f"{'stage':<10} {'key':<18} {'state':<9} {'MB':>9} {'days':>6}  built by")
    for e in chosen:
        state = "done" if e["finished"] else "partial"
        print(f"{e['stage']:<10} {e['key']:<18} {state:<9} {e['bytes'] / 1e6:>9.1f} {e['age_days']:>6.1f}  "
              f"{e['built_by'] or '-'}")
    total = sum(e["bytes"] for e in chosen) / 1e6
    if args.action == "clean" and args.yes:
        for e in chosen:
            remove(e)
        print(f"removed {len(chosen)} outputs, {total:.1f} MB")
    elif args.action == "clean":
        print(f"would remove {len(chosen)} outputs, {total:.1f} MB: add --yes")
    else:
        print(f"{len(chosen)} outputs, {total:.1f} MB in {root}")
    return 0
