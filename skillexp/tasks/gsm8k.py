"""GSM8K: grade-school word problems whose answer is one number.

Rows come through `sources.read_rows`: the hub's `openai/gsm8k` (config `main`) read from its prepared file, or a
local `.jsonl`/`.parquet` with the same fields. The gold is the number after the last `####` of the answer field
(`#### 1,234` -> 1234); a row without one fails when the task is read, naming the row. Items are ordered by a hash
of the question and cut test, val, rl, train as the math task does; by default every row is a test item (the eval
suites read the hub's `test` split); to train on GSM8K read `hf_split: train` with `num_test: 0, num_train: -1`.

The model's answer is the last `<answer>` span (`answer_format: tag`) or the last `\\boxed{}` (`answer_format: boxed`,
as STAT's suite asks); `lenient`: else the last number in the completion's tail. It is
compared with the gold exactly, as rationals (never floats, never evaluated). Accepted forms: `1234`, `1,234`
(correct thousands groups only), `1234.0`, `1234.`, `+5`, `-5`, `−5` (unicode minus), a currency sign before or
after the sign (`$1,234`, `\\$5`, `-$5`, `€5`, `£5`), a trailing `%` or `percent` (`50%` equals gold 50: GSM8K
states percentages as bare numbers; `0.5` does not), up to three words after the number that do not change it,
from an allow-list: units (`1234 dollars`, `5 miles per hour`, `60 km/h`) and the question's own words (`72 clips`
when it asks how many clips), and one `\\boxed{...}` or `$...$` wrapper. Refused: fractions (`1234/1`, `1/2`:
GSM8K golds are written as decimals), expressions (`2+3`, `x = 5`), scientific notation (`1e3`), several numbers
(`12 or 13`), any other word (`5 thousand`, `5 and a half`, `12 or so`, `5 fewer`, `5 pairs`), non-ASCII digits
(`١٢٣`, `１２`), digit groups like `12,34` or `1 234`, markdown (`**5**`), and anything longer than MAX_CHARS.
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Annotated, Literal

from skillexp.tasks.base import Item, Task, partition
from skillexp.tasks.sources import Source, read_rows
from skillexp.utils.schema import Range

MAX_CHARS = 100  # an answer is one number and a few words; nothing longer is read
_NUM = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+"
_WORD = r"[A-Za-z][A-Za-z'./-]{0,24}"
_ANSWER = re.compile(
    rf"(?P<s1>[-+]?)\s?(?:\\?\$|€|£)?\s?(?P<s2>[-+]?)(?P<num>{_NUM})\s?(?:\\?%)?(?:\s{{1,3}}(?P<unit>{_WORD}"
    rf"(?:\s{{1,3}}{_WORD}){{0,2}}))?")
_GOLD = re.compile(r"[-+]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_LAST = re.compile(r"(?<![0-9A-Za-z.,])-?(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?")
_CALC = re.compile(r"<<[^<>\n]{0,200}>>")  # GSM8K's calculator annotations, `<<48/2=24>>`
# the words that may follow a number because they do not change its value: units of money, time, length, mass,
# volume, speed and temperature, and the words of a rate ("miles per hour"); an allow-list, so that a word nobody
# thought of ("1234 fewer", "1234 pairs", "1234 squared") refuses the answer instead of passing
UNITS = frozenset("""
    dollar dollars usd $ euro euros eur pound pounds gbp yen rupee rupees
    percent percentage
    second seconds sec secs minute minutes min mins hour hours hr hrs day days week weeks month months year years old
    mile miles km kilometer kilometers kilometre kilometres meter meters metre metres m cm mm centimeter centimeters
    millimeter millimeters inch inches in foot feet ft yard yards
    kg kilogram kilograms gram grams g lb lbs ounce ounces oz ton tons tonne tonnes
    liter liters litre litres l ml milliliter milliliters gallon gallons quart quarts pint pints cup cups
    mph kph km/h m/s degree degrees °f °c fahrenheit celsius
    per each a an in of total altogether units unit
