"""Tiny BERT models written by ``transformers`` in the Hugging Face layout (config.json,
model.safetensors, vocab.txt, tokenizer_config.json), for the Hub and pipeline tests.

The vocabulary holds every letter and every '##'-letter, so any ASCII word tokenizes into
pieces (no [UNK]), plus whole words, punctuation and a few CJK characters. Weights are drawn
with a wide initializer so that predictions differ clearly from token to token."""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Dict, Optional

WORDS = ("the a an is was of and to in at on who what where when lives works born city simple "
         "problem question answer paris london new york john smith mary jones google acme "
         "capital france england puppet puppeteer jim henson un ##aff ##able ##ing ##ed ##s "
         "##er ##eer ##ly play read walk talk good bad film movie great dull fine very not").split()
PUNCTUATION = list(".,!?;:'\"()-")
CJK = list("北京大学中国")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def vocab(cased: bool) -> list:
    letters = string.ascii_lowercase + (string.ascii_uppercase if cased else "")
    capitalised = [w.capitalize() for w in WORDS if not w.startswith("#")] if cased else []
    tokens = SPECIALS + PUNCTUATION + list(letters) + [f"##{c}" for c in letters] + WORDS \
        + capitalised + CJK + [f"##{d}" for d in string.digits] + list(string.digits)
    seen, out = set(), []
    for token in tokens:
        if token not in seen:
            seen.add(token)
            out.append(token)
    return out


def write_model(folder: Path, head: str = "BertModel", *, cased: bool = False, labels=None,
                seed: int = 0, max_len: Optional[int] = 128, init: float = 0.3,
                extra_config: Optional[dict] = None):
    """Write a tiny ``head`` (a transformers class name) to ``folder``; return the model."""
    import torch
    import transformers

    words = vocab(cased)
    config = transformers.BertConfig(
        vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=128, initializer_range=init,
        **({"id2label": dict(enumerate(labels)), "label2id": {n: i for i, n in enumerate(labels)}}
           if labels else {}), **(extra_config or {}))
    torch.manual_seed(seed)
    model = getattr(transformers, head)(config).eval()
    with torch.no_grad():
        if head == "BertForMaskedLM":   # a spread output bias: clear top-k orders
            model.cls.predictions.bias.normal_(0, 2.0)
        elif head in ("BertForTokenClassification", "BertForQuestionAnswering"):
            head_layer = model.classifier if head == "BertForTokenClassification" else model.qa_outputs
            head_layer.weight.normal_(0, 1.0)   # labels and spans that vary from token to token
    folder = Path(folder)
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    tok_config = {"do_lower_case": not cased, "tokenizer_class": "BertTokenizer"}
    if max_len is not None:
        tok_config["model_max_length"] = max_len
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config), encoding="utf-8")
    return model


def repo_files(folder: Path) -> Dict[str, bytes]:
    """Every file of a written model, by its path in the repository."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}
