r"""Contrast tasks: clean/corrupted prompt pairs generated from templates, for activation patching.

Each task makes, deterministically from a seed and without downloads, :class:`ContrastPair` s of a
*clean* prompt and a *corrupted* prompt of the **same token length** for a given model's tokenizer,
and the steps whose mean target value is the task's metric :math:`M` (a
:class:`~gradellm_lens.targets.Step` list, the package's language for "what is explained", so
activation patching, attribution patching and Grad-ELLM all read the same scalar):

.. math::

    M(x) = \frac{1}{T} \sum_{t=1}^{T} y_t(\text{logits}(x)[p_t])

with :math:`y_t` the step's :class:`~gradellm_lens.targets.Target` (a logit difference, or a
log-probability). Tasks (all seeded: pair ``i`` of seed ``s`` is drawn from its own
``random.Random(f"{name}/{s}/{i}")``, so the first ``n`` pairs do not depend on how many are asked for):

``ioi``
    Indirect-object identification (Wang et al. 2022, "Interpretability in the wild"): templates
    such as ``"When Mary and John went to the store, John gave a drink to"``, in ``ABBA`` order
    (``IO S ... S``) and ``BABA`` order (``S IO ... S``), alternating between pairs; names, places
    and objects drawn from lists; only names that are **one token** (with a leading space) for the
    model's tokenizer are used. Corrupted: the three name slots filled with three other names (the
    "ABC" distribution of Wang et al.). :math:`M = \text{logit}(IO) - \text{logit}(S)`.
``factual_recall``
    Country -> capital (``"The capital of France is"``); corrupted: another country whose prompt
    has the same token length and whose capital starts with another token.
    :math:`M = \text{logit}(\text{capital}) - \text{logit}(\text{other capital})` (first tokens).
``induction``
    A sequence of ``length`` random distinct word tokens, then the same sequence again
    (Olsson et al. 2022); corrupted: the second half replaced by other random tokens. :math:`M` is
    the mean log-probability (``objective="log_prob"``, i.e. minus the loss; or the logit) of the
    repeated token at each position of the second half that can be predicted by induction.
``greater_than``
    Years (Hanna et al. 2023, "How does GPT-2 compute greater-than?"): ``"The war lasted from the
    year 1732 to the year 17"``. The tokenizers here write numbers digit by digit, so the answer is
    the tens digit :math:`a` (here 3), and the graded metric contrasts digits above and below it in
    balanced pairs, :math:`M = \frac{1}{D}\sum_{d=1}^{D} \text{logit}(a+d) - \text{logit}(a-d)`,
    :math:`D = \min(a, 9-a)`, with :math:`a \in \{2, \dots, 7\}`; corrupted: tens digit 0
    (``1702``: every later year is valid), as Hanna et al.'s ``01`` corruption.

:meth:`ContrastTask.check` runs the model on the pairs and reports whether it **solves** the task:
the accuracy (``ioi``, ``factual_recall``, ``greater_than``: the fraction of clean prompts with
:math:`M > 0`; ``induction``: the fraction of predicted positions whose top token is the repeated
one), the mean clean and corrupted metrics and their gap; ``solved`` needs the accuracy to reach
``min_accuracy`` and the gap to be positive, and :meth:`ContrastCheck.summary` says so in words.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..capture.recording import as_batch
from ..encoding import encode_prompt
from ..errors import InvalidInputError, unknown_name_error
from ..targets import Step, Target, as_index, check_objective, stacked_values
from ..tensor_types import TokenIds
from .base import TaskFamily, register_task

MIN_ACCURACY = 0.75
"""Default accuracy a model must reach on the clean prompts for :attr:`ContrastCheck.solved`."""
MAX_DRAWS = 200
"""Draws tried for one pair before giving up (a draw is rejected when the prompts' lengths differ)."""


@dataclass(frozen=True)
class ContrastPair:
    """One clean/corrupted prompt pair and the steps that define its metric.

    Attributes:
        id: ``"<task>-<seed>-<index>"``.
        clean, corrupted: ``[pos]`` token ids of equal length (as the model sees them, BOS included).
        steps: the explained steps; the metric is the mean of their target values (module docstring).
        clean_text, corrupted_text: the prompts as text.
        fields: what was drawn (names, order, template index ...), for tables.
    """

    id: str
    clean: TokenIds
    corrupted: TokenIds
    steps: tuple[Step, ...]
    clean_text: str
    corrupted_text: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clean, corrupted = torch.as_tensor(self.clean), torch.as_tensor(self.corrupted)
        if clean.ndim != 1 or corrupted.ndim != 1:
            raise InvalidInputError(f"Pair {self.id}: clean and corrupted must be 1-D token ids.")
        if clean.shape != corrupted.shape:
            raise InvalidInputError(
                f"Pair {self.id}: the clean prompt has {clean.shape[0]} tokens and the corrupted one "
                f"{corrupted.shape[0]}; activation patching needs equal lengths."
            )
        if not self.steps or any(not 0 <= s.position < clean.shape[0] for s in self.steps):
            raise InvalidInputError(f"Pair {self.id}: needs steps inside the {clean.shape[0]} positions.")
        object.__setattr__(self, "clean", clean)
        object.__setattr__(self, "corrupted", corrupted)
        object.__setattr__(self, "steps", tuple(self.steps))

    @property
    def length(self) -> int:
        return int(self.clean.shape[0])

    @property
    def positions(self) -> list[int]:
        return [s.position for s in self.steps]


@dataclass(frozen=True)
class ContrastCheck:
    """Does the model solve the task? Per-pair values and their means.

    Attributes:
        task: the task name.
        clean_metrics, corrupted_metrics: :math:`M` of each pair's clean and corrupted prompt.
        accuracies: each pair's accuracy (0/1, or a fraction of positions for ``induction``).
        min_accuracy: the accuracy needed for :attr:`solved`.
        metric: what :math:`M` is, in words.
    """

    task: str
    clean_metrics: tuple[float, ...]
    corrupted_metrics: tuple[float, ...]
    accuracies: tuple[float, ...]
    min_accuracy: float
    metric: str

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def accuracy(self) -> float:
        return sum(self.accuracies) / self.n

    @property
    def gaps(self) -> tuple[float, ...]:
        """Per pair, clean minus corrupted metric."""
        return tuple(c - k for c, k in zip(self.clean_metrics, self.corrupted_metrics))

    @property
    def gap(self) -> float:
        """Mean clean minus corrupted metric."""
        return sum(self.gaps) / self.n

    @property
    def solved(self) -> bool:
        return self.accuracy >= self.min_accuracy and self.gap > 0

    def summary(self) -> str:
        """One line: accuracy, mean metrics and gap, and whether the model solves the task."""
        verdict = "solved" if self.solved else f"NOT SOLVED (needs accuracy >= {self.min_accuracy:.2f} and gap > 0)"
        clean, corrupted = sum(self.clean_metrics) / self.n, sum(self.corrupted_metrics) / self.n
        return (
            f"{self.task}: accuracy {self.accuracy:.2f} over {self.n} pairs, {self.metric} clean {clean:+.3f}, "
            f"corrupted {corrupted:+.3f}, gap {self.gap:+.3f}: {verdict}"
        )


def single_token(tokenizer, word: str) -> int | None:
    """The id of ``" " + word`` when the tokenizer makes it one token, else None."""
    ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) == 1 else None


