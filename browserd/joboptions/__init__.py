"""Job options (issue 14): what one fetch may ask of the browser beyond "this URL, this
site class", applied by the daemon for every site class.

The pool calls four hooks, each a no-op for a job without such options (no DevTools work):

- :func:`begin` once the browser is readied for the site, before the site's hooks: the
  request options (headers, cookies, user agent, viewport, locale, time zone, the main
  request's method and body) and the ``wait_until`` strategy (:mod:`.apply`, :mod:`.wait`);
- :func:`collect` after the site's ``fetch`` returned its page (not Chromium's error page): the outputs
  (:mod:`.outputs`), which the pool hands on as ``Page.outputs``;
- :func:`end` when the job's thread is done (success or not): stops what ``begin`` started;
- :func:`undo` in the browser's reset: the tab's overrides are cleared for the next job
  (cookies go with the reset's own cookie wipe).
"""

from __future__ import annotations

from .apply import apply, undo
from .outputs import collect as _collect
from .validate import JobOptions, validate
from .wait import install as _install_wait, remove as _remove_wait

__all__ = ["JobOptions", "validate", "begin", "collect", "end", "undo"]


def begin(browser, job) -> None:
    """Apply ``job.options`` to the browser's tab before the navigation. Raises
    ``BadRequest`` for a value the browser refuses (e.g. an unknown time zone)."""
    if job.options is None:
        return
    job.option_state = apply(browser, job)
    _install_wait(browser, job)


def collect(browser, job, page) -> dict:
    """The outputs ``job.options`` asked for (result fields: ``screenshot``, ``pdf``,
    ``value``, ``responses``, ``cookies``), from the page the site left (``page``, what its
    ``fetch`` returned); ``{}`` when none were asked for, or for Chromium's error page (the
    pool reports the failed load). Raises ``ScriptError`` (evaluate threw), ``FrameTooLarge``."""
    if job.options is None or not job.options.outputs:
        return {}
    if (getattr(page, "url", "") or "").startswith("chrome-error://"):
        return {}
    return _collect(browser.driver, job)


def end(browser, job) -> None:
    """Stop what :func:`begin` started for the job (never raises)."""
    if job.options is None:
        return
    _remove_wait(browser.driver)
    state, job.option_state = job.option_state, None
    if state is not None:
        state.close()
        if not state.matched and job.aborted is None:
            job.notes["main_request"] = (f"not sent: the site never loaded {job.url}, so no "
                                         f"{job.options.method} request was made")
