"""generic: load the URL, optionally wait for a CSS selector, return the page."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from browserd_client.errors import BadRequest

from .base import Page, Site


class Generic(Site):
    name = "generic"
    description = "Load the URL; optionally wait for a CSS selector to appear."
    params = {
        "wait_for": "CSS selector to wait for after the page has loaded",
        "wait_timeout": "seconds to wait for it (default: the rest of the job's time)",
    }

    def fetch(self, driver, job) -> Page:
        self.check_params(job.params)
        selector = job.params.get("wait_for")
        if selector is not None and (not isinstance(selector, str) or not selector.strip()):
            raise BadRequest("'wait_for' must be a non-empty CSS selector")
        wait = job.params.get("wait_timeout")
        if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait <= 0):
            raise BadRequest("'wait_timeout' must be a positive number of seconds")
        driver.get(job.url)
        if selector:
            self.wait_until(driver, job, EC.presence_of_element_located((By.CSS_SELECTOR, selector)),
                            timeout=wait, message=f"selector {selector!r} did not appear")
        return self.read_page(driver)