class ContrastTask:
    """Base class of the contrast tasks (module docstring); subclasses register by ``name``."""

    name: ClassVar[str]
    family: ClassVar[TaskFamily] = "contrast"
    kind: ClassVar[str] = "contrast"
    metric: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_task(cls)

    def __init__(self, **options: Any) -> None:
        for key in options:
            if key not in self.defaults:
                raise unknown_name_error(f"option for task {self.name!r}:", key, self.defaults)
        self.options = {**self.defaults, **options}
        self._validate()

    def _validate(self) -> None:
        """Check ``self.options`` (raise :class:`InvalidInputError`)."""

    def describe(self) -> dict[str, Any]:
        """The task's name, metric and options (recorded with results)."""
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        return {"task": self.name, "family": self.family, "metric": self.metric, **options}

    # ---- pairs --------------------------------------------------------------------------------
    def pairs(self, model, n: int, seed: int = 0) -> list[ContrastPair]:
        """``n`` pairs for ``model``'s tokenizer; pair ``i`` depends only on ``(seed, i)``.

        Raises:
            InvalidInputError: ``n < 1``, or the tokenizer cannot express the task (too few
                single-token names, digits that are not single tokens ...), named.
        """
        n = as_index(n, "n (the number of pairs)", minimum=1)
        self._prepare(model)
        out = []
        for i in range(n):
            rng = random.Random(f"{self.name}/{seed}/{i}")
            for _ in range(MAX_DRAWS):
                pair = self._draw(model, rng, f"{self.name}-{seed}-{i}", i)
                if pair is not None:
                    out.append(pair)
                    break
            else:
                raise InvalidInputError(
                    f"Task {self.name!r}: no draw of pair {i} gave clean and corrupted prompts of equal token "
                    f"length in {MAX_DRAWS} tries for this tokenizer."
                )
        return out

    def _prepare(self, model) -> None:
        """Read what the draws need from the model's tokenizer (single-token names ...)."""

    def _draw(self, model, rng: random.Random, pair_id: str, index: int) -> ContrastPair | None:
        """Pair ``index``, or None when this draw's prompts differ in length (the next draw is tried)."""
        raise NotImplementedError

    def _text_pair(
        self, model, pair_id: str, clean: str, corrupted: str, targets: Sequence[Target], fields: dict[str, Any]
    ) -> ContrastPair | None:
        """Encode two texts (the model's plain prompt encoding); steps at the last position."""
        clean_ids, corrupted_ids = encode_prompt(model, clean), encode_prompt(model, corrupted)
        if clean_ids.shape != corrupted_ids.shape:
            return None
        steps = tuple(Step(clean_ids.shape[0] - 1, t) for t in targets)
        return ContrastPair(pair_id, clean_ids, corrupted_ids, steps, clean, corrupted, fields)

    # ---- does the model solve it? -------------------------------------------------------------
    @torch.no_grad()
    def check(self, model, pairs: Sequence[ContrastPair], *, min_accuracy: float = MIN_ACCURACY) -> ContrastCheck:
        """Run the clean and corrupted prompts: per-pair metrics and accuracy (one forward per pair)."""
        if not pairs:
            raise InvalidInputError("check needs at least one pair.")
        clean, corrupted, accuracy = [], [], []
        for pair in pairs:
            logits = model(as_batch(model, torch.stack([pair.clean, pair.corrupted])))
            at = logits[:, pair.positions].float()  # [2, step, vocab]
            values = stacked_values([s.target for s in pair.steps], at).mean(dim=-1)
            clean.append(float(values[0]))
            corrupted.append(float(values[1]))
            accuracy.append(self._accuracy(pair, at[0], float(values[0])))
        return ContrastCheck(self.name, tuple(clean), tuple(corrupted), tuple(accuracy), min_accuracy, self.metric)

    def _accuracy(self, pair: ContrastPair, step_logits: torch.Tensor, clean_metric: float) -> float:
        """A pair's accuracy from its clean logits at the step positions (default: metric > 0)."""
        return float(clean_metric > 0)


