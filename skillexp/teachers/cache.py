"""On-disk cache of teacher chat completions, so a re-run or a resumed run never pays for a request twice.

One JSON file per request, named by the SHA-256 of the request (model, messages, sampling parameters including
n and seed) and written atomically (`utils.io`): a run killed mid-way keeps every answer it had received, a
reader never sees half a file, and concurrent processes (two runs sharing `paths.cache_dir`, ranks, nodes on a
network filesystem) can only both write the same valid answer. Each file also holds its request, which is
compared on read, so a hash collision or a hand-edited file is a miss rather than a wrong answer.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from skillexp.utils.io import atomic_write_text


def chat_request(model: str, messages: Sequence[dict[str, str]], params: dict[str, Any]) -> dict[str, Any]:
    """What identifies a completion: everything that changes the answer, nothing that does not (no endpoint URL,
    so a restarted server on another port, or the same model behind another gateway, hits the same entries)."""
    return {"model": model, "messages": [dict(m) for m in messages], **params}


def request_key(request: dict[str, Any]) -> str:
    blob = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ChatCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, request: dict[str, Any]) -> list[str] | None:
        """The cached completions for `request`, or None (absent, unreadable, or stored for another request)."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("request") != request or not isinstance(entry.get("texts"), list):
            return None
        return [str(t) for t in entry["texts"]]

    def put(self, key: str, request: dict[str, Any], texts: Sequence[str]) -> None:
        atomic_write_text(self._path(key), json.dumps({"request": request, "texts": list(texts)}, ensure_ascii=False))

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.json"))
