"""Named jaxtyping aliases for the tensors of the public API.

Dimension names: ``pos`` is a token position of the attributed sequence (prompt plus generated
tokens), ``step`` a generation step (one explained target token), ``layer`` one of the *selected*
layers of a decomposition, ``head`` a query head, ``vocab`` the vocabulary.
"""

from __future__ import annotations

from jaxtyping import Bool, Float, Int
from torch import Tensor

TokenIds = Int[Tensor, "pos"]
BatchTokenIds = Int[Tensor, "batch pos"]
TokenScores = Float[Tensor, "pos"]
StepScores = Float[Tensor, "step pos"]
LayerHeadScores = Float[Tensor, "layer head pos"]
StepLayerHeadScores = Float[Tensor, "step layer head pos"]
HeadScores = Float[Tensor, "layer head"]
Logits = Float[Tensor, "*batch vocab"]
Embeddings = Float[Tensor, "*batch pos d_model"]
AttentionPatterns = Float[Tensor, "layer head query key"]
StepEmbeddingGrads = Float[Tensor, "step pos d_model"]
PositionMask = Bool[Tensor, "pos"]

__all__ = [
    "AttentionPatterns",
    "BatchTokenIds",
    "Embeddings",
    "HeadScores",
    "LayerHeadScores",
    "Logits",
    "PositionMask",
    "StepEmbeddingGrads",
    "StepLayerHeadScores",
    "StepScores",
    "TokenIds",
    "TokenScores",
]
