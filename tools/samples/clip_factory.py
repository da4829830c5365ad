"""Build random CLIP models on disk with ``save_pretrained``.

Tests and benchmarks load them through the same loader a user's backbone goes through, since the
real ViT-L/14 cannot be downloaded on these machines. The tokenizer is a tiny BPE trained here, so
``CLIPTokenizerFast`` / ``AutoProcessor`` load offline exactly as they would for a real checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

SIZES = {
    # A few small layers; projection 768 as GeoCLIP's MLP requires.
    "tiny": dict(vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, patch_size=32),
                 text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2)),
    # Shape of openai/clip-vit-large-patch14 (random weights): for benchmarks.
    "vit-l-14": dict(vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                 num_attention_heads=16, patch_size=14),
                     text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                               num_attention_heads=12)),
}

_CORPUS = [
    "a photo of the pyramids of giza in the desert",
    "a beach on kauai in hawaii with palm trees",
    "the burj khalifa tower in dubai at night",
    "the great wall of china on a mountain ridge",
    "snow covered mountains in the alps of switzerland",
    "a busy street in tokyo with neon signs",
] * 4


def _train_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    trainer = trainers.BpeTrainer(vocab_size=300, end_of_word_suffix="</w>",
                                  special_tokens=["<|startoftext|>", "<|endoftext|>"])
    tok.train_from_iterator(_CORPUS, trainer)
    state = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    fast = CLIPTokenizerFast(vocab=state["vocab"], merges=merges,
                             unk_token="<|endoftext|>", bos_token="<|startoftext|>",
                             eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(folder)


def build_clip(folder: str | Path, size: str = "tiny", seed: int = 0, tokenizer: bool = True) -> Path:
    """Write a random CLIPModel (+ image processor, + tokenizer) to ``folder`` and return it."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = SIZES[size]
    config = CLIPConfig(
        projection_dim=768,
        vision_config=dict(image_size=224, projection_dim=768, **spec["vision"]),
        text_config=dict(vocab_size=320, max_position_embeddings=77, projection_dim=768,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1, **spec["text"]),
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    model.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)  # CLIP's defaults: 224 crop, CLIP mean/std
    if tokenizer:
        _train_tokenizer(folder)
    return folder