""".split())
# words that change a number's value or add another one: never allowed, even when the question uses them
_STOP = frozenset("and or plus minus times point half halves quarter quarters third thirds hundred hundreds thousand "
                  "thousands million millions billion billions trillion dozen dozens to over by divided multiplied "
                  "x e k less fewer more extra short than not no".split())
_QUESTION_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{0,24}")


@functools.lru_cache(maxsize=8192)
def question_words(question: str) -> frozenset[str]:
    """The words of a question that may also follow its answer ("72 clips" for "how many clips..."): what it counts,
    never a word of _STOP. Each comes in the singular and the plural ("apples per farm" for "the 3 farms")."""
    words = {w.lower() for w in _QUESTION_WORD.findall(question[:4_000])}
    return frozenset(words | {w[:-1] if w.endswith("s") else f"{w}s" for w in words}) - _STOP


def parse_number(text: str, words: frozenset[str] = frozenset()) -> Fraction | None:
    """The value of one answer under the rules above, or None. Up to three words may follow the number, each a
    unit (UNITS) or one of `words` (the question's own, `question_words`). Bounded (MAX_CHARS); never raises."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        return None
    s = text.strip().replace("−", "-")
    if s.startswith("\\boxed{") and s.endswith("}"):
        s = s[7:-1].strip()
    if len(s) > 2 and s[0] == s[-1] == "$" and s.count("$") == 2:
        s = s[1:-1].strip()
    s = s.removesuffix(".").strip() if not s.endswith("..") else s
    m = _ANSWER.fullmatch(s)
    if m is None or (m["s1"] and m["s2"]):
        return None
    if m["unit"] and any((w := part.strip("'.-").lower()) in _STOP or (w not in UNITS and w not in words)
                         for part in m["unit"].split()):
        return None
    whole, _, frac = m["num"].replace(",", "").partition(".")
    value = Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
    return -value if "-" in (m["s1"] + m["s2"]) else value


def _canonical(value: Fraction) -> str:
    """1234, -5, 2.5: the shortest exact decimal (golds come from decimals, so one exists)."""
    sign, value = ("-" if value < 0 else ""), abs(value)
    k = 0
    while (value * 10**k).denominator != 1:
        k += 1
        if k > 2 * MAX_CHARS:  # not a decimal: cannot come from parse_number or a gold
            return sign + str(value)
    digits = str(int(value * 10**k)).rjust(k + 1, "0")
    return sign + (f"{digits[:-k]}.{digits[-k:]}" if k else digits)


@functools.lru_cache(maxsize=8192)
def _gold_value(answer: str) -> Fraction | None:
    return parse_number(answer)


def read_gold(where: str, text: str) -> tuple[str, str]:
    """(worked solution before the last `####`, canonical gold) of one row's answer field; ValueError names the row."""
    head, mark, tail = text.rpartition("####")
    gold = tail.strip()
    if not mark or not _GOLD.fullmatch(gold):
        found = repr(gold[:40]) if mark else "no '####' line"
        raise ValueError(f"{where}: the answer field must end in '#### <number>' (GSM8K's format); found {found}.")
    whole, _, frac = gold.lstrip("+-").replace(",", "").partition(".")
    value = Fraction(int(whole) * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
    return _CALC.sub("", head).strip(), _canonical(-value if gold.startswith("-") else value)


@dataclass
class Gsm8kConfig:
    path: str = "openai/gsm8k"  # a (prepared) hub dataset name, or a .jsonl / .parquet file with the same fields
    hf_config: str | None = "main"
    hf_split: str = "test"  # the eval suites read `test` (1,319 problems); `train` holds 7,473
    question_field: str = "question"
    answer_field: str = "answer"  # the worked solution ending in `#### <number>`
    answer_format: Literal["tag", "boxed"] = "tag"  # where the model's final answer is read from
    num_test: Annotated[int, Range(-1)] = -1  # -1 = all remaining items; cut in the order test, val, rl, train
    num_val: Annotated[int, Range(-1)] = 0
    num_rl: Annotated[int, Range(-1)] = 0
    num_train: Annotated[int, Range(-1)] = 0
    lenient: bool = False  # without an <answer> tag (or \boxed{}), grade the last number in the completion


class Gsm8kTask(Task):
    def __init__(self, cfg: Gsm8kConfig, name: str):
        super().__init__(name, cfg.lenient)
        self.cfg = cfg
        self.answer_type, self.answer_format = "numerical answer", cfg.answer_format

    def sources(self) -> list[Source]:
        return [Source(self.cfg.path, self.cfg.hf_config, self.cfg.hf_split)]

    def _build_splits(self) -> dict[str, list[Item]]:
        c = self.cfg
        items, seen = [], set()
        for where, row in read_rows(c.path, c.hf_config, c.hf_split, None, "the gsm8k task"):
            for key, name in (("question_field", c.question_field), ("answer_field", c.answer_field)):
                if not isinstance(row.get(name), str):
                    raise ValueError(f"{where}: the row has no text field {name!r} (its fields: {sorted(row)[:12]}); "
                                     f"set {self.config_path}.{key} to the field that holds it, or fix the row.")
            question = row[c.question_field].strip()
            solution, gold = read_gold(where, row[c.answer_field])
            digest = hashlib.sha1(question.encode()).hexdigest()[:12]
            if digest not in seen:
                seen.add(digest)
                items.append(Item(id=f"{self.name}-{digest}", question=question, answer=gold,
                                  meta={"solution": solution}))
        items.sort(key=lambda it: it.id)  # an order that does not depend on the file's order
        return partition(items, {"test": c.num_test, "val": c.num_val, "rl": c.num_rl, "train": c.num_train})

    def _lenient_extract(self, completion: str) -> str | None:
        if not isinstance(completion, str):
            return None
        found = _LAST.findall(completion[-2_000:])
        return found[-1] if found else None

    def check(self, item: Item, answer: str) -> bool:
        try:
            gold = _gold_value(item.answer)
            return gold is not None and parse_number(answer, question_words(item.question)) == gold
        except Exception:  # noqa: BLE001 - untrusted input: any failure means "not correct"
            return False

    def with_gold(self, item: Item, answer: str) -> Item | None:
        value = parse_number(answer, question_words(item.question))
        return None if value is None else replace(item, answer=_canonical(value))

    def reference_solution(self, item: Item) -> str:
        """GSM8K's worked solution (calculator annotations `<<…>>` removed) with its `####` line as the answer."""
        solution = item.meta.get("solution") or ""
        if self.cfg.answer_format == "boxed":
            return f"{solution}\nThe answer is $\\boxed{{{item.answer}}}$.".lstrip()
        return f"{solution}\n<answer>{item.answer}</answer>".lstrip()
