"""Acronym and Letter Countdown: generation properties, the dictionary checker against correct, wrong and hostile
answers, the lenient fallback and the STAT hooks."""
from __future__ import annotations

import pickle
import time
from collections import Counter

import pytest

from skillexp.tasks.base import SPLITS, Item
from skillexp.tasks.words import (AcronymConfig, AcronymTask, LetterCountdownConfig, LetterCountdownTask, lexicon,
                                  normalise)

SMALL = {"num_train": 60, "num_rl": 20, "num_val": 10, "num_test": 30}
KINDS = [(AcronymConfig, AcronymTask), (LetterCountdownConfig, LetterCountdownTask)]


def make(kind: int, **params: object) -> AcronymTask | LetterCountdownTask:
    cfg_cls, task_cls = KINDS[kind]
    cfg = cfg_cls(**params)
    return task_cls(cfg, f"{task_cls.KIND}_{cfg.length}")


@pytest.mark.parametrize("kind", [0, 1])
@pytest.mark.parametrize("length", [4, 5])
def test_items_are_deterministic_disjoint_and_of_the_asked_sizes(kind: int, length: int) -> None:
    task, again = make(kind, length=length, **SMALL), make(kind, length=length, **SMALL)
    splits = {s: task.items(s) for s in SPLITS}
    assert {s: len(v) for s, v in splits.items()} == {"train": 60, "rl": 20, "val": 10, "test": 30}
    for s in SPLITS:
        assert [(i.id, i.question, i.answer, i.meta) for i in splits[s]] == [
            (i.id, i.question, i.answer, i.meta) for i in again.items(s)]
    keys = [task.problem_key(i) for v in splits.values() for i in v]
    assert len(keys) == len(set(keys)), "splits overlap or repeat a problem"
    bigger = make(kind, length=length, **{**SMALL, "num_train": 600})
    reseeded = make(kind, length=length, **SMALL, data_seed=7)
    assert [i.question for i in bigger.items("test")] == [i.question for i in splits["test"]]
    assert [i.question for i in reseeded.items("test")] != [i.question for i in splits["test"]]


@pytest.mark.parametrize("kind", [0, 1])
@pytest.mark.parametrize("length", [4, 5])
def test_every_default_item_is_common_and_solved_by_its_reference(kind: int, length: int) -> None:
    task = make(kind, length=length)  # the default sizes: 4000 + 1000 + 200 + 500
    common, known = lexicon()  # loaded once per process (about 1 s), outside the timing
    common_words = {w for words in common.values() for w in words}
    start = time.perf_counter()
    items = [i for s in SPLITS for i in task.items(s)]
    assert time.perf_counter() - start < 2.0, "building the default splits is slow"
    assert len(items) == 5700
    for item in items:
        target, pool = item.answer, item.meta[task.POOL]
        assert target == item.meta["target"] and len(target) == length and target in common_words
        assert target in known and task.score(item, task.reference_solution(item)) == 1.0
        assert len(pool) == length + 3 and all((x if kind == 0 else x.upper()) in item.question for x in pool)
        if kind == 0:  # distinct common words; the used ones spell the target
            assert len(set(pool)) == len(pool) and set(pool) <= common_words
            assert not Counter(target) - Counter(w[0] for w in pool)
        else:
            assert not Counter(target) - Counter(pool) and all(len(c) == 1 and c.isalpha() for c in pool)


ACRONYM = make(0, length=4)
ACRONYM_ITEM = Item("a", "", "dogs", {"words": ["dog", "orange", "great", "sun", "apple", "dance"], "length": 4})
LETTERS = make(1, length=5)
LETTERS_ITEM = Item("l", "", "plate", {"letters": list("taerslp"), "length": 5})