# ---- IOI ---------------------------------------------------------------------------------------------
IOI_TEMPLATES: tuple[str, ...] = (
    "Then, {N1} and {N2} went to the {PLACE}. {S} gave a {OBJECT} to",
    "Then, {N1} and {N2} had a lot of fun at the {PLACE}. {S} gave a {OBJECT} to",
    "Then, {N1} and {N2} were working at the {PLACE}. {S} decided to give a {OBJECT} to",
    "Then, {N1} and {N2} were thinking about going to the {PLACE}. {S} wanted to give a {OBJECT} to",
    "Then, {N1} and {N2} had a long argument, and afterwards {S} said to",
    "After {N1} and {N2} went to the {PLACE}, {S} gave a {OBJECT} to",
    "When {N1} and {N2} got a {OBJECT} at the {PLACE}, {S} decided to give it to",
    "When {N1} and {N2} got a {OBJECT} at the {PLACE}, {S} decided to give the {OBJECT} to",
    "While {N1} and {N2} were working at the {PLACE}, {S} gave a {OBJECT} to",
    "While {N1} and {N2} were commuting to the {PLACE}, {S} gave a {OBJECT} to",
    "After the lunch, {N1} and {N2} went to the {PLACE}. {S} gave a {OBJECT} to",
    "Afterwards, {N1} and {N2} went to the {PLACE}. {S} gave a {OBJECT} to",
    "Then, {N1} and {N2} had a long argument. Afterwards {S} said to",
    "The {PLACE} {N1} and {N2} went to had a {OBJECT}. {S} gave it to",
    "Friends {N1} and {N2} found a {OBJECT} at the {PLACE}. {S} gave it to",
)
"""Wang et al. (2022)'s IOI templates with the name slots ``{N1} {N2} ... {S}``."""
IOI_NAMES: tuple[str, ...] = (
    "Aaron", "Adam", "Alan", "Alex", "Alice", "Amy", "Anderson", "Andre", "Andrew", "Andy", "Anna", "Anthony",
    "Arthur", "Austin", "Blake", "Brandon", "Brian", "Carter", "Charles", "Charlie", "Christian", "Christopher",
    "Clark", "Cole", "Collins", "Connor", "Crystal", "Daniel", "David", "Dean", "Edward", "Elizabeth", "Emily",
    "Eric", "Eva", "Ford", "Frank", "George", "Georgia", "Graham", "Grant", "Henry", "Ian", "Jack", "Jacob", "Jake",
    "James", "Jamie", "Jane", "Jason", "Jay", "Jennifer", "Jeremy", "Jessica", "John", "Jonathan", "Jordan",
    "Joseph", "Joshua", "Justin", "Kate", "Kelly", "Kevin", "Kyle", "Laura", "Leon", "Lewis", "Lisa", "Louis",
    "Luke", "Madison", "Marco", "Marcus", "Maria", "Mark", "Martin", "Mary", "Matthew", "Max", "Michael",
    "Michelle", "Morgan", "Patrick", "Paul", "Peter", "Rachel", "Richard", "Robert", "Roman", "Rose", "Ruby",
    "Russell", "Ryan", "Sarah", "Scott", "Sean", "Simon", "Stephen", "Steven", "Sullivan", "Taylor", "Thomas",
    "Tyler", "Victoria", "Warren", "William"
)  # fmt: skip
IOI_PLACES: tuple[str, ...] = ("store", "garden", "restaurant", "school", "hospital", "office", "house", "station")
IOI_OBJECTS: tuple[str, ...] = ("ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack")
IOI_ORDERS: tuple[str, ...] = ("ABBA", "BABA")


