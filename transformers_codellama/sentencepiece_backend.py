"""SentencePiece to `tokenizers`: a backend that encodes and decodes exactly as Code Llama's SentencePiece model.

Used by `CodeLlamaTokenizerFast` as its backend, and by `CodeLlamaTokenizer` to write `tokenizer.json` beside
`tokenizer.model` when saving.
"""

from __future__ import annotations

from typing import Any

from sentencepiece import sentencepiece_model_pb2 as model_pb2
from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
from tokenizers.models import BPE

# SentencePiece's model format (a generated protobuf module, which the type checker cannot see into).
ModelProto = model_pb2.ModelProto  # type: ignore[attr-defined]
_PIECE = ModelProto.SentencePiece  # piece types: NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE


def backend_from_sentencepiece(model: bytes, *, source: str = "tokenizer.model") -> Tokenizer:
    """Build a `tokenizers.Tokenizer` that encodes and decodes exactly as SentencePiece does with `model`.

    SentencePiece BPE merges the adjacent pair whose union is the best-scored piece; a `tokenizers` BPE whose
    merge ranks follow the pieces' scores makes the same choices. The dummy prefix and the space escaping become
    normalizers (not a pre-tokenizer: SentencePiece does not split on whitespace). User-defined pieces become added
    tokens under their own text (`normalized=False`: a normalized one would be stored, and decoded, with the dummy
    prefix's `▁` in front). The tokenizer classes match them in text as SentencePiece does (`whole_pieces`);
    `tokenizers` alone gets the spans around them wrong by a `▁`, whichever way they are added.
    """
    proto = ModelProto()
    try:
        proto.ParseFromString(model)
    except Exception:  # protobuf raises its own DecodeError type
        raise ValueError(f"{source} is not a SentencePiece model") from None
    spec, normalizer = proto.trainer_spec, proto.normalizer_spec
    found = (spec.model_type, spec.byte_fallback, normalizer.add_dummy_prefix, normalizer.remove_extra_whitespaces)
    if found != (spec.BPE, True, True, False) or normalizer.precompiled_charsmap:
        raise ValueError(
            f"{source}: expected Code Llama's kind of SentencePiece model (BPE, byte fallback, dummy prefix, identity "
            f"normalization); got model_type={spec.model_type}, byte_fallback={spec.byte_fallback}, "
            f"add_dummy_prefix={normalizer.add_dummy_prefix}, remove_extra_whitespaces={normalizer.remove_extra_whitespaces}"
        )
    vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    ranked = []
    for index, piece in enumerate(proto.pieces):
        if piece.type != _PIECE.NORMAL:
            continue
        text = piece.piece
        for cut in range(1, len(text)):
            left, right = text[:cut], text[cut:]
            if left in vocab and right in vocab:
                ranked.append((-piece.score, index, vocab[left], left, right))
    ranked.sort()
    unk = proto.pieces[spec.unk_id].piece
    backend = Tokenizer(
        BPE(vocab, [(left, right) for *_, left, right in ranked], unk_token=unk, fuse_unk=True, byte_fallback=True)
    )
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    backend.add_special_tokens(
        [
            AddedToken(p.piece, special=True, normalized=False)
            for p in proto.pieces
            if p.type in (_PIECE.UNKNOWN, _PIECE.CONTROL)
        ]
    )
    backend.add_tokens(
        [AddedToken(p.piece, special=False, normalized=False) for p in proto.pieces if p.type == _PIECE.USER_DEFINED]
    )
    return backend


def is_byte_piece(piece: object) -> bool:
    """Whether `piece` is one of SentencePiece's byte-fallback pieces, `<0x00>` to `<0xFF>`."""
    return isinstance(piece, str) and len(piece) == len("<0x00>") and piece.startswith("<0x") and piece.endswith(">")


def is_exact_backend(backend: Tokenizer) -> bool:
    """Whether a loaded tokenizer.json has this package's SentencePiece-equivalent structure."""
    normalizer = backend.normalizer
    return (
        type(backend.model).__name__ == "BPE"
        and bool(getattr(backend.model, "byte_fallback", False))
        and backend.pre_tokenizer is None
        and isinstance(normalizer, normalizers.Sequence)
        and repr(normalizer) == repr(normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]))
    )


def bos_eos_template(
    bos: tuple[str, int], eos: tuple[str, int], *, add_bos: bool, add_eos: bool
) -> processors.TemplateProcessing:
    """The post-processor adding BOS/EOS around each sequence (`<s> $A </s> <s> $B </s>` when both are on)."""
    head = f"{bos[0]}:0 " if add_bos else ""
    tail = f" {eos[0]}:0" if add_eos else ""
    single = f"{head}$A:0{tail}"
    pair = f"{single} {head.replace(':0', ':1')}$B:1{tail.replace(':0', ':1')}"
    used = [token for token, on in ((bos, add_bos), (eos, add_eos)) if on]
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=used)


def template_flags(post_processor: dict[str, Any] | None) -> tuple[bool, bool]:
    """(add_bos_token, add_eos_token) as a saved `tokenizer.json` post-processor has them.

    transformers drops these two flags from `tokenizer_config.json` when a `tokenizer.json` exists, taking the
    post-processor's template as the truth; Code Llama's defaults (BOS, no EOS) apply when there is none.
    """
    post_processor = post_processor or {}
    single = post_processor.get("single") if post_processor.get("type") == "TemplateProcessing" else None
    if not single:
        return True, False
    return "SpecialToken" in single[0], "SpecialToken" in single[-1]


__all__ = [
    "ModelProto",
    "backend_from_sentencepiece",
    "bos_eos_template",
    "is_byte_piece",
    "is_exact_backend",
    "template_flags",
]
