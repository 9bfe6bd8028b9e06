"""Acronym and Letter Countdown: word puzzles from SkillFactory's out-of-domain evaluation (lengths 4 and 5).

- `acronym`: the question lists English words; the answer is an English word of exactly `length` letters made of
  the first letters of some of them. Each given word is used at most once and in ANY order (like Countdown's "each
  number at most once"): the answer's letters must be a sub-multiset of the words' first letters. Items list the
  `length` words whose initials spell the target plus `num_distractors` more, shuffled.
- `letter_countdown`: the question gives scrambled letters, the target's plus `num_distractors` drawn by Scrabble
  tile frequency; the answer is an English word of exactly `length` letters using each given letter at most once.

Word lists come from two pinned packages, read once per process: `wordfreq` 3.1.1 (frequency: its `large` English
list buckets words by Zipf value, log10 of uses per billion words) and `english-words` 2.0.2 (Webster's 2nd `web2`,
whose case tells common words from proper nouns, and GCIDE). Items are built only from COMMON words: ASCII a-z,
Zipf >= 3.5 (about 3 uses per million words), listed in lower case in web2, never capitalised there, and in GCIDE.
The last two drop most names ("josh", "walsh", "jenna") and abbreviations, at the cost of some ordinary words
("case", "pizza", inflected forms); a few names that are also obscure lower-case entries ("costa") remain. A short
blocklist keeps vulgar, sexual and slur words out of items.
The checker's DICTIONARY is larger, the words people know: a-z words of Zipf >= 3.0 that contain a vowel (or y)
and are not a web2 proper noun (capitalised only, and not an -s/-es/-ed/-d/-ing form of a lower-case entry), plus
lower-case web2 words of Zipf >= 2.5; every item word is in it. So plurals, past tenses and modern words ("email")
pass, as do names and abbreviations that web2 does not know as such ("nasa", "paris"); items never use them.

Each item's target is its reference solution (`meta["target"]`), so every item is solvable; any dictionary word
that fits counts, not only the target. One seeded stream of unique items (same pool of words or letters in any
order counts once) is cut test, val, rl, train; a target word may recur across splits with other words or letters.

Grading: the last `<answer>` span, stripped, case-insensitive, one trailing period allowed; it must be exactly
`length` ASCII letters, in the dictionary, made of available letters. Answers over 50 characters are refused
before any work. `lenient` grades the last standalone word of `length` letters in the completion's last 2,000
characters when no tag is present.
"""
from __future__ import annotations

import functools
import importlib.util
import random
import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Annotated, Any

from skillexp.tasks.base import Item, Task, partition
from skillexp.utils.schema import NON_NEGATIVE, Range

ITEM_ZIPF, DICT_ZIPF, WEB2_ZIPF = 3.5, 3.0, 2.5  # common words for items; words people know for the checker
SOURCE_LENGTHS = range(3, 9)  # lengths of the acronym's given words
MAX_WORD_ANSWER_CHARS = 50
_TILES = "".join(c * n for c, n in zip("abcdefghijklmnopqrstuvwxyz",
                                       (9, 2, 2, 4, 12, 2, 3, 2, 9, 1, 1, 4, 2, 6, 8, 2, 1, 6, 4, 6, 4, 2, 2, 1, 2, 1)))
_AZ = re.compile(r"[a-z]+")
# never in items (the checker still accepts them): vulgar, sexual and slur words the common list would otherwise give
_BLOCKED = frozenset("arse ass bitch cock cum cunt dick erection erotic fag fuck horny hooker negro nigger orgasm "
                     "penis piss porn prick pussy queer rape raped raping rapist retard retarded sex sexy shit slut "
                     "twat vagina whore".split())
_PACKAGES = "wordfreq==3.1.1 english-words==2.0.2 (with ftfy, langcodes, locate, wcwidth; see requirements/)"


@functools.lru_cache(maxsize=1)
def lexicon() -> tuple[dict[int, list[str]], frozenset[str]]:
    """(common words by length, sorted; the checker's dictionary), loaded once per process (~1 s)."""
    from english_words import get_english_words_set
    from wordfreq import get_frequency_list

    web2 = get_english_words_set(["web2"])
    gcide = get_english_words_set(["gcide"], lower=True)
    lower = {w for w in web2 if w.islower()}
    capital = {w.lower() for w in web2 if not w.islower()}
    zipf = {w: 9 - i / 100 for i, bucket in enumerate(get_frequency_list("en", "large"))  # bucket i: 10^-(i/100)
            for w in bucket if _AZ.fullmatch(w)}

    def proper(w: str) -> bool:
        return w in capital and w not in lower and not any(
            w.endswith(s) and w[:-len(s)] in lower for s in ("s", "es", "ed", "d", "ing"))

    common = sorted(w for w, z in zipf.items() if z >= ITEM_ZIPF and w in lower and w in gcide and w not in capital
                    and w not in _BLOCKED)
    by_length: dict[int, list[str]] = {}
    for w in common:
        by_length.setdefault(len(w), []).append(w)
    known = {w for w, z in zipf.items() if z >= DICT_ZIPF and re.search("[aeiouy]", w) and not proper(w)}
    known |= {w for w in lower if zipf.get(w, 0) >= WEB2_ZIPF}
    return by_length, frozenset(known | set(common))


