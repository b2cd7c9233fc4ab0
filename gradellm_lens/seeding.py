"""Stable seeds from content: one hash for every seeded draw that must depend on *what* is drawn for.

:func:`stable_seed` hashes (BLAKE2b, 8 bytes) a sequence of integers, token-id tensors and short
domain tags into a 63-bit seed for a ``torch.Generator``. The result depends only on those values
(not on the process, the device or Python's per-process ``hash`` salt), so a draw is reproducible
from the configured seed and the example it belongs to, and two different prefixes or targets get
independent draws. Distinct tags (``"random"``, ``"shuffle"``) keep streams that share the other
parts independent of each other and of the Bernoulli masks of the faithfulness metrics.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor


def stable_seed(*parts: int | str | Tensor) -> int:
    """A 63-bit seed that is a stable hash of ``parts`` (integers, strings, integer tensors).

    Integers are hashed as 8 little-endian signed bytes and tensors as their int64 bytes (so
    ``stable_seed(seed, tokens, token_id)`` is the seed of the metrics' mask draws); a string is
    hashed with its length, so ``("ab", "c")`` and ``("a", "bc")`` differ.
    """
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        if isinstance(part, Tensor):
            digest.update(part.detach().cpu().to(torch.int64).numpy().tobytes())
        elif isinstance(part, str):
            raw = part.encode("utf-8")
            digest.update(b"\xff" + len(raw).to_bytes(8, "little") + raw)
        else:
            digest.update(int(part).to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") & (2**63 - 1)
