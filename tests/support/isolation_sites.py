"""Site classes for the isolation tests (loaded via site_modules): one that reports the
browser's open windows, a generic that shares its HTTP cache, and one whose hook changes
the user agent and the viewport."""

from browserd.sites import Site
from browserd.sites.generic import Generic


class Windows(Site):
    """Loads the page and reports the browser's page targets (chromedriver's window list)."""

    name = "windows"
    description = "test: counts the browser's windows"

    def fetch(self, driver, job):
        driver.get(job.url)
        job.notes["windows"] = len(driver.window_handles)
        return self.read_page(driver)


class SharedCache(Generic):
    name = "shared_cache"
    description = "test: generic that shares its HTTP cache with its own later jobs"
    share_cache = True


class Dressed(Site):
    """A before_job hook that overrides the user agent and the viewport of the tab."""

    name = "dressed"
    description = "test: changes the user agent and the viewport in a hook"

    def before_job(self, driver, job):
        driver.execute("executeCdpCommand", {"cmd": "Emulation.setUserAgentOverride",
                                             "params": {"userAgent": "DressedAgent/1.0"}})
        driver.execute("executeCdpCommand", {"cmd": "Emulation.setDeviceMetricsOverride",
                                             "params": {"width": 333, "height": 444, "deviceScaleFactor": 1,
                                                        "mobile": False}})

    def fetch(self, driver, job):
        driver.get(job.url)
        return self.read_page(driver)


class Probe(Site):
    """Reports the page's user agent and viewport width."""

    name = "probe"
    description = "test: reports navigator.userAgent and innerWidth"

    def fetch(self, driver, job):
        driver.get(job.url)
        job.notes["ua"], job.notes["width"] = driver.execute_script("return [navigator.userAgent, innerWidth]")
        return self.read_page(driver)
