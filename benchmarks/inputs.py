"""Benchmark inputs: a prompt of ``L`` tokens followed by a forced ``T``-token continuation.

Every method, and the peers, see the same token ids: the first ``L + T`` tokens of a fixed text
(English prose for real tokenizers; seeded random words of its vocabulary for the tiny model,
whose word-level tokenizer knows nothing else). Step ``t`` explains continuation token ``t``
(the logit it had), over the prompt plus the earlier continuation tokens: exactly what
``explain(..., continuation=...)`` attributes. Prompts that do not fit the model's context with
their continuation are shortened to ``n_ctx - T`` (the tiny model has ``n_ctx = 128``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from gradellm_lens.attribute import build_steps
from gradellm_lens.models import model_info
from gradellm_lens.targets import Step

PROSE = (
    "The lighthouse keeper had kept a record of every storm for forty years. Each evening he wrote "
    "the direction of the wind, the height of the waves and the colour of the sky in a narrow book "
    "with a green cover. When the harbour board decided to automate the light, a young engineer "
    "arrived with a laptop and a box of sensors. She read the old notebooks during the long nights "
    "and found that the keeper had noticed patterns no instrument had been built to measure: the "
    "gulls left the cliffs a day before the worst gales, and the fog came in thicker when the tide "
    "turned in the early morning. "
    "Rivers shape the land slowly. Over thousands of years a stream can cut a canyon through solid "
    "rock, carry the sand to the sea and build a delta where farmers later grow rice and wheat. "
    "Engineers who build dams must understand this movement of sediment, because a reservoir that "
    "traps the sand will fill up within a few decades, while the coast below the dam, starved of "
    "new material, begins to retreat. "
    "In the small bakery on the corner, the first loaves come out of the oven at five in the "
    "morning. The baker learned the recipe from her grandmother, who measured flour with a chipped "
    "cup and judged the dough by how it felt under her palm. Customers queue in the rain for the "
    "rye bread, and the students from the college buy the cheap rolls that are left at closing time. "
    "A good experiment changes one thing at a time. If a gardener wants to know whether a new "
    "fertiliser helps tomatoes grow, she plants two rows in the same soil, waters them equally and "
    "treats only one row. Even then the result may be chance, so careful scientists repeat the test "
    "in different seasons and count the fruit from many plants before they trust the difference. "
)


@dataclass(frozen=True)
class BenchInput:
    """One benchmark sequence.

    Attributes:
        tokens: ``[L + T]`` token ids (prompt then continuation), on CPU.
        prompt_length: ``L`` (after shortening to the context, if needed).
        steps: the ``T`` steps, one per continuation token.
        requested_length: the prompt length asked for.
    """

    tokens: torch.Tensor
    prompt_length: int
    steps: tuple[Step, ...]
    requested_length: int

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def last_step(self) -> Step:
        return self.steps[-1]


def source_ids(model, n_tokens: int) -> torch.Tensor:
    """At least ``n_tokens`` token ids of the benchmark text for ``model``'s tokenizer."""
    tokenizer = model.tokenizer
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = tokenizer(PROSE, add_special_tokens=False)["input_ids"]
    if unk is not None and sum(i == unk for i in ids) > 0.1 * len(ids):  # a toy vocabulary
        words = [w for w in tokenizer.get_vocab() if w.isalpha() and w not in tokenizer.all_special_tokens]
        rng = random.Random(0)
        text = " ".join(rng.choice(sorted(words)) for _ in range(n_tokens + 16))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    with_policy = model.to_tokens("a")[0].tolist()  # the model's own BOS policy
    head = with_policy[: len(with_policy) - len(plain)]
    while len(head) + len(ids) < n_tokens:
        ids = ids + ids
    return torch.tensor(head + ids, dtype=torch.long)[:n_tokens]


def make_input(model, prompt_length: int, n_steps: int) -> BenchInput:
    """The benchmark sequence with a prompt of ``prompt_length`` tokens and ``n_steps`` steps."""
    n_ctx = model_info(model).n_ctx
    length = max(2, min(prompt_length, n_ctx - n_steps))
    tokens = source_ids(model, length + n_steps)
    steps = build_steps(length, tokens)
    return BenchInput(tokens=tokens, prompt_length=length, steps=tuple(steps), requested_length=prompt_length)
