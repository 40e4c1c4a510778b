"""The wire format: one message is one frame of UTF-8 JSON.

Text that UTF-8 cannot carry is escaped, and a report too big for a frame is cut to fit (head
and tail kept, with a note), so encoding never drops a message and never crashes the worker.
"""

from __future__ import annotations

import json

#: The largest frame the coordinator accepts (protocol ``MAX_FRAME_BYTES``); a larger one is
#: dropped by the socket. A message is kept below it with room to spare.
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: The size a message (or a batch of them) is kept below.
MESSAGE_LIMIT = MAX_FRAME_BYTES - 64 * 1024


def jsonable(value):
    """``value`` if json can encode it, else its repr()."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def safe_text(text):
    """``text`` with what UTF-8 cannot carry (lone surrogates, as ``surrogateescape`` makes for
    bytes that are not UTF-8) written as visible escapes: ``\\udcff``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        # Valid pairs join up; what is left alone is shown as its escape.
        joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        return joined.encode("utf-8", "backslashreplace").decode("utf-8")


def safe(value):
    """``value`` with every string in it made safe for the wire (see ``safe_text``)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe(k): safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe(v) for v in value]
    return value


def encode(message):
    """One message as the bytes of a frame: UTF-8 JSON, its text made safe for the wire, a
    report too big for a frame cut to fit (never dropped, never turned into a crash)."""
    try:
        data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        message = safe(message)
        data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    if len(data) > MESSAGE_LIMIT and message.get("type") == "report":
        data = _shrink_report(message, len(data))
    return data


def decode(frames):
    """The message in a frame (the last one: a REQ-style empty delimiter frame is tolerated):
    a dict, or None when the payload is not a JSON object; raises ValueError on bad JSON."""
    payload = frames[-1] if frames else b""
    message = json.loads(payload)
    return message if isinstance(message, dict) else None


def _human_bytes(n):
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def _cut_middle(text, limit):
    """``text`` cut to about ``limit`` characters: its first quarter and last three quarters,
    with a note between them saying how much was cut (as the coordinator's ``cut_middle``)."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit // 4], text[len(text) - (limit - limit // 4) :]
    size = len(text.encode("utf-8", "backslashreplace"))
    cut = len(text) - len(head) - len(tail)
    return (
        f"{head}\n[herd: {cut} characters cut here so the report fits in a frame (limit "
        f"{_human_bytes(MAX_FRAME_BYTES)}); the output was {_human_bytes(size)} in all, of which "
        f"the first {len(head)} and the last {len(tail)} characters are kept]\n{tail}"
    )


def _shrink_report(message, size):
    """Cuts a report's largest texts (failure text, captured output) until it fits below
    ``MESSAGE_LIMIT`` bytes; head and tail of each are kept, with a note saying what was cut."""
    for _ in range(8):
        fields = [("longrepr", None), ("message", None)]
        fields += [("sections", i) for i in range(len(message.get("sections") or []))]

        def text_of(field):
            key, i = field
            return message.get(key) if i is None else message[key][i][1]

        field = max(fields, key=lambda f: len(text_of(f) or ""))
        text = text_of(field) or ""
        if not text:
            break
        over = size - MESSAGE_LIMIT
        # Characters may take several bytes (and escapes): aim low.
        ratio = len(text) / max(1, len(text.encode("utf-8", "backslashreplace")))
        keep = max(4096, int((len(text) - over * ratio) * 0.9))
        cut = _cut_middle(text, keep)
        key, i = field
        if i is None:
            message[key] = cut
        else:
            message[key][i] = [message[key][i][0], cut]
        data = json.dumps(message, ensure_ascii=False).encode("utf-8")
        size = len(data)
        if size <= MESSAGE_LIMIT:
            return data
    return json.dumps(message, ensure_ascii=False).encode("utf-8")
