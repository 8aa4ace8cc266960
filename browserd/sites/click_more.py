"""click_more: load the URL and click a "load more" control until it is gone or N times."""

from __future__ import annotations

from browserd_client.errors import BadRequest

from .base import Page, Site

# One round trip per click: find a visible, enabled control; click it; count the items.
_CLICK = """
var els = document.querySelectorAll(arguments[0]), el = null;
for (var i = 0; i < els.length; i++) {
  var r = els[i].getBoundingClientRect();
  if ((r.width > 0 || r.height > 0) && !els[i].disabled) { el = els[i]; break; }
}
var n = arguments[1] ? document.querySelectorAll(arguments[1]).length : -1;
if (!el || arguments[2]) return [false, n, document.documentElement.innerHTML.length];
el.scrollIntoView({block: 'center'});
el.click();
return [true, n, document.documentElement.innerHTML.length];
"""


class ClickMore(Site):
    """A "load more" button: click the control until it is gone, disabled, or enough items exist."""
    name = "click_more"
    description = "Click a 'load more' selector until it disappears, N items exist, or N clicks."
    params = {
        "selector": "CSS selector of the control to click (required)",
        "item_selector": "CSS selector of the list's items (with min_items)",
        "min_items": "stop once at least this many items exist",
        "max_clicks": "click at most this many times (default 20, at most 1000)",
        "settle": "seconds a click may take to change the page before it counts as "
                  "finished (default 5)",
    }

    def fetch(self, driver, job) -> Page:
        """Load ``job.url`` and click ``selector`` (one round trip per click) until it is
        gone, ``min_items`` items exist, or ``max_clicks``; clicks go to the job's notes."""
        self.check_params(job.params)
        selector = self.param(job, "selector", str, required=True)
        item_selector = self.param(job, "item_selector", str)
        min_items = self.param(job, "min_items", int, minimum=1, maximum=10**6)
        if min_items and not item_selector:
            raise BadRequest("param 'min_items' needs 'item_selector'")
        max_clicks = self.param(job, "max_clicks", int, 20, minimum=0, maximum=1000)
        settle = self.param(job, "settle", float, 5.0, minimum=0.05, maximum=60)
        driver.get(job.url)
        clicks = 0
        _, items, size = driver.execute_script(_CLICK, selector, item_selector, True)
        while clicks < max_clicks and not (min_items and items >= min_items):
            job.check()
            clicked, items, size = driver.execute_script(_CLICK, selector, item_selector, False)
            if not clicked:
                break  # the control is gone (or hidden, or disabled): everything is loaded
            clicks += 1
            # The click's effect: more items or a changed document.
            changed, (_, items, size) = self.poll_change(
                job, settle, lambda: driver.execute_script(_CLICK, selector, item_selector, True),
                lambda now, before=(items, size): now[1] > before[0] or now[2] != before[1])
            if not changed:
                break  # the click did nothing within settle: stop rather than click on
        page = self.read_page(driver, job)
        job.notes.update(clicks=clicks, items=items if item_selector else None)
        return page
