"""Site classes for the site-API tests (loaded via site_modules): a session site that logs
in once per browser, hooks that report what ran, a gated site for per-site caps, and an
image counter for resource blocking."""

import itertools
from urllib.parse import urlsplit

from browserd.sites import Site
from browserd.sites.generic import Generic

_logins = itertools.count(1)
_setups = itertools.count(1)


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Account(Site):
    """Logs in (sets a cookie and localStorage to a fresh token) once per browser; jobs
    then see the session."""

    name = "account"
    description = "test: a session site"
    keep_session = True

    def setup_browser(self, driver, job):
        token = f"login{next(_logins)}"
        driver.get(f"{_base(job.url)}/cookie/set?v={token}")
        driver.get(f"{_base(job.url)}/storage/set?v={token}")

    def fetch(self, driver, job):
        driver.get(job.url)
        return self.read_page(driver)


class Hooks(Site):
    """Reports which hooks ran, through job.notes; ``fail_after`` makes after_job raise."""

    name = "hooks"
    description = "test: reports its hooks"
    params = {"fail_after": "raise in after_job"}

    def setup_browser(self, driver, job):
        job.notes["setup"] = next(_setups)

    def before_job(self, driver, job):
        job.notes["before"] = driver.current_url

    def fetch(self, driver, job):
        driver.get(job.url)
        return self.read_page(driver)

    def after_job(self, driver, job, page):
        job.notes["after"] = page.title if page else None
        if job.params.get("fail_after"):
            raise RuntimeError("after_job failed on purpose")


class Gated(Generic):
    """generic under another name, for a per-site concurrency cap set in the config."""

    name = "gated"
    description = "test: generic with a cap from the config"


class ImageCount(Site):
    """Loads the page and reports how many of its images loaded."""

    name = "image_count"
    description = "test: counts loaded images"

    def fetch(self, driver, job):
        driver.get(job.url)
        job.notes["loaded_images"] = driver.execute_script(
            "return [...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
        return self.read_page(driver)


class ImageCountBlocked(ImageCount):
    name = "image_count_blocked"
    block = ("images",)