class IOI(ContrastTask):
    """Indirect-object identification, ABBA and BABA (module docstring)."""

    name = "ioi"
    metric = "logit(IO) - logit(S)"
    defaults: ClassVar[dict[str, Any]] = {
        "orders": IOI_ORDERS,
        "templates": IOI_TEMPLATES,
        "names": IOI_NAMES,
        "places": IOI_PLACES,
        "objects": IOI_OBJECTS,
    }

    def _validate(self) -> None:
        bad = [o for o in self.options["orders"] if o not in IOI_ORDERS]
        if bad or not self.options["orders"]:
            raise InvalidInputError(f"IOI orders must be some of {', '.join(IOI_ORDERS)}, got {bad or 'none'}.")
        for t in self.options["templates"]:
            if not all(f"{{{slot}}}" in t for slot in ("N1", "N2", "S")):
                raise InvalidInputError(f"IOI template {t!r} needs the name slots {{N1}}, {{N2}} and {{S}}.")
        for key in ("templates", "places", "objects"):
            if not self.options[key]:
                raise InvalidInputError(f"IOI needs at least one entry in {key}.")

    def _prepare(self, model) -> None:
        self._names = {}
        for name in dict.fromkeys(self.options["names"]):
            token = single_token(model.tokenizer, name)
            if token is not None and token not in self._names.values():
                self._names[name] = token
        if len(self._names) < 5:
            raise InvalidInputError(
                f"IOI needs at least 5 names that are single tokens for this tokenizer (two for the clean prompt, "
                f"three others for the corrupted one); {len(self._names)} of the {len(self.options['names'])} are."
            )

    def _draw(self, model, rng: random.Random, pair_id: str, index: int) -> ContrastPair | None:
        order = self.options["orders"][index % len(self.options["orders"])]
        t = rng.randrange(len(self.options["templates"]))
        io, s, a, b, c = rng.sample(sorted(self._names), 5)
        slots = {"PLACE": rng.choice(self.options["places"]), "OBJECT": rng.choice(self.options["objects"])}
        n1, n2 = (io, s) if order == "ABBA" else (s, io)
        template = self.options["templates"][t]
        clean = template.format(N1=n1, N2=n2, S=s, **slots)
        corrupted = template.format(N1=a, N2=b, S=c, **slots)
        target = Target(self._names[io], self._names[s])
        fields = {"order": order, "template": t, "io": io, "s": s, "corrupted_names": f"{a},{b},{c}", **slots}
        return self._text_pair(model, pair_id, clean, corrupted, [target], fields)