@pytest.mark.parametrize("task, item, answers", [
    (ACRONYM, ACRONYM_ITEM, ["dogs", "gods", "soda", "dads", "DOGS", "Soda.", "  dogs  ", "\ndogs\n"]),
    (LETTERS, LETTERS_ITEM, ["plate", "pears", "stale", "tears", "PETAL", "Least.", " slate "]),
])
def test_correct_answers_score_one(task: AcronymTask, item: Item, answers: list[str]) -> None:
    for answer in answers:  # not only the target: any dictionary word the letters allow
        assert task.score(item, f"Let me think.\n<answer>{answer}</answer>") == 1.0, answer


@pytest.mark.parametrize("task, item, answers", [
    (ACRONYM, ACRONYM_ITEM, [
        "dog", "dodges", "doge s",  # wrong length
        "good",  # two o's, one word starts with o
        "dgos", "sgod",  # letters available, not words
        "cats", "toga",  # letters not available
        "d0gs", "dogs!", "dogs..", "do-g", "dogs dogs", "", "4", "'dogs'"]),  # not words
    (LETTERS, LETTERS_ITEM, [
        "pear", "plates",  # wrong length (both use only given letters)
        "sleet", "pasta",  # a letter twice, given once
        "tpsla", "aelst",  # letters available, not words
        "house", "brave",  # letters not available
        "pl ate", "p.late", "plate?", "plat3"]),
])
def test_wrong_answers_score_zero(task: AcronymTask, item: Item, answers: list[str]) -> None:
    for answer in answers:
        assert task.score(item, f"<answer>{answer}</answer>") == 0.0, answer
    assert task.score(item, item.answer) == 0.0  # no tag, not lenient
    assert task.score(item, f"<answer>{item.answer}") == 0.0  # unclosed tag


def test_proper_nouns_are_refused_and_items_use_common_words_only() -> None:
    item = Item("p", "", "", {"letters": list("johnlyu"), "length": 4})
    task = make(1, length=4)
    assert task.score(item, "<answer>john</answer>") == 0.0 and task.score(item, "<answer>july</answer>") == 0.0
    assert normalise("john") == "john" and "john" not in lexicon()[1]
    common = {w for words in lexicon()[0].values() for w in words}  # what items are built from
    assert common.isdisjoint({"john", "paris", "josh", "july", "nasa", "whore", "rape"})
    assert {"email", "eggs", "tears", "held", "women", "salsa", "knelt"} <= lexicon()[1]  # the checker knows more


HOSTILE = [
    "d\u043egs",  # Cyrillic o
    "\u0434ogs",  # Cyrillic d
    "ｄｏｇｓ",  # fullwidth
    "dogs\x00", "\x1bdogs", "do\x07gs", "\u200bdogs", "dogs\u0301",
    "</answer>dogs", "<b>dogs</b>",
    "d" * 1000, "dogs" * 250, "a" * 49 + ".",
    "__import__('os').system('echo pwned')", "eval('dogs')", "{dogs}", "None",
]


@pytest.mark.parametrize("answer", HOSTILE)
def test_hostile_answers_score_zero_fast(answer: str) -> None:
    lenient = make(0, length=4, lenient=True)
    start = time.perf_counter()
    for task in (ACRONYM, lenient):
        assert task.score(ACRONYM_ITEM, f"<answer>{answer}</answer>") == 0.0
        assert task.score(ACRONYM_ITEM, f"<answer><answer>{answer}</answer></answer>") == 0.0
        assert not task.check(ACRONYM_ITEM, answer)
    assert time.perf_counter() - start < 0.5