def normalise(answer: Any, length: int | None = None) -> str | None:
    """`answer` as a lower-case word of ASCII letters (of `length` when given), or None. Bounded: long input is
    refused before any other work."""
    if not isinstance(answer, str) or len(answer) > MAX_WORD_ANSWER_CHARS:
        return None
    word = answer.strip().removesuffix(".")
    ok = word.isascii() and word.isalpha() and (length is None or len(word) == length)
    return word.lower() if ok else None


@dataclass
class AcronymConfig:
    length: Annotated[int, Range(3, 8)] = 4  # SkillFactory evaluates 4 and 5
    num_distractors: Annotated[int, Range(0, 10)] = 3  # given words whose first letter the target does not use
    data_seed: int = 1234  # fixes the items; independent of the run seed
    num_train: Annotated[int, NON_NEGATIVE] = 4000
    num_rl: Annotated[int, NON_NEGATIVE] = 1000
    num_val: Annotated[int, NON_NEGATIVE] = 200
    num_test: Annotated[int, NON_NEGATIVE] = 500
    lenient: bool = False  # without an <answer> tag, grade the last word of `length` letters


@dataclass
class LetterCountdownConfig:
    length: Annotated[int, Range(3, 8)] = 4  # SkillFactory evaluates 4 and 5
    num_distractors: Annotated[int, Range(0, 10)] = 3  # extra letters, drawn by Scrabble tile frequency
    data_seed: int = 1234
    num_train: Annotated[int, NON_NEGATIVE] = 4000
    num_rl: Annotated[int, NON_NEGATIVE] = 1000
    num_val: Annotated[int, NON_NEGATIVE] = 200
    num_test: Annotated[int, NON_NEGATIVE] = 500
    lenient: bool = False


