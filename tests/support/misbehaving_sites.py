"""Site classes that misbehave on purpose, loaded by robustness tests via site_modules."""

import time

from browserd.sites import Site


class HangInDriver(Site):
    """Blocks inside a WebDriver call that never returns (an async script that never
    calls back): neither the interrupt nor job.check() can end it, only a kill."""

    name = "hang_in_driver"
    description = "test: hangs inside chromedriver"

    def fetch(self, driver, job):
        driver.get(job.url)
        driver.set_script_timeout(3600)
        driver.execute_async_script("/* never calls back */")
        return self.read_page(driver)


class Sleepy(Site):
    """Loops in Python but checks the job between steps, as site classes should."""

    name = "sleepy"
    description = "test: sleeps cooperatively"
    params = {"seconds": "how long to sleep"}

    def fetch(self, driver, job):
        driver.get(job.url)
        end = time.monotonic() + float(job.params.get("seconds", 30))
        while time.monotonic() < end:
            job.check()
            time.sleep(0.02)
        return self.read_page(driver)
