"""generic: load the URL, optionally wait for a CSS selector or a JavaScript condition."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from .base import Page, Site


class Generic(Site):
    """The default site: load the URL, then wait for ``wait_for`` (CSS) and ``wait_js``."""
    name = "generic"
    description = "Load the URL; optionally wait for a CSS selector or a JavaScript condition."
    params = {
        "wait_for": "CSS selector to wait for after the page has loaded",
        "wait_js": "JavaScript expression to wait for until it is truthy, e.g. "
                   "\"document.querySelectorAll('.row').length >= 10\"",
        "wait_timeout": "seconds to wait for them (default: the rest of the job's time)",
    }

    def fetch(self, driver, job) -> Page:
        """Load ``job.url``; wait for the selector and the condition (each up to
        ``wait_timeout`` s, else the job's time); ``Timeout`` names what never appeared."""
        self.check_params(job.params)
        selector = self.param(job, "wait_for", str)
        script = self.param(job, "wait_js", str)
        wait = self.param(job, "wait_timeout", float, minimum=0.001, maximum=3600)
        driver.get(job.url)
        if selector:
            self.wait_until(driver, job, EC.presence_of_element_located((By.CSS_SELECTOR, selector)),
                            timeout=wait, message=f"selector {selector!r} did not appear")
        if script:
            self.wait_until(driver, job, js_condition(script), timeout=wait,
                            message=f"condition {script!r} did not become true")
        return self.read_page(driver, job)


def js_condition(expression: str):
    """A wait condition: ``expression`` evaluated in the page is truthy. A script error is
    the site's error (a bad expression), not a timeout."""
    body = f"return !!({expression});"

    def condition(driver):
        """True once the expression is truthy in the page."""
        return driver.execute_script(body)

    return condition
