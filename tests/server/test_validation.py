"""Client input is checked at the edge: a 400 naming the field, never a 500 (issue 11, 7-8, 10)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
import openai
import pytest

from tests.server.conftest import ServerThread


def generate(server: ServerThread, **body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/api/generate", timeout=120,
                      json={"model": "smollm2-135m", "prompt": "Hi", "stream": False, **body})


@pytest.mark.parametrize(("options", "field"), [
    ({"num_predict": "abc"}, "options.num_predict"),
    ({"num_predict": 0}, "options.num_predict"),
    ({"num_predict": -7}, "options.num_predict"),
    ({"temperature": "hot"}, "options.temperature"),
    ({"top_k": "many"}, "options.top_k"),
])
def test_bad_ollama_options_are_a_400_naming_the_field(server: ServerThread, options: dict,
                                                       field: str) -> None:
    reply = generate(server, options=options)
    assert reply.status_code == 400, reply.text
    assert field in reply.json()["error"]
    with ollama.Client(host=server.url) as client, pytest.raises(ollama.ResponseError) as err:
        client.generate(model="smollm2-135m", prompt="Hi", options=options)
    assert err.value.status_code == 400 and field in err.value.error


def test_num_predict_minus_one_means_no_limit_capped_by_the_server(
        make_server: Callable[..., ServerThread]) -> None:
    server = make_server({"max_tokens": 5})
    reply = generate(server, prompt="Count from 1 to 100.", options={"num_predict": -1,
                                                                     "temperature": 0})
    assert reply.status_code == 200, reply.text
    assert 1 <= reply.json()["eval_count"] <= 5
    huge = httpx.post(f"{server.url}/v1/chat/completions", timeout=120, json={
        "model": "smollm2-135m", "max_tokens": 10**12, "temperature": 0,
        "messages": [{"role": "user", "content": "Count from 1 to 100."}]})
    assert huge.status_code == 200 and huge.json()["usage"]["completion_tokens"] <= 5


def test_bad_openai_fields_are_a_400_naming_the_field(server: ServerThread) -> None:
    with (openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client,
          pytest.raises(openai.BadRequestError) as err):
        client.chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}],
            extra_body={"temperature": "hot"})
    assert "temperature" in str(err.value)


def test_a_lone_surrogate_is_a_400(server: ServerThread) -> None:
    raw = b'{"model": "smollm2-135m", "prompt": "Hi \\udcff there", "stream": false}'
    reply = httpx.post(f"{server.url}/api/generate", content=raw, timeout=30,
                       headers={"Content-Type": "application/json"})
    assert reply.status_code == 400, reply.text
    assert "prompt" in reply.json()["error"] and "Unicode" in reply.json()["error"]
    chat = httpx.post(f"{server.url}/v1/chat/completions", timeout=30,
                      headers={"Content-Type": "application/json"},
                      content=b'{"model": "smollm2-135m", "messages": '
                              b'[{"role": "user", "content": "\\ud800"}]}')
    assert chat.status_code == 400 and "Unicode" in chat.json()["error"]["message"]


def test_a_prompt_over_the_context_window_is_a_400_with_both_sizes(server: ServerThread) -> None:
    prompt = "lorem ipsum dolor " * 54_000  # 972 KB
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(generate, server, prompt=prompt)
        slowest = 0.0
        while not pending.done():  # the count runs off the event loop: health still answers
            started = time.monotonic()
            assert server.health()["status"] == "ok"
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
        reply = pending.result()
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]
    sizes = re.search(r"the prompt is (\d+) tokens .* context window of (\d+) tokens", message)
    assert sizes is not None, message
    assert int(sizes.group(1)) > int(sizes.group(2)) == 4096
    assert slowest < 2.0, f"health took {slowest:.1f} s while the prompt was counted"
    native = httpx.post(f"{server.url}/mirador/ask", timeout=60,
                        json={"query": prompt, "stream": False, "stages": ["quick_response"]})
    assert native.status_code == 400 and "context window" in native.json()["error"]["message"]


def test_an_unsafe_session_id_is_refused(server: ServerThread) -> None:
    reply = httpx.post(f"{server.url}/mirador/ask", timeout=30,
                       json={"query": "hi", "session_id": "../../etc/passwd", "stream": False})
    assert reply.status_code == 400 and "session_id" in reply.json()["error"]["message"]


def test_no_cdn_docs_page_and_no_home_path_in_health(server: ServerThread) -> None:
    assert httpx.get(f"{server.url}/docs").status_code == 404
    assert httpx.get(f"{server.url}/redoc").status_code == 404
    assert httpx.get(f"{server.url}/openapi.json").json()["info"]["title"] == "Mirador"
    page = httpx.get(f"{server.url}/").text
    assert "http://" not in page and "https://" not in page, "the page loads nothing remote"
    health = httpx.get(f"{server.url}/mirador/health").text
    home = str(server.runtime.settings.home.resolve())
    assert home not in health and "home_id" in health
