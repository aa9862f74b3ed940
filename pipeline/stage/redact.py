"""Keep secrets out of logs: a camera URL's password is replaced before the URL is ever printed.

RTSP and HTTP cameras are usually addressed as ``rtsp://user:password@host/...``; that string is
the camera's key, and logs get pasted into bug reports. Some cameras take it in the query instead
(Foscam's ``?usr=admin&pwd=...``). Every log line, error message and status reply that names a
source goes through ``mask_url``.
"""

from __future__ import annotations

import re

MASK = "***"
# scheme://user:password@ — the password runs to the last '@' before the host, since it may hold '@'.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^/\s]*)@")
_QUERY = re.compile(r"(?P<key>[?&;](?:password|passwd|pass|pwd|token|secret|key|auth)=)[^&;#\s]*", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``text`` with every URL password (``scheme://user:PASSWORD@``, ``?pwd=PASSWORD``) replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
