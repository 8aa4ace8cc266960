"""One browser: a chromedriver process, its Chromium, and the WebDriver session on it.

- :mod:`.process` — :class:`Browser`: start (chromedriver in a private network namespace,
  a session, a warm-up navigation), liveness from /proc, kill and polite quit.
- :mod:`.launch` — Chromium's options, the pool-wide :class:`LaunchSpec`, the WebDriver
  client that handles JavaScript dialogs by the job's policy.
- :mod:`.processes` — a browser's processes found by its working directory; signalling.
- :mod:`.interrupt` — stopping a blocked page load from another thread (DevTools).
- :mod:`.navigation` — what the browser's own network events say of a job's main document.
- :mod:`.hygiene` — the per-job reset over a browser-level DevTools connection.
- :mod:`.reset` — the reset's entry points, resource blocking, download behaviour.

Only the thread that holds a browser's checkout uses its driver (the pool's states say
which thread that is); :meth:`Browser.kill` and :meth:`Browser.interrupt` are safe from
any thread.
"""

from .launch import DEFAULT_DIALOGS, HEADLESS_ARGS, LaunchSpec, chrome_options
from .process import Browser, BrowserStartError
from .processes import kill_recorded, processes_of, total_rss
from .reset import (
    clear_session_state, deny_downloads, navigated_urls, recover_tab,
    reset_browser, set_blocking,
)

__all__ = [
    "DEFAULT_DIALOGS", "HEADLESS_ARGS", "Browser", "BrowserStartError", "LaunchSpec",
    "chrome_options", "clear_session_state", "deny_downloads", "kill_recorded",
    "navigated_urls", "processes_of", "recover_tab", "reset_browser", "set_blocking", "total_rss",
]
