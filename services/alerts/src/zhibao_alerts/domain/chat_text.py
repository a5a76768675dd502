"""Reporter-supplied text made inert before it goes into a chat robot's markdown.

Alert summaries carry what reporters typed (a compound, a building). DingTalk and
WeCom render markdown (links, images, headings, emphasis, quotes, and WeCom's
``<font>`` and ``<@userid>``); Feishu text turns ``<at user_id="all">`` into an
@-everyone. So in such text every markdown or HTML metacharacter becomes its
full-width twin (it still reads the same to a person, and no renderer acts on it),
line breaks become spaces (no line can start a heading, list or quote), a URL's
``://`` and a domain's dots are broken so that nothing is auto-linked, and ``@``
cannot mention anyone.
"""

from __future__ import annotations

import re

#: ASCII metacharacters and their full-width forms (U+FF01..U+FF5E are ASCII + 0xFEE0).
_META = "\\`*_{}[]()<>#+-|!~@&"
_TABLE = {ord(c): chr(ord(c) + 0xFEE0) for c in _META}
_SPACES = re.compile(r"\s+")
#: A dot between a word character and letters (``evil.example``), not in ``38.5``.
_DOMAIN_DOT = re.compile(r"(?<=\w)\.(?=[A-Za-z])")


def inert(text: str) -> str:
    """``text`` as a chat robot will show it literally, on one line."""
    one_line = _SPACES.sub(" ", text).strip()
    without_links = _DOMAIN_DOT.sub("\uff0e", one_line).replace("://", "\uff1a//")
    return without_links.translate(_TABLE)
