"""Loading a BART(-like) seq2seq model and its tokenizer: local directories or hub names, safetensors only,
no remote code; the keyphrase separator token is added (and the embeddings resized) when missing."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ... import progress
from ...errors import ConfigError, InputError
from .data import KEYPHRASE_SEP

META_FILE = "esrank_bart.json"
"""Written next to a fine-tuned model: the separator token and the lengths it was trained with."""


@dataclass(frozen=True)
class BartMeta:
    """What predict needs to know about a fine-tuned model."""

    keyphrase_sep: str = KEYPHRASE_SEP
    max_source_length: int = 512
    max_target_length: int = 128
    base_model: str = ""
    source_sep: str | None = None  # between title and text; None: a model trained before it was recorded

    def save(self, directory: str | Path) -> Path:
        """Write the metadata file into a model directory."""
        path = Path(directory) / META_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "BartMeta | None":
        """The metadata of a model directory, or None when it has none (e.g. a hub model)."""
        path = Path(directory) / META_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InputError(f"malformed JSON: {e.msg}", source=str(path), line=e.lineno) from None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def quiet_transformers() -> None:
    """Hide transformers' own progress bars (weight loading, shard writing) unless esrank draws bars."""
    from transformers.utils import logging as hf_logging

    if progress.enabled():
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _looks_like_path(name: str) -> bool:
    """A hub name is ``name`` or ``org/name``; anything else (or an existing parent directory) is a path."""
    if name.startswith((".", "/", "~")) or "\\" in name or name.endswith("/") or name.count("/") > 1:
        return True
    return "/" in name and Path(name).parent.is_dir()


def resolve_model(name_or_path: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether it is a local directory); a missing local path is an error."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        return str(p), True
    if p.exists():
        raise InputError("is a file; expected a model directory or a hub model name", source=name_or_path)
    if _looks_like_path(name_or_path):
        raise InputError("no such model directory", source=name_or_path)
    return name_or_path, False


def _load_error(name: str, local: bool, err: Exception) -> ConfigError:
    if local:
        return ConfigError(f"cannot load a seq2seq model from this directory: {str(err).splitlines()[0]}",
                           source=name)
    how = "the hub is offline (HF_HUB_OFFLINE=1)" if _offline() else "it could not be downloaded"
    return ConfigError(f"cannot load model '{name}': not a local directory, not in the Hugging Face cache, and "
                       f"{how}; pass a local model directory with --model", source=None)


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of a model directory or hub name (fast tokenizer, no remote code)."""
    from transformers import AutoTokenizer

    target, local = resolve_model(name_or_path)
    try:
        return AutoTokenizer.from_pretrained(target, trust_remote_code=False, local_files_only=local or _offline())
    except (OSError, ValueError, KeyError) as e:
        raise _load_error(name_or_path, local, e) from None


def load_model(name_or_path: str) -> Any:
    """A seq2seq model (safetensors weights only, no remote code) from a directory or hub name."""
    from transformers import AutoModelForSeq2SeqLM

    target, local = resolve_model(name_or_path)
    try:
        return AutoModelForSeq2SeqLM.from_pretrained(target, trust_remote_code=False, use_safetensors=True,
                                                     local_files_only=local or _offline())
    except (OSError, ValueError, KeyError) as e:
        raise _load_error(name_or_path, local, e) from None


def add_keyphrase_sep(tokenizer: Any, model: Any, sep: str = KEYPHRASE_SEP) -> int:
    """Make ``sep`` a special token of the tokenizer and resize the model's embeddings; returns its id."""
    from tokenizers import AddedToken

    if sep not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(sep, special=True, normalized=False)], special_tokens=True)
    if model is not None and model.get_input_embeddings().num_embeddings < len(tokenizer):
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # new rows drawn around the mean embedding: expected, not news
        try:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        finally:
            hf_logging.set_verbosity(level)
    return int(tokenizer.convert_tokens_to_ids(sep))


def keyphrase_sep_id(tokenizer: Any, sep: str) -> int:
    """The id of the separator token; an error when the tokenizer does not know it (not a fine-tuned model)."""
    if sep not in tokenizer.get_vocab():
        raise ConfigError(f"the tokenizer has no keyphrase separator token {sep!r}: is this a model trained "
                          "with 'esrank bart train'?")
    return int(tokenizer.convert_tokens_to_ids(sep))


def source_separator(tokenizer: Any) -> str:
    """The separator put between title and text: the tokenizer's bos token (``<s>`` for BART, as in the paper)."""
    return str(tokenizer.bos_token or tokenizer.cls_token or tokenizer.sep_token or " ")


def legacy_source_separator(tokenizer: Any) -> str:
    """The separator of models trained before ``source_sep`` was recorded: the sep token (``</s>`` for BART)."""
    return str(tokenizer.sep_token or tokenizer.eos_token or " ")


def max_source_tokens(model: Any, requested: int) -> int:
    """The source length to truncate to: the requested one, at most the model's position limit."""
    limit = getattr(model.config, "max_position_embeddings", None)
    return min(requested, int(limit)) if limit else requested
