"""``browserd fetch`` job-option flags -> client keyword arguments, outputs -> files, and
``fetch -i`` JSON lines (pure logic: argparse, no daemon)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from browserd import cli
from browserd.cli import options as cli_options
from browserd.daemon.errors import ExitCode
from browserd_client.options import job_options


def parse(*argv):
    return cli.build_parser().parse_args(["fetch", *argv])


def options_of(*argv):
    return cli_options.job_options_from_args(parse(*argv))


def test_flags_become_client_keyword_arguments():
    kwargs = options_of("http://x/", "--header", "X-Token: a:b", "--header", "Accept-Language:de",
                        "--cookie", "sid=4=2; Domain=127.0.0.1; Path=/app; Secure; HttpOnly; SameSite=lax",
                        "--cookie", "theme=dark", "--user-agent", "UA/1, like Gecko", "--viewport", "1280x800@2",
                        "--locale", "de-DE", "--timezone", "Asia/Tokyo", "--wait-until", "settled",
                        "--settle-ms", "800", "--screenshot", "shot.jpg", "--full-page", "--pdf", "p.pdf",
                        "--pdf-format", "Letter", "--eval", "return [1, {a: 2}]", "--capture", "*/api/*",
                        "--capture", "*.json", "--capture-out", "r.json", "--cookies-out", "c.json")
    assert kwargs == {
        "headers": {"X-Token": "a:b", "Accept-Language": "de"},
        "cookies": [{"name": "sid", "value": "4=2", "domain": "127.0.0.1", "path": "/app", "secure": True,
                     "httpOnly": True, "sameSite": "Lax"}, {"name": "theme", "value": "dark"}],
        "user_agent": "UA/1, like Gecko", "viewport": {"width": 1280, "height": 800, "device_scale_factor": 2},
        "locale": "de-DE", "timezone": "Asia/Tokyo", "wait_until": "settled", "settle_ms": 800,
        "screenshot": {"type": "jpeg", "full_page": True}, "pdf": {"format": "Letter"},
        "evaluate": "return [1, {a: 2}]", "capture": ["*/api/*", "*.json"], "cookies_out": True}


def test_no_flags_no_options():
    assert options_of("http://x/") == {}


def test_data_is_a_form_post_unless_a_header_says_otherwise(tmp_path):
    kwargs = options_of("http://x/", "--data", "user=ann&pw=x")
    assert kwargs == {"data": b"user=ann&pw=x"}
    assert job_options(**kwargs) == {"method": "POST", "body": base64.b64encode(b"user=ann&pw=x").decode()}
    body = tmp_path / "body.json"
    body.write_bytes(b'{"a":\n 1}\n')
    kwargs = options_of("http://x/", "--data-binary", f"@{body}", "--method", "put",
                        "--header", "Content-Type: application/json")
    assert job_options(**kwargs) == {"method": "PUT", "content_type": "application/json",
                                     "body": base64.b64encode(b'{"a":\n 1}\n').decode()}
    assert options_of("http://x/", "--data", f"@{body}")["data"] == b'{"a": 1}'   # curl: newlines removed


def test_a_jpeg_quality_makes_a_jpeg_and_a_png_file_a_png():
    assert options_of("u", "--screenshot", "s.png")["screenshot"] == {"type": "png"}
    assert options_of("u", "--screenshot", "s.png", "--jpeg-quality", "60")["screenshot"] == \
        {"type": "jpeg", "quality": 60}


BAD = [
    (["--header", "NoColon"], "is not NAME:VALUE"),
    (["--header", "X-A: a\rb"], "option 'headers'"),
    (["--cookie", "novalue"], "does not start with NAME=VALUE"),
    (["--cookie", "a=1; Colour=red"], "unknown attribute"),
    (["--cookie", "a=1; SameSite=sometimes"], "sameSite"),
    (["--viewport", "1280"], "is not WIDTHxHEIGHT"),
    (["--viewport", "0x800"], "width must be 1..10000"),
    (["--screenshot"], "--screenshot needs a FILE"),
    (["--full-page"], "need --screenshot"),
    (["--screenshot", "a.png", "--jpeg-quality", "200"], "quality must be 0..100"),
    (["--pdf-format", "A4"], "--pdf-format needs --pdf"),
    (["--capture", "*/api/*"], "--capture needs --capture-out"),
    (["--capture-out", "r.json"], "--capture-out needs --capture"),
    (["--data", "a", "--data-binary", "b"], "either --data or --data-binary"),
    (["--data", "a", "--method", "GET"], "a body needs a method other than GET"),
    (["--method", "B@D"], "option 'method'"),
    (["--screenshot", "page.gif"], "must end in .png, .jpg or .jpeg"),
    (["--settle-ms", "500"], "--settle-ms is the quiet window of --wait-until settled"),
    (["--wait-until", "settled", "--settle-ms", "90000"], "settle_ms"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_flag_is_a_usage_error_naming_it(argv, message, capsys):
    with pytest.raises((ValueError, TypeError), match=message.replace(".", r"\.").replace("*", r"\*")):
        options_of("http://x/", *argv)
    assert cli.main(["fetch", "http://127.0.0.1:9/", "--state-dir", "/nonexistent", *argv]) == ExitCode.USAGE
    assert message.split("'")[0].strip() in capsys.readouterr().err


def test_with_i_outputs_take_no_file():
    args = parse("-i", "urls.txt", "-o", "out", "--screenshot", "--pdf", "--cookies-out", "--capture", "*/api/*")
    assert cli_options.job_options_from_args(args) == {"screenshot": {"type": "png"}, "pdf": True,
                                                       "capture": ["*/api/*"], "cookies_out": True}
    with pytest.raises(ValueError, match="with -i, --screenshot takes no FILE"):
        cli_options.job_options_from_args(parse("-i", "urls.txt", "--screenshot", "a.png"))


def test_help_shows_the_job_option_flags(capsys):
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    for flag in ("--header", "--cookie", "--user-agent", "--viewport", "--wait-until", "--screenshot", "--full-page",
                 "--pdf", "--eval", "--capture", "--data", "--data-binary", "--method", "--cookies-out"):
        assert flag in out


# -- outputs ----------------------------------------------------------------------------------

def result(**outputs):
    base = dict(screenshot=None, screenshot_type=None, pdf=None, value=None, responses=None, responses_dropped=0,
                cookies=None)
    return SimpleNamespace(**{**base, **outputs})


def test_outputs_are_written_to_the_files_the_flags_name(tmp_path, capsys):
    shot, pdf, resp, jar = (str(tmp_path / n) for n in ("s.png", "p.pdf", "r.json", "c.json"))
    args = parse("u", "--screenshot", shot, "--pdf", pdf, "--capture", "*", "--capture-out", resp,
                 "--cookies-out", jar, "--eval", "1", "-o", str(tmp_path / "page.html"))
    record = cli_options.save_outputs(args, result(
        screenshot=b"\x89PNG", pdf=b"%PDF-1.4", value={"n": [1]}, cookies=[{"name": "s", "value": "1"}],
        responses=[{"url": "u", "body": b"\x00\x01", "body_base64": True}]))
    assert open(shot, "rb").read() == b"\x89PNG" and open(pdf, "rb").read() == b"%PDF-1.4"
    assert json.load(open(resp)) == [{"url": "u", "body": "AAE=", "body_base64": True}]
    assert json.load(open(jar)) == [{"name": "s", "value": "1"}]
    assert record["value"] == {"n": [1]} and record["files"]["screenshot"] == shot
    assert capsys.readouterr().out == '{"n": [1]}\n'   # the page went to -o: the value to stdout
    assert not cli_options.value_replaces_page(args)
    assert cli_options.value_replaces_page(parse("u", "--eval", "1"))


def test_batch_outputs_are_saved_next_to_the_page(tmp_path):
    page = str(tmp_path / "abc-host_path.html")
    record = cli_options.save_batch_outputs(
        result(screenshot=b"JPEG", screenshot_type="jpeg", pdf=b"%PDF", value=0,
               responses=[{"url": "u", "body": "{}"}], responses_dropped=2), page)
    assert record == {"screenshot": "abc-host_path.jpg", "pdf": "abc-host_path.pdf", "value": 0,
                      "responses": "abc-host_path.responses.json", "responses_dropped": 2}
    assert (tmp_path / "abc-host_path.jpg").read_bytes() == b"JPEG"
    assert cli_options.save_batch_outputs(result(), page) == {}


# -- fetch -i input ---------------------------------------------------------------------------

def test_input_lines_are_urls_or_json_objects_with_options(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('# a comment\nhttp://a/\n\n{"url": "http://b/", "options": {"method": "POST", "data": {"q": "1"}}}\n'
                    'http://a/\n{"url": "http://c/", "site": "scroll", "params": {"n": 2}}\n')
    items = cli_options.read_batch_input(str(path))
    assert items == ["http://a/", {"url": "http://b/", "options": {"method": "POST", "data": {"q": "1"}}},
                     {"url": "http://c/", "site": "scroll", "params": {"n": 2}}]
    assert [cli_options.item_url(i) for i in items] == ["http://a/", "http://b/", "http://c/"]


@pytest.mark.parametrize("line,message", [
    ('{"url": "http://b/"', "in.jsonl:2: not a JSON object"),
    ('{"site": "x"}', 'in.jsonl:2: a JSON line needs a "url"'),
    ('{"url": "http://b/", "header": {}}', "in.jsonl:2: unknown keys header"),
    ('{"url": "http://b/", "options": {"wait_until": "later"}}', "in.jsonl:2: option 'wait_until'"),
    ('{"url": "http://b/", "options": {"screenshots": true}}', "in.jsonl:2: unknown job options: screenshots"),
])
def test_a_bad_input_line_is_an_error_naming_the_line(tmp_path, line, message):
    path = tmp_path / "in.jsonl"
    path.write_text(f"http://a/\n{line}\n")
    with pytest.raises(ValueError, match=message):
        cli_options.read_batch_input(str(path))
