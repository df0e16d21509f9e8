"""Chat formats: the exact token layout of spec §1.6, built from special-token ids.

Why role markers are assembled from ids instead of tokenizing a template string: the tokenizer
would also turn ``<|eot_id|>``, ``<|im_start|>`` or ``<image>`` *inside user text* into control
tokens (injection pitfall). Every piece of user- or model-provided text therefore goes through
``encode_text`` with ``split_special_tokens=True``; only this module emits special ids.

A message is ``header_ids(role) + encode_text(content.strip()) + [silence_id]``. The header and the
content are encoded separately; with Llama-3's tokenizer this is identical to encoding the whole
string (its pre-tokenizer isolates ``\\n\\n``), and it makes ``assistant_header_ids()`` an exact
prefix of every assistant message, i.e. exactly what the model learns to generate after speaking.

ChatML messages end at ``<|im_end|>`` without the usual trailing newline, so that — as in the
Llama-3 layout — the token after a frame is either the end-of-turn token (silence) or the first
header token (speak). This is a deliberate deviation from stock ChatML (docs/model.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from proassist_ros.model.tokenizer import IMG_TOKEN


class ChatFormat(ABC):
    """Token layout of one chat family; ``tokens_per_frame`` is the paper's I."""

    name: str = ""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, tokens_per_frame: int) -> None:
        self.tokenizer = tokenizer
        self.tokens_per_frame = int(tokens_per_frame)
        self.img_token_id: int = self._special_id(IMG_TOKEN)

    def _special_id(self, token: str) -> int:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == self.tokenizer.unk_token_id or token not in self.tokenizer.get_vocab():
            raise KeyError(f"tokenizer has no special token {token!r}")
        return int(tid)

    # ---- text -------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        """Plain text → ids; special-token strings in ``text`` stay plain text."""
        if not text:
            return []
        return list(self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))

    # ---- layout -----------------------------------------------------------------------------
    @abstractmethod
    def bos_ids(self) -> list[int]:
        """Ids that start a whole sequence (and each IPS re-seed)."""

    @abstractmethod
    def header_ids(self, role: str) -> list[int]:
        """Ids that open a message of ``role`` (up to the first content token)."""

    @property
    @abstractmethod
    def silence_id(self) -> int:
        """End-of-turn token: the training target of a silent frame and the reply stop token."""

    @property
    def speak_id(self) -> int:
        """First token of an assistant header: the training target of a speaking frame."""
        return self.assistant_header_ids()[0]

    def message_ids(self, role: str, content: str) -> list[int]:
        """One complete role message; ``content`` is stripped and encoded as plain text."""
        return self.header_ids(role) + self.encode_text(content.strip()) + [self.silence_id]

    def assistant_header_ids(self) -> list[int]:
        return self.header_ids("assistant")

    def image_ids(self, n_frames: int) -> list[int]:
        """``<image>`` × I × n_frames (no separator between frames; released models are NOSEP)."""
        return [self.img_token_id] * (self.tokens_per_frame * int(n_frames))

    # ---- output -----------------------------------------------------------------------------
    def clean_reply(self, ids: Sequence[int]) -> str:
        """Decoded, cleaned reply text (spec §2.2 step 5); "" means silence."""
        text = self.tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        text = text.split(self.tokenizer.convert_ids_to_tokens(self.silence_id), 1)[0]
        for junk in (IMG_TOKEN, *self._bos_strings()):
            text = text.replace(junk, "")
        # Parity with the original's cleanup_text: the lone "." test runs on the text BEFORE the
        # assistant header is split off, so "." alone is silence but a header followed by "." is
        # speech (text "."). docs/model.md, "Reply cleanup".
        if text.strip() == ".":
            return ""
        return self._strip_header(text).strip()

    def _bos_strings(self) -> list[str]:
        return [self.tokenizer.convert_ids_to_tokens(i) for i in self.bos_ids()]

    @abstractmethod
    def _strip_header(self, text: str) -> str:
        """Drop an assistant header (and the role name in it) if the reply carries one."""


class Llama3Chat(ChatFormat):
    """``<|start_header_id|>{role}<|end_header_id|>\\n\\n{content}<|eot_id|>`` (LLaMA3MultimodalChat)."""

    name = "llama3"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, tokens_per_frame: int) -> None:
        super().__init__(tokenizer, tokens_per_frame)
        self.bos_id = self._special_id("<|begin_of_text|>")
        self.start_header_id = self._special_id("<|start_header_id|>")
        self.end_header_id = self._special_id("<|end_header_id|>")
        self.eot_id = self._special_id("<|eot_id|>")

    def bos_ids(self) -> list[int]:
        return [self.bos_id]

    def header_ids(self, role: str) -> list[int]:
        return (
            [self.start_header_id] + self.encode_text(role) + [self.end_header_id]
            + self.encode_text("\n\n")
        )

    @property
    def silence_id(self) -> int:
        return self.eot_id

    def _strip_header(self, text: str) -> str:
        marker = "<|end_header_id|>\n\n"
        return text.split(marker, 1)[1] if marker in text else text


class ChatMLChat(ChatFormat):
    """``<|im_start|>{role}\\n{content}<|im_end|>`` (SmolLM2 and other ChatML models); no BOS."""

    name = "chatml"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, tokens_per_frame: int) -> None:
        super().__init__(tokenizer, tokens_per_frame)
        self.im_start_id = self._special_id("<|im_start|>")
        self.im_end_id = self._special_id("<|im_end|>")

    def bos_ids(self) -> list[int]:
        return []

    def header_ids(self, role: str) -> list[int]:
        return [self.im_start_id] + self.encode_text(f"{role}\n")

    @property
    def silence_id(self) -> int:
        return self.im_end_id

    def _strip_header(self, text: str) -> str:
        marker = "<|im_start|>"
        if marker in text:
            rest = text.split(marker, 1)[1]
            return rest.split("\n", 1)[1] if "\n" in rest else ""
        # Stock ChatML models sometimes skip <|im_start|> and go straight to the role line.
        role_line = "assistant\n"
        stripped = text.lstrip()
        return stripped[len(role_line) :] if stripped.startswith(role_line) else text


CHAT_FORMATS: dict[str, type[ChatFormat]] = {"llama3": Llama3Chat, "chatml": ChatMLChat}


def make_chat(chat_format: str, tokenizer: PreTrainedTokenizerBase, tokens_per_frame: int) -> ChatFormat:
    try:
        cls = CHAT_FORMATS[chat_format]
    except KeyError:
        raise ValueError(f"unknown chat_format {chat_format!r} (one of {sorted(CHAT_FORMATS)})") from None
    return cls(tokenizer, tokens_per_frame)
