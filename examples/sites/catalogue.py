"""catalogue: a shop's product list behind a consent wall and a "load more" button.

Try it on the local test pages (``browserd.pages``): the /more page shows 10 rows of
``li.item`` and a ``button#more`` that adds 10 more per click, and removes itself once
all are shown. Enable it with ``site_dirs = ["examples/sites"]``.
"""

from urllib.parse import urlsplit

from selenium.webdriver.common.by import By

from browserd.sites import Page, Site

ITEMS = (By.CSS_SELECTOR, "li.item")
MORE = (By.CSS_SELECTOR, "button#more")


class Catalogue(Site):
    name = "catalogue"
    description = "A product list: accept the consent wall, click 'load more' until N items or the end."
    params = {"min_items": "stop once at least this many items are shown (default: all of them)"}
    block = ("images", "fonts")  # the list is text: do not download pictures and fonts

    def before_job(self, driver, job):
        # The shop shows a consent wall to visitors without this cookie. Cookies are wiped
        # after every job (this site does not keep a session), so it is set before each
        # one, through DevTools: no page of the shop has to be loaded first.
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(job.url))
        driver.execute("executeCdpCommand", {"cmd": "Network.setCookie", "params": {
            "name": "consent", "value": "yes", "url": origin}})

    def fetch(self, driver, job) -> Page:
        wanted = self.param(job, "min_items", int, minimum=1, maximum=10_000)
        driver.get(job.url)
        clicks = 0
        while True:
            job.check()  # stop here once the job passed its deadline or its client left
            items = len(driver.find_elements(*ITEMS))
            buttons = driver.find_elements(*MORE)
            if not buttons or (wanted and items >= wanted):
                break
            buttons[0].click()
            clicks += 1
            # The rows arrive a moment after the click: wait for more of them (or for the
            # button to go), at most 10 s and never past the job's deadline.
            self.wait_until(
                driver, job,
                lambda d: len(d.find_elements(*ITEMS)) > items or not d.find_elements(*MORE),
                timeout=10, message=f"click {clicks} on 'load more' added no items")
        job.notes.update(items=items, clicks=clicks, complete=not buttons)
        return self.read_page(driver)
