"""scroll: load the URL and scroll until the page stops growing or enough items exist."""

from __future__ import annotations

from browserd_client.errors import BadRequest

from .base import Page, Site

# One round trip per step: scroll to the bottom, report height and item count.
_STEP = """
window.scrollTo(0, document.documentElement.scrollHeight);
var sel = arguments[0];
return [document.documentElement.scrollHeight, sel ? document.querySelectorAll(sel).length : -1];
"""


class Scroll(Site):
    """Infinite-scroll lists: scroll to the bottom until the page stops growing."""
    name = "scroll"
    description = "Scroll to the bottom until the page stops growing, N items exist, or N scrolls."
    params = {
        "item_selector": "CSS selector of the list's items (with min_items)",
        "min_items": "stop once at least this many items exist",
        "max_scrolls": "scroll at most this many times (default 30, at most 1000)",
        "settle": "seconds the page may take to grow after a scroll before it counts as "
                  "finished (default 1.5)",
    }

    def fetch(self, driver, job) -> Page:
        """Load ``job.url`` and scroll (one round trip per step) until the height stays the
        same for ``settle`` seconds, ``min_items`` items exist, or ``max_scrolls``; the
        number of scrolls goes to the job's notes."""
        self.check_params(job.params)
        selector = self.param(job, "item_selector", str)
        min_items = self.param(job, "min_items", int, minimum=1, maximum=10**6)
        if min_items and not selector:
            raise BadRequest("param 'min_items' needs 'item_selector'")
        max_scrolls = self.param(job, "max_scrolls", int, 30, minimum=0, maximum=1000)
        settle = self.param(job, "settle", float, 1.5, minimum=0.05, maximum=60)
        driver.get(job.url)
        height, items = driver.execute_script(_STEP.replace("window.scrollTo", "void"), selector)
        scrolls = 0
        while scrolls < max_scrolls and not (min_items and items >= min_items):
            job.check()
            scrolls += 1
            grew, (height, items) = self.poll_change(
                job, settle, lambda: driver.execute_script(_STEP, selector),
                lambda now, before=(height, items): now[0] > before[0] or now[1] > before[1])
            if not grew:
                break
        page = self.read_page(driver, job)
        job.notes.update(scrolls=scrolls, items=items if selector else None)
        return page
