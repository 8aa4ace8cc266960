"""Site classes without a browser: class-level policy checks, ``Site.param`` bounds, and
what loading and reloading report (pure logic: site files in a temporary directory)."""

from __future__ import annotations

import textwrap

import pytest

from browserd.jobs import Job
from browserd.sites import Site, load_registry
from browserd_client.errors import BadRequest


def site_class(**policies):
    return type("Bad", (Site,), {"name": "bad", **policies})


@pytest.mark.parametrize("policies, message", [
    ({"concurrency": -1}, "site class Bad.concurrency = -1: must be an integer >= 0 (0: no cap)"),
    ({"timeout": "x"}, "site class Bad.timeout = 'x': must be a positive number of seconds"),
    ({"block": "images"}, "site class Bad.block = 'images': must be a list of images, fonts, media, stylesheets"),
    ({"block": ("pictures",)}, "site class Bad.block = ('pictures',): must be a list of images"),
    ({"block_urls": ("",)}, "site class Bad.block_urls = ('',): must be a list of URL patterns"),
    ({"keep_session": "yes"}, "site class Bad.keep_session = 'yes': must be true or false"),
])
def test_a_bad_class_policy_is_a_one_line_error_naming_the_class_and_attribute(policies, message):
    with pytest.raises(ValueError) as caught:
        site_class(**policies)()
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_good_class_policies_load_as_they_are():
    site = site_class(concurrency=2, timeout=90, block=("images",), block_urls=["*/ads/*"], keep_session=True)()
    assert (site.concurrency, site.timeout, site.block, site.keep_session) == (2, 90, ("images",), True)
    assert "*.png" in site.blocked_patterns and "*/ads/*" in site.blocked_patterns


def write_site_file(directory, name: str, text: str) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


GOOD_AND_BAD = """
    from browserd.sites import Site

    class Good(Site):
        name = "good"

    class Bad(Site):
        name = "bad"
        concurrency = {concurrency}
"""


def test_a_class_with_a_bad_policy_is_a_load_problem_and_the_other_sites_load(tmp_path):
    path = write_site_file(tmp_path, "mixed.py", GOOD_AND_BAD.format(concurrency=-1))
    registry = load_registry(site_dirs=[str(tmp_path)])
    assert registry.problems == [
        f"site file {path}: site 'bad': ValueError: site class Bad.concurrency = -1: "
        "must be an integer >= 0 (0: no cap)"]
    assert "good" in registry.sites and "bad" not in registry.sites and "generic" in registry.sites


def test_a_duplicate_name_in_a_site_file_is_labelled_like_its_import_failures(tmp_path):
    path = write_site_file(tmp_path, "mine.py", """
        from browserd.sites import Site

        class Mine(Site):
            name = "generic"
    """)
    write_site_file(tmp_path, "broken.py", "1/0\n")
    registry = load_registry(site_dirs=[str(tmp_path)])
    assert registry.problems == [
        f"site file {tmp_path / 'broken.py'}: ZeroDivisionError: division by zero",
        f"site file {path}: site name 'generic' is already taken by browserd.sites.generic; skipped",
    ]


def test_reload_keeps_the_previous_site_when_its_class_now_fails_to_instantiate(tmp_path):
    path = write_site_file(tmp_path, "mixed.py", GOOD_AND_BAD.format(concurrency=1))
    first = load_registry(site_dirs=[str(tmp_path)])
    assert first.problems == [] and first.sites["bad"].concurrency == 1

    write_site_file(tmp_path, "mixed.py", GOOD_AND_BAD.format(concurrency=-1))
    second = load_registry(site_dirs=[str(tmp_path)], previous=first)
    assert second.problems == [
        f"site file {path}: site 'bad': ValueError: site class Bad.concurrency = -1: "
        "must be an integer >= 0 (0: no cap); kept the previously loaded site 'bad'"]
    assert second.sites["bad"] is first.sites["bad"] and second.origins["bad"] == path
    assert second.sites["good"] is not first.sites["good"]  # its sibling loaded anew

    write_site_file(tmp_path, "mixed.py", GOOD_AND_BAD.format(concurrency=2))
    third = load_registry(site_dirs=[str(tmp_path)], previous=second)
    assert third.problems == [] and third.sites["bad"].concurrency == 2


def test_reload_keeps_the_previous_site_when_its_own_init_now_raises(tmp_path):
    text = """
        from browserd.sites import Site

        class Probe(Site):
            name = "probe"

            def __init__(self, settings=None):
                super().__init__(settings)
                {line}
    """
    path = write_site_file(tmp_path, "probe.py", text.format(line="self.ready = True"))
    first = load_registry(site_dirs=[str(tmp_path)])
    write_site_file(tmp_path, "probe.py", text.format(line="raise RuntimeError('no token')"))
    second = load_registry(site_dirs=[str(tmp_path)], previous=first)
    assert second.problems == [f"site file {path}: site 'probe': RuntimeError: no token; "
                               "kept the previously loaded site 'probe'"]
    assert second.sites["probe"] is first.sites["probe"]


def job_with(**params) -> Job:
    return Job(url="http://x/", site="s", timeout=5, params=params)


@pytest.mark.parametrize("bounds, value, message", [
    ({"minimum": 1}, 0, "param 'n' must be >= 1, not 0"),
    ({"maximum": 10}, 11, "param 'n' must be <= 10, not 11"),
    ({"minimum": 1, "maximum": 10}, 0, "param 'n' must be between 1 and 10, not 0"),
    ({"minimum": 0.05, "maximum": 60}, 61.5, "param 'n' must be between 0.05 and 60, not 61.5"),
])
def test_param_names_only_the_bounds_it_has(bounds, value, message):
    with pytest.raises(BadRequest) as caught:
        Site.param(job_with(n=value), "n", type(value), **bounds)
    assert str(caught.value) == message
    assert Site.param(job_with(n=5), "n", int, **bounds) == 5