# ---- factual recall ----------------------------------------------------------------------------------
CAPITALS: tuple[tuple[str, str], ...] = (
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("China", "Beijing"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Greece", "Athens"), ("Canada", "Ottawa"),
    ("Australia", "Canberra"), ("Portugal", "Lisbon"), ("Poland", "Warsaw"), ("Sweden", "Stockholm"),
    ("Norway", "Oslo"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Austria", "Vienna"),
    ("Hungary", "Budapest"), ("Ireland", "Dublin"), ("Turkey", "Ankara"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
    ("Thailand", "Bangkok"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Cuba", "Havana"), ("Belgium", "Brussels"),
    ("Switzerland", "Bern"), ("Ukraine", "Kyiv"), ("Vietnam", "Hanoi"), ("Indonesia", "Jakarta"),
    ("Philippines", "Manila"), ("Chile", "Santiago"), ("Colombia", "Bogota"), ("Nigeria", "Abuja"),
    ("Morocco", "Rabat"), ("Syria", "Damascus"), ("Lebanon", "Beirut"), ("Afghanistan", "Kabul"),
    ("Pakistan", "Islamabad"), ("England", "London"), ("Scotland", "Edinburgh"), ("Israel", "Jerusalem"),
    ("Venezuela", "Caracas"), ("Romania", "Bucharest"), ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"),
)  # fmt: skip
"""(country, capital) pairs; the answer is the capital's first token (with a leading space)."""
FACT_TEMPLATES: tuple[str, ...] = (
    "The capital of {country} is",
    "The capital city of {country} is",
    "The government of {country} sits in the city of",
    "Q: What is the capital of {country}?\nA:",
    "{country}'s capital city is",
)


class FactualRecall(ContrastTask):
    """Country -> capital with a corrupted country of the same token length (module docstring)."""

    name = "factual_recall"
    metric = "logit(capital) - logit(other capital)"
    defaults: ClassVar[dict[str, Any]] = {"facts": CAPITALS, "templates": FACT_TEMPLATES}

    def _validate(self) -> None:
        if len(self.options["facts"]) < 2 or not all(len(f) == 2 for f in self.options["facts"]):
            raise InvalidInputError("factual_recall needs at least two (country, capital) facts.")
        if not self.options["templates"] or not all("{country}" in t for t in self.options["templates"]):
            raise InvalidInputError("factual_recall templates must each contain {country}.")

    def _prepare(self, model) -> None:
        first = lambda word: model.tokenizer(" " + word, add_special_tokens=False)["input_ids"][0]
        self._answers = {country: first(capital) for country, capital in self.options["facts"]}

    def _draw(self, model, rng: random.Random, pair_id: str, index: int) -> ContrastPair | None:
        t = rng.randrange(len(self.options["templates"]))
        template = self.options["templates"][t]
        country, capital = rng.choice(self.options["facts"])
        clean = template.format(country=country)
        n_clean = encode_prompt(model, clean).shape[0]
        others = [f for f in self.options["facts"] if self._answers[f[0]] != self._answers[country]]
        rng.shuffle(others)
        for other, other_capital in others:
            corrupted = template.format(country=other)
            if encode_prompt(model, corrupted).shape[0] == n_clean:
                target = Target(self._answers[country], self._answers[other])
                fields = {"template": t, "country": country, "capital": capital, "corrupted_country": other,
                          "corrupted_capital": other_capital}  # fmt: skip
                return self._text_pair(model, pair_id, clean, corrupted, [target], fields)
        return None


# ---- induction ---------------------------------------------------------------------------------------
WORD = re.compile(r" ?[A-Za-z]{3,}")


class Induction(ContrastTask):
    """Repeated random tokens: the second half is predictable by induction (module docstring)."""

    name = "induction"
    metric = "mean log-prob of the repeated tokens"
    defaults: ClassVar[dict[str, Any]] = {"length": 10, "objective": "log_prob"}

    def _validate(self) -> None:
        as_index(self.options["length"], "induction length", minimum=3)
        check_objective(self.options["objective"])
        self.metric = f"mean {self.options['objective']} of the repeated tokens"

    def _prepare(self, model) -> None:
        """The pool: word tokens (3+ letters) that a leading space and the word re-encode to exactly."""
        tokenizer, d_vocab = model.tokenizer, int(model.cfg.d_vocab)
        special = set(tokenizer.all_special_ids)
        pool = {}
        for i in range(min(len(tokenizer), d_vocab)):
            text = tokenizer.decode([i])
            if i in special or not WORD.fullmatch(text):
                continue
            word = text.strip()
            if word not in pool and single_token(tokenizer, word) == i:
                pool[word] = i
        if len(pool) < 4 * self.options["length"]:
            raise InvalidInputError(
                f"induction needs at least {4 * self.options['length']} word tokens in the vocabulary; found {len(pool)}."
            )
        self._pool = dict(sorted(pool.items()))

    def _draw(self, model, rng: random.Random, pair_id: str, index: int) -> ContrastPair | None:
        n = self.options["length"]
        words = rng.sample(list(self._pool), 2 * n)
        first, other = words[:n], words[n:]
        clean = "".join(" " + w for w in first + first)
        corrupted = "".join(" " + w for w in first + other)
        clean_ids, corrupted_ids = encode_prompt(model, clean), encode_prompt(model, corrupted)
        expected = [self._pool[w] for w in first + first], [self._pool[w] for w in first + other]
        if (
            clean_ids.shape != corrupted_ids.shape
            or (clean_ids[-2 * n :].tolist(), corrupted_ids[-2 * n :].tolist()) != expected
        ):
            return None  # a word merged with its neighbour: not the intended tokens
        start = clean_ids.shape[0] - n  # first position of the repeat
        objective = self.options["objective"]
        steps = tuple(Step(p, Target(int(clean_ids[p + 1]), objective=objective)) for p in range(start, start + n - 1))
        return ContrastPair(pair_id, clean_ids, corrupted_ids, steps, clean, corrupted, {"words": " ".join(first)})

    def _accuracy(self, pair: ContrastPair, step_logits: torch.Tensor, clean_metric: float) -> float:
        top = step_logits.argmax(dim=-1).tolist()
        return sum(t == s.target.token_id for t, s in zip(top, pair.steps)) / len(pair.steps)


# ---- greater-than ------------------------------------------------------------------------------------
GT_NOUNS: tuple[str, ...] = (
    "war", "expedition", "project", "drought", "reign", "dynasty", "occupation", "pilgrimage", "siege", "voyage",
    "famine", "campaign", "revolt", "journey", "alliance", "festival", "construction", "crisis",
)  # fmt: skip
GT_TEMPLATE = "The {noun} lasted from the year {century}{tens}{ones} to the year {century}"


class GreaterThan(ContrastTask):
    """Greater-than on years, graded tens-digit answer (module docstring)."""

    name = "greater_than"
    metric = "mean_d logit(a+d) - logit(a-d)"
    defaults: ClassVar[dict[str, Any]] = {"nouns": GT_NOUNS, "centuries": tuple(range(11, 18))}

    def _validate(self) -> None:
        if not self.options["nouns"] or not self.options["centuries"]:
            raise InvalidInputError("greater_than needs at least one noun and one century.")
        if not all(10 <= int(c) <= 99 for c in self.options["centuries"]):
            raise InvalidInputError("greater_than centuries are two-digit numbers (e.g. 17 for the 1700s).")

    def _prepare(self, model) -> None:
        tokenizer = model.tokenizer
        digits = [tokenizer(str(d), add_special_tokens=False)["input_ids"] for d in range(10)]
        year = [tokenizer.decode([i]) for i in tokenizer(" 1732", add_special_tokens=False)["input_ids"]]
        if any(len(ids) != 1 for ids in digits) or year[-2:] != ["3", "2"]:
            raise InvalidInputError(
                f"greater_than needs a tokenizer that writes numbers digit by digit; this one splits ' 1732' "
                f"into {year}."
            )
        self._digits = [ids[0] for ids in digits]

    def _draw(self, model, rng: random.Random, pair_id: str, index: int) -> ContrastPair | None:
        noun, century = rng.choice(self.options["nouns"]), rng.choice(self.options["centuries"])
        tens, ones = rng.randint(2, 7), rng.randint(0, 9)
        clean = GT_TEMPLATE.format(noun=noun, century=century, tens=tens, ones=ones)
        corrupted = GT_TEMPLATE.format(noun=noun, century=century, tens=0, ones=ones)
        if encode_prompt(model, clean + str(tens))[-1] != self._digits[tens]:
            return None  # the digits in context are not the standalone digit tokens
        targets = [Target(self._digits[tens + d], self._digits[tens - d]) for d in range(1, min(tens, 9 - tens) + 1)]
        fields = {"noun": noun, "start_year": f"{century}{tens}{ones}", "tens": tens}
        return self._text_pair(model, pair_id, clean, corrupted, targets, fields)


__all__ = [
    "CAPITALS",
    "IOI",
    "IOI_NAMES",
    "IOI_TEMPLATES",
    "MIN_ACCURACY",
    "ContrastCheck",
    "ContrastPair",
    "ContrastTask",
    "FactualRecall",
    "GreaterThan",
    "Induction",
    "single_token",
]
