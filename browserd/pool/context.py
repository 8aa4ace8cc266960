"""One job on one browser, as it passes through the steps of the job's thread
(:meth:`browserd.pool.execution.Execution._drive`): prepare, apply the job's options, fetch, read the
document, collect the job's outputs; then classify, answer, wind down, dispose.

This is the seam for per-job options (issue #14: headers, cookies, user agent, viewport,
wait_until, screenshot, pdf, evaluate, capture): :func:`apply_options` runs after the
browser is ready for the site and before the site's hooks and its ``fetch``;
:func:`collect_outputs` runs after ``fetch`` returned its page, and puts what the job asked for into
``ctx.outputs`` (the pool hands them on as ``Page.outputs``). Whatever an option changes
on the browser it takes back with :meth:`JobContext.on_reset`: the reset runs those undo
steps first, before its hygiene, so no job's options reach the next job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import joboptions
from ..browser.navigation import Document, NetLog


@dataclass
class JobContext:
    """What one job carries through its steps. Used by the job's thread only (and, after
    the job, by the reset thread: ``undo``); never shared between jobs.

    ``touched``: URLs whose origins the reset must wipe; ``session_kept``: the site keeps
    its session after this job (False once ``after_job`` failed); ``wiped_owner``: the
    session site whose session must be wiped before this job (None once wiped);
    ``downloads``: the job's download directory (None on a Grid); ``page``/``doc``: the
    result and what the network events say of its main document; ``error``: what the job
    raised (None: it returned a page); ``outputs``: result fields the job's options asked
    for; ``undo``: callables ``undo(driver)`` the reset runs first."""

    browser: object
    job: object
    site: object
    wiped_owner: str | None = None
    netlog: NetLog = field(default_factory=NetLog)
    touched: list = field(default_factory=list)
    session_kept: bool = False
    downloads: str | None = None
    page: object = None
    doc: Document | None = None
    error: BaseException | None = None
    outputs: dict = field(default_factory=dict)
    undo: list = field(default_factory=list)
    size_watch: object = None     # the main document's byte count (browser.docsize.SizeWatch)

    def __post_init__(self):
        self.touched = [self.job.url] + self.touched
        self.session_kept = bool(getattr(self.site, "keep_session", False))

    @property
    def options(self) -> dict:
        """The job's options as parsed by :mod:`browserd.jobs` (``{}`` when it has none)."""
        return getattr(self.job, "options", None) or {}

    def on_reset(self, undo) -> None:
        """Have the reset call ``undo(driver)`` before its hygiene (on the reset thread,
        the job over): how an option takes back what it changed on the browser. An undo
        that raises fails the reset, and the browser is replaced."""
        self.undo.append(undo)


def apply_options(ctx: JobContext) -> None:
    """Apply the job's own options (:func:`browserd.joboptions.begin`) once the browser is
    ready for the site and before the site's hooks, and have the reset take them back.
    Raises ``BadRequest`` for an option the browser refuses. No DevTools work for a job
    without such options."""
    if getattr(ctx.job, "options", None) is None:
        return
    browser = ctx.browser
    joboptions.begin(browser, ctx.job)
    ctx.on_reset(lambda driver: joboptions.undo(browser))


def collect_outputs(ctx: JobContext) -> None:
    """What the job's options ask for (:func:`browserd.joboptions.collect`), from the page
    the site's ``fetch`` returned and before its ``after_job``, into ``ctx.outputs``."""
    if getattr(ctx.job, "options", None) is not None:
        ctx.outputs = joboptions.collect(ctx.browser, ctx.job, ctx.page)


def end_options(ctx: JobContext) -> None:
    """Stop what :func:`apply_options` started (the main request's interception, the
    wait strategy) when the job's thread is done; never raises."""
    if getattr(ctx.job, "options", None) is not None:
        joboptions.end(ctx.browser, ctx.job)
