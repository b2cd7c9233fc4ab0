"""Small synthetic task files in the tiny model's vocabulary, for the task and evaluation tests."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

SST2_TEXTS = [
    ("this movie was great fun", 1),
    ("a terrible and boring film", 0),
    ("the acting was very good", 1),
    ("the plot was bad and the music was worst", 0),
    ("i love this film so much", 1),
    ("the worst movie ever", 0),
    ("really the best actor and actress", 1),
    ("i hate the plot", 0),
]
SST2 = [
    {"id": f"sst2-{i}", "idx": i, "text": text + " . ", "label": label} for i, (text, label) in enumerate(SST2_TEXTS)
]

TELLMEWHY = [
    {
        "id": f"tmw-{i}",
        "narrative": narrative,
        "question": question,
        "answer": answers[0],
        "answers": answers,
        "is_ques_answerable": "Answerable",
        "question_type": "Goal seeking",
    }
    for i, (narrative, question, answers) in enumerate(
        [
            (
                "the man ran home . he was very tired .",
                "why did the man run home ?",
                ["he was tired", "to sleep", "home"],
            ),
            (
                "the cat sat on the mat . it was a good day .",
                "why did the cat sit ?",
                ["it was a good day", "fun", "rest"],
            ),
            ("the child ran . the dog ran too .", "why did the dog run ?", ["the child ran", "fun", "play"]),
        ]
    )
]

BOOLQ = [
    {"id": f"boolq-{i}", "idx": i, "question": q, "title": "t", "passage": p, "answer": bool(a), "label": a}
    for i, (p, q, a) in enumerate(
        [
            ("the cat sat on the mat .", "is the cat on the mat", 1),
            ("the dog ran home at night .", "did the dog sit", 0),
            ("the man was born on a new day .", "was the man born", 1),
        ]
    )
]


def write_jsonl(path: Path, records: Iterable[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_task_files(folder: Path) -> Path:
    """Write the synthetic SST-2, BoolQ and TellMeWhy files under their real names into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "sst2_validation.jsonl", SST2)
    write_jsonl(folder / "boolq_validation.jsonl", BOOLQ)
    write_jsonl(folder / "tellmewhy_test_annotated.jsonl", TELLMEWHY)
    return folder
