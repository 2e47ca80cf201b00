"""Chat templates: conversations → prompt strings, rendered with jinja2 the way transformers renders them.

The template sees the variables transformers passes (``messages``, ``add_generation_prompt``, ``tools``,
``documents``, the tokenizer's named special tokens such as ``bos_token``, and any extra keyword), in a sandboxed
environment with ``trim_blocks`` / ``lstrip_blocks``, ``raise_exception``, ``strftime_now`` and a ``tojson`` that
does not HTML-escape. Message content may be a string or a list of items: ``{"type": "text", "text": ...}`` and
``{"type": "image", "image" | "url" | "path" | "base64": ...}`` (OpenAI-style ``image_url`` items are accepted too).

The HunyuanOCR template (spec §3) renders ``BOS [system <no_3>] (user content <User> | assistant content
<Assistant>)*`` with each image as ``<no_100><no_102><no_101>``; ``add_generation_prompt`` changes nothing there.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

IMAGE_KEYS = ("image", "url", "path", "base64")


class _GenerationTag(Extension):
    """``{% generation %}...{% endgeneration %}`` (assistant-mask markers) render their body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_passthrough"), [], [], body).set_lineno(lineno)

    @staticmethod
    def _passthrough(caller):
        return caller()


def _raise_exception(message: str):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@functools.lru_cache(maxsize=16)
def compile_template(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTag, "jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=lambda fmt: datetime.now().strftime(fmt))
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"the chat template does not parse: {err} (line {err.lineno})") from None


@functools.lru_cache(maxsize=16)
def template_variables(template: str) -> frozenset[str]:
    env = ImmutableSandboxedEnvironment(extensions=[_GenerationTag, "jinja2.ext.loopcontrols"])
    return frozenset(meta.find_undeclared_variables(env.parse(template)))


def _plain(value: Any) -> Any:
    """What the template may see: JSON-like data only; images, arrays and other objects become a placeholder."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return f"<{type(value).__name__}>"


def normalize_conversations(conversation: Any) -> tuple[list[list[dict]], bool]:
    """(list of conversations, whether a batch was given). Keys whose value is None are dropped and OpenAI
    ``{"type": "image_url", "image_url": {"url": ...}}`` items become ``{"type": "image", "url": ...}``."""
    if not isinstance(conversation, (list, tuple)) or not conversation:
        raise ValueError("a conversation must be a non-empty list of messages (or a list of such lists)")
    batched = isinstance(conversation[0], (list, tuple))
    conversations = list(conversation) if batched else [conversation]
    out = []
    for index, chat in enumerate(conversations):
        messages = []
        for message in chat:
            if not isinstance(message, Mapping) or "role" not in message:
                raise ValueError(f"conversation {index}: every message must be a dict with a 'role', got {message!r}")
            message = {k: v for k, v in message.items() if v is not None}
            if isinstance(message.get("content"), (list, tuple)):
                message["content"] = [_normalize_item(item) for item in message["content"]]
            messages.append(message)
        out.append(messages)
    return out, batched


def _normalize_item(item: Any) -> Any:
    if isinstance(item, Mapping) and item.get("type") == "image_url" and "image_url" in item:
        info = item["image_url"]
        return {"type": "image", "url": info.get("url", "") if isinstance(info, Mapping) else info}
    return item


def images_in(conversation: list[dict]) -> list[Any]:
    """The image sources of one conversation, in order of appearance (one per image item)."""
    images = []
    for message in conversation:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for item in content:
            if isinstance(item, Mapping) and item.get("type") == "image":
                source = next((item[k] for k in IMAGE_KEYS if k in item), None)
                if source is None:
                    raise ValueError(f"an image item needs one of the keys {IMAGE_KEYS}, got {sorted(item)}")
                images.append(source)
    return images


def render(template: str, conversations: list[list[dict]], *, add_generation_prompt: bool = False,
           continue_final_message: bool = False, tools: list | None = None, documents: list | None = None,
           **variables: Any) -> list[str]:
    """Render each conversation; ``continue_final_message`` cuts the prompt right after the last message's text
    so the model continues it."""
    if continue_final_message and add_generation_prompt:
        raise ValueError("continue_final_message and add_generation_prompt cannot both be set")
    compiled = compile_template(template)
    rendered = []
    for chat in conversations:
        chat = _plain(chat)
        try:
            text = compiled.render(messages=chat, tools=_plain(tools), documents=_plain(documents),
                                   add_generation_prompt=add_generation_prompt, **_plain(variables))
        except jinja2.TemplateError as err:
            raise ValueError(f"the chat template failed: {err}") from None
        if continue_final_message:
            text = _cut_after_final_message(text, chat)
        rendered.append(text)
    return rendered


def _cut_after_final_message(text: str, chat: list[dict]) -> str:
    content = chat[-1].get("content") if chat else None
    if isinstance(content, list):
        content = next((i.get("text") for i in reversed(content) if isinstance(i, dict) and "text" in i), None)
    if not content or content.strip() not in text:
        raise ValueError("continue_final_message: the final message's text does not appear in the rendered prompt")
    return text[: text.rindex(content.strip()) + len(content.strip())]