class _WordTask(Task):
    """What both puzzles share: the item stream, the checker, the lenient fallback and the STAT hooks. A subclass
    names the given pool (`POOL`: "words" or "letters"), draws one problem and says which letters it offers."""

    answer_type = "word"
    KIND = ""
    POOL = ""

    def __init__(self, cfg: AcronymConfig | LetterCountdownConfig, name: str):
        super().__init__(name, cfg.lenient)
        self.cfg = cfg
        self._last_word = re.compile(rf"(?<!\w)[A-Za-z]{{{cfg.length}}}(?!\w)")

    def check_source(self) -> None:
        missing = [m for m in ("wordfreq", "english_words") if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(f"{self.name} needs the word lists of {', '.join(missing)}: pip install {_PACKAGES}")

    def _draw(self, rng: random.Random) -> tuple[list[str], str]:
        """(the given pool of words or letters, the target)."""
        raise NotImplementedError

    @staticmethod
    def letters(pool: list[Any]) -> list[str]:
        """The letters a pool offers, lower case (malformed entries offer none)."""
        raise NotImplementedError

    def question(self, pool: list[str]) -> str:
        raise NotImplementedError

    def _build_splits(self) -> dict[str, list[Item]]:
        c = self.cfg
        rng = random.Random(f"{self.KIND}-{c.length}-{c.num_distractors}-{c.data_seed}")
        sizes = {"test": c.num_test, "val": c.num_val, "rl": c.num_rl, "train": c.num_train}
        total, seen, rows, attempts = sum(sizes.values()), set(), [], 0
        while len(rows) < total:
            attempts += 1
            if attempts > 50 * total + 10_000:
                raise ValueError(f"{self.KIND}: could not make {total} distinct problems of length {c.length}; "
                                 "add distractors or ask for fewer items.")
            pool, target = self._draw(rng)
            if tuple(sorted(pool)) not in seen:
                seen.add(tuple(sorted(pool)))
                rows.append((pool, target))
        return {
            split: [Item(id=f"{self.name}-{split}-{i}", question=self.question(pool), answer=target,
                         meta={self.POOL: pool, "length": c.length, "target": target})
                    for i, (pool, target) in enumerate(part)]
            for split, part in partition(rows, sizes).items()
        }

    def _lenient_extract(self, completion: str) -> str | None:
        if not isinstance(completion, str):
            return None
        found = self._last_word.findall(completion[-2_000:])
        return found[-1] if found else None

    def _stated(self, item: Item) -> bool:
        return isinstance(item.meta.get(self.POOL), list) and isinstance(item.meta.get("length"), int)

    def check(self, item: Item, answer: str) -> bool:
        """`answer` a dictionary word of the item's length made of its letters; without them in `meta`, equal to
        the gold answer (so STAT can compare solutions)."""
        if not self._stated(item):
            word = normalise(answer)
            return word is not None and word == normalise(item.answer)
        word = normalise(answer, item.meta["length"])
        if word is None or word not in lexicon()[1]:
            return False
        return not Counter(word) - Counter(self.letters(item.meta[self.POOL]))

    def problem_key(self, item: Item) -> str:
        """The pool in any order and the length; the question's wording when `meta` lacks them."""
        if self._stated(item):
            return f"{self.KIND}:{item.meta['length']}:{sorted(map(str, item.meta[self.POOL]))}"
        return super().problem_key(item)

    def with_gold(self, item: Item, answer: str) -> Item | None:
        """`item` with `answer` as its gold word, or None when it is no word (or fails a stated item)."""
        word = normalise(answer)
        if word is None or (self._stated(item) and not self.check(item, word)):
            return None
        return replace(item, answer=word, meta={**item.meta, "target": word} if self._stated(item) else item.meta)

    def checkable(self, item: Item) -> bool:
        return super().checkable(item) or self._stated(item)


class AcronymTask(_WordTask):
    KIND, POOL = "acronym", "words"

    def _draw(self, rng: random.Random) -> tuple[list[str], str]:
        sources, by_initial = _acronym_sources()
        target = rng.choice(_acronym_targets(self.cfg.length))
        used: list[str] = []
        for ch in target:  # one distinct word per letter, never the target itself (_acronym_targets: enough exist)
            w = rng.choice(by_initial[ch])
            while w == target or w in used:
                w = rng.choice(by_initial[ch])
            used.append(w)
        pool = list(used)
        while len(pool) < len(used) + self.cfg.num_distractors:
            w = rng.choice(sources)
            if w != target and w not in pool:
                pool.append(w)
        rng.shuffle(pool)
        return pool, target

    @staticmethod
    def letters(pool: list[Any]) -> list[str]:
        return [w[:1].lower() for w in pool if isinstance(w, str)]

    def question(self, pool: list[str]) -> str:
        return (f"Using the first letters of the words in the list [{', '.join(pool)}], form an English word of "
                f"exactly {self.cfg.length} letters. Each word can be used at most once, in any order, and not "
                "every word has to be used.")

    def reference_solution(self, item: Item) -> str:
        """For each letter of the gold word, the first unused given word starting with it (any such word will do)."""
        unused, steps = list(item.meta["words"]), []
        for ch in item.answer:
            word = next(w for w in unused if w[:1] == ch)
            unused.remove(word)
            steps.append(f"{word} -> {ch.upper()}")
        return f"First letters: {', '.join(steps)}; they spell {item.answer.upper()}.\n<answer>{item.answer}</answer>"


@functools.lru_cache(maxsize=1)
def _acronym_sources() -> tuple[list[str], dict[str, list[str]]]:
    """The common words an acronym question may list, all and by first letter."""
    by_length, _ = lexicon()
    sources = [w for n in SOURCE_LENGTHS for w in by_length.get(n, [])]
    by_initial: dict[str, list[str]] = {}
    for w in sources:
        by_initial.setdefault(w[0], []).append(w)
    return sources, by_initial


@functools.lru_cache(maxsize=None)
def _acronym_targets(length: int) -> list[str]:
    """Common words of `length` each of whose letters starts more common words than it occurs in the word (so
    distinct words other than the target exist; no common word starts with x)."""
    by_initial = _acronym_sources()[1]
    return [w for w in lexicon()[0].get(length, [])
            if all(len(by_initial.get(ch, ())) > n for ch, n in Counter(w).items())]


class LetterCountdownTask(_WordTask):
    KIND, POOL = "letter_countdown", "letters"

    def _draw(self, rng: random.Random) -> tuple[list[str], str]:
        target = rng.choice(lexicon()[0][self.cfg.length])
        pool = list(target) + [rng.choice(_TILES) for _ in range(self.cfg.num_distractors)]
        rng.shuffle(pool)
        return pool, target

    @staticmethod
    def letters(pool: list[Any]) -> list[str]:
        return [ch.lower() for ch in pool if isinstance(ch, str)]

    def question(self, pool: list[str]) -> str:
        return (f"Using the letters [{', '.join(ch.upper() for ch in pool)}], form an English word of exactly "
                f"{self.cfg.length} letters. Each letter can be used at most once, and not every letter has to be "
                "used.")

    def reference_solution(self, item: Item) -> str:
        return (f"The letters {', '.join(item.answer.upper())} are all given, and they spell "
                f"{item.answer.upper()}.\n<answer>{item.answer}</answer>")
