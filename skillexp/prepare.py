"""`skillexp data prepare <eval suite | overrides...> [--out DIR]`: download, once and on a machine that can reach
the Hugging Face hub, every hub dataset a run would read (its training task's and its eval suite's), and write
them as local JSON-lines files with a manifest (source, row count, sha256) under DIR, where runs read them
(`paths.data_dir`; runs never read the hub). The arguments are a run's own Hydra overrides, so
`skillexp data prepare experiment=stat_math` prepares exactly what `skillexp experiment=stat_math` needs; a bare
name is short for `eval=<name>`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from skillexp.tasks.base import Task

if TYPE_CHECKING:
    from skillexp.config import RunConfig


def data_sources(run: RunConfig) -> Iterator[tuple[str, Task]]:
    """(config path, task) for every task of `run` that reads tables (`Task.sources`): hub datasets or local files
    named in the config (not the shipped sets, which `path: null` reads)."""
    for path, spec in run.task_specs().items():
        task = spec.build(name=path.rsplit(".", 1)[-1], path=path)
        if task.sources():
            yield path, task


def write_suite_data(overrides: list[str], data_dir: Path, n: int = 12) -> list[Path]:
    """Generated stand-ins (tasks/standins.py) for every hub dataset and local file the run of `overrides` reads,
    where that run, with `paths.data_dir=data_dir`, reads them; returns their paths."""
    from skillexp.tasks.standins import write_stand_ins

    from skillexp.config import compose_run

    run = compose_run([*overrides, f"paths.data_dir={data_dir}"])
    return write_stand_ins((task for _, task in data_sources(run)), data_dir, n)


def main(argv: list[str]) -> int:
    """`skillexp data prepare`: download a run's hub datasets into local files its compute nodes read."""
    from skillexp.tasks.sources import prepare, prepared_file

    ap = argparse.ArgumentParser(prog="skillexp data", description=main.__doc__)
    ap.add_argument("action", choices=("prepare",))
    ap.add_argument("overrides", nargs="+", help="an eval suite (e.g. stat_math) or a run's overrides "
                                                 "(e.g. experiment=stat_math)")
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: the run's paths.data_dir)")
    ap.add_argument("--force", action="store_true", help="download again even where a file is there")
    ap.add_argument("--list", action="store_true", help="say what would be downloaded, and download nothing")
    ap.add_argument("--stand-ins", action="store_true",
                    help="write small generated tables in each source's schema instead (simple sums, no download): "
                         "a recipe's CPU twin, offline")
    args = ap.parse_args(argv)
    overrides = [o if "=" in o else f"eval={o}" for o in args.overrides]
    if args.out is not None:
        overrides.append(f"paths.data_dir={args.out.resolve()}")
    from skillexp.config import compose_run

    run = compose_run(overrides)
    out = Path(run.paths.data_dir or ".").resolve()
    if args.stand_ins:
        for path in write_suite_data(overrides, out):
            print(f"wrote a generated stand-in {path}")
        print(f"runs read them with paths.data_dir={out}: generated sums, not the datasets")
        return 0
    done: set[Path] = set()
    for path, task in data_sources(run):
        staged: list[Path] = []  # this task's new tables, kept in a staging dir until the task has read them
        staging = out / ".staging"
        for src in task.sources():
            if not src.hub:
                state = "there" if Path(src.path).is_file() else "MISSING: not a hub dataset, so save it there yourself"
                print(f"{path}: reads the local file {src.path} ({state})")
                continue
            target = prepared_file(src.path, src.hf_config, src.hf_split, out)
            what = f"{src.path} ({src.hf_config or '-'}, {src.hf_split})"
            if target in done:
                continue
            done.add(target)
            if target.exists() and not args.force:
                print(f"{path}: {what} already in {target}")
            elif args.list:
                print(f"{path}: would download {what} to {target}")
            else:
                print(f"{path}: downloading {what} ...", flush=True)
                staged.append(prepare(src.path, src.hf_config, src.hf_split, staging))
        if staged and not check_tables(path, task, out, staging, staged):
            return 2
    if not done:
        print(f"no task of `{' '.join(overrides)}` reads a hub dataset: nothing to download")
    else:
        print(f"runs read them with paths.data_dir={out} (or SKILLEXP_DATA_DIR={out})")
    return 0


def check_tables(path: str, task: Task, out: Path, staging: Path, staged: list[Path]) -> bool:
    """Read `task` from the tables just downloaded (`staged`, in `staging`) and those already in `out`, as a run
    will; publish the new ones into `out` only if every row has what the task reads. Else print what is wrong
    (the file, the fields a row has, the config key that names the field) and publish nothing."""
    import os
    import shutil

    from skillexp.tasks.sources import prepared_file

    for src in task.sources():  # what was prepared before: beside the new tables, for the task to read
        old = prepared_file(src.path, src.hf_config, src.hf_split, out)
        if src.hub and old.exists() and not (staging / old.name).exists():
            shutil.copy2(old, staging / old.name)
    previous, ok = os.environ.get("SKILLEXP_DATA_DIR"), True
    os.environ["SKILLEXP_DATA_DIR"] = str(staging)
    try:
        task.check_source()
    except (ValueError, FileNotFoundError) as e:
        ok = False
        message = str(e).replace(str(staging), str(out))
        print(f"skillexp data: {path}: the downloaded table does not have what the task reads: {message} Nothing "
              f"was written to {out}.", file=sys.stderr)
    finally:
        if previous is None:
            os.environ.pop("SKILLEXP_DATA_DIR", None)
        else:
            os.environ["SKILLEXP_DATA_DIR"] = previous
    out.mkdir(parents=True, exist_ok=True)
    for file in staged:  # published by atomic renames, or dropped
        for part in (file, file.with_suffix(".json")):
            if ok:
                part.replace(out / part.name)
            else:
                part.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    for file in staged if ok else []:
        print(f"{path}: wrote {out / file.name}")
    return ok


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
