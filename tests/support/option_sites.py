"""A site class for the job-options tests (loaded via site_modules): its setup_browser loads
a page first (a login), its before_job reports what the tab already carries and what the
job's options say."""

from browserd.sites import Site


class OptionsSeen(Site):
    name = "options_seen"
    description = "test: reports the job options its hooks see"

    def setup_browser(self, driver, job):
        driver.get(job.url.replace("/probe", "/echo"))  # a login page, before the job's URL

    def before_job(self, driver, job):
        job.notes["tab_user_agent"] = driver.execute_script("return navigator.userAgent")
        job.notes["option_user_agent"] = job.options.user_agent if job.options else None

    def fetch(self, driver, job):
        driver.get(job.url)
        return self.read_page(driver, job)