def test_huge_and_malformed_input_is_bounded_and_never_raises() -> None:
    lenient = make(0, length=4, lenient=True)
    texts = ["x" * 10_000_000, "<answer>" * 1_000_000 + "cats", "<answer>dogs</answer>" + "é" * 10_000_000,
             "<answer>" + "d" * 10_000_000 + "</answer>", "<answer><answer>dogs</answer></answer>",
             "< answer " * 500_000, "dogs " * 2_000_000 + "<answer>cats</answer>"]
    for text in texts:
        start = time.perf_counter()
        assert ACRONYM.score(ACRONYM_ITEM, text) == 0.0
        assert lenient.score(ACRONYM_ITEM, text) == 0.0
        assert time.perf_counter() - start < 0.5
    for bad in [None, 16, b"<answer>dogs</answer>", ["dogs"]]:
        assert ACRONYM.score(ACRONYM_ITEM, bad) == 0.0  # type: ignore[arg-type]
        assert not ACRONYM.check(ACRONYM_ITEM, bad)  # type: ignore[arg-type]
    broken = Item("b", "", "dogs", {"words": [None, 3, "dog", "orange", "great", "sun"], "length": 4})
    assert ACRONYM.score(broken, "<answer>dogs</answer>") == 1.0 and ACRONYM.score(broken, "<answer>odds</answer>") == 0


def test_lenient_grades_the_last_word_of_the_right_length() -> None:
    lenient = make(0, length=4, lenient=True)
    assert lenient.score(ACRONYM_ITEM, "The first letters give D, O, G, S, so the word is **DOGS**.") == 1.0
    assert lenient.score(ACRONYM_ITEM, "I tried good and cats; in the end: soda") == 1.0
    assert lenient.score(ACRONYM_ITEM, "The word is dogs, or maybe cats.") == 0.0  # the last one counts
    assert lenient.score(ACRONYM_ITEM, "<answer>cats</answer> but dogs works") == 0.0  # a tag always wins
    assert lenient.score(ACRONYM_ITEM, "The answer is dogs2 or dog") == 0.0
    assert ACRONYM.score(ACRONYM_ITEM, "The word is dogs.") == 0.0  # strict tasks need the tag
    tagged = lenient.tag_answer("So the word is dogs.")
    assert tagged is not None and tagged.endswith("<answer>dogs</answer>") and ACRONYM.score(ACRONYM_ITEM, tagged) == 1
    assert ACRONYM.tag_answer("So the word is dogs.") is None


def test_stat_hooks() -> None:
    shuffled = Item("s", "other wording", "", {"words": ["sun", "dance", "apple", "great", "orange", "dog"],
                                               "length": 4})
    assert ACRONYM.problem_key(ACRONYM_ITEM) == ACRONYM.problem_key(shuffled)
    assert LETTERS.problem_key(LETTERS_ITEM) != LETTERS.problem_key(Item("x", "", "", {"letters": list("taersl"),
                                                                                       "length": 5}))
    gold = ACRONYM.with_gold(shuffled, " Soda. ")
    assert gold is not None and gold.answer == gold.meta["target"] == "soda"
    assert ACRONYM.with_gold(shuffled, "cats") is None
    reference = ACRONYM.reference_solution(gold)  # any word with the right first letter will do
    assert reference.endswith("<answer>soda</answer>") and "dance -> D" in reference
    assert ACRONYM.score(gold, reference) == 1.0
    assert ACRONYM.checkable(shuffled) and not ACRONYM.checkable(Item("q", "free text", ""))
    free = ACRONYM.with_gold(Item("q", "free text", ""), "Dogs")  # no letters known: solutions must agree
    assert free is not None and ACRONYM.check(free, "DOGS.") and not ACRONYM.check(free, "gods")
    assert ACRONYM.with_gold(Item("q", "free text", ""), "two words") is None


def test_tasks_pickle_small_cache_items_and_check_their_source() -> None:
    task = make(1, length=4, **SMALL)
    assert task.items("train") is task.items("train") and len(pickle.dumps(task)) < 2_000
    task.check_source()
    assert task.answer_type == "word" and "word" in task.messages(task.items("test")[0])[-1]["content"]


def test_impossible_sizes_fail_clearly() -> None:
    # 460 items, but fewer distinct anagram sets of common 3-letter words
    tiny = make(1, length=3, num_distractors=0, **{**SMALL, "num_train": 400})
    with pytest.raises(ValueError, match="could not make"):
        tiny.items("test")
