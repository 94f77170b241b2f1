"""Every request field is honoured or refused with a 400 naming it (issue 12), through the
official `ollama` and `openai` clients against the real server on the embedded model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import ollama
import openai
import pytest

from mirador.backends import ChatRequest, Finished, TextPiece
from mirador.server.errors import BadRequestError
from mirador.server.fields import Keep, keep_alive
from tests.server.conftest import SHORT, ServerThread

SAY: Any = [{"role": "user", "content": "Name three fruits."}]


def base_model(server: ServerThread) -> str:
    """The embedded model the default personas run on (whatever it is called)."""
    return server.runtime.orchestrator.manifest.resolve("quick").model.id


@pytest.fixture
def requests_seen(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> list[ChatRequest]:
    """Every ChatRequest the server's stages send to the model (the model still answers);
    `generated[i]` is how many tokens the model reported for the i-th."""
    manager = server.runtime.orchestrator.manager
    seen: list[ChatRequest] = []
    real = manager.stream_chat
    generated.clear()
    texts.clear()

    async def recording(request: ChatRequest) -> AsyncIterator[Any]:
        seen.append(request)
        texts.append("")
        async for event in real(request):
            if isinstance(event, Finished):
                generated.append(event.completion_tokens)
            if isinstance(event, TextPiece):
                texts[-1] += event.text
            yield event

    monkeypatch.setattr(manager, "stream_chat", recording)
    return seen


generated: list[int] = []
texts: list[str] = []  # what the model wrote for each request


def system_of(request: ChatRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role == "system")


# -- system prompts and sampling reach every stage ----------------------------------------


def test_a_system_message_is_added_to_every_stage_persona(
        oclient: ollama.Client, requests_seen: list[ChatRequest]) -> None:
    oclient.chat(model="mirador:duo", stream=False, messages=[
        {"role": "system", "content": "Always answer in French."}, *SAY])
    assert len(requests_seen) == 2
    for request, persona in zip(requests_seen, ("Answer in one short sentence.",
                                                "Improve the answer given"), strict=True):
        system = system_of(request)
        assert persona in system and system.endswith("Always answer in French.")


def test_the_openai_developer_role_is_a_system_message(
        oai: openai.OpenAI, requests_seen: list[ChatRequest]) -> None:
    oai.chat.completions.create(model="mirador:duo", messages=[
        {"role": "developer", "content": "Answer like a pirate."}, *SAY])  # type: ignore[list-item]
    assert len(requests_seen) == 2
    assert all("Answer like a pirate." in system_of(r) for r in requests_seen)


def test_generate_system_reaches_a_chain(oclient: ollama.Client,
                                         requests_seen: list[ChatRequest]) -> None:
    oclient.generate(model="mirador:duo", prompt="Name a fruit.", system="Use capitals.")
    assert len(requests_seen) == 2 and all("Use capitals." in system_of(r)
                                           for r in requests_seen)


def test_sampling_options_apply_to_every_stage(oclient: ollama.Client,
                                               requests_seen: list[ChatRequest]) -> None:
    oclient.chat(model="mirador:duo", messages=SAY, options={
        "temperature": 1.3, "top_p": 0.8, "top_k": 20, "seed": 7, "repeat_penalty": 1.2,
        "stop": ["banana"]})
    assert len(requests_seen) == 2
    for request in requests_seen:
        options = request.options
        assert (options.temperature, options.top_p, options.top_k, options.seed,
                options.repeat_penalty) == (1.3, 0.8, 20, 7, 1.2)
        assert options.stop and "banana" in options.stop


@pytest.mark.parametrize("model", ["mirador:quick", "base"])
def test_the_same_seed_gives_the_same_text(server: ServerThread, oclient: ollama.Client,
                                           model: str) -> None:
    model = base_model(server) if model == "base" else model

    def text(seed: int) -> str:
        reply = oclient.generate(model=model, prompt="Write a word.",
                                 options={"seed": seed, "temperature": 1.5, "num_predict": 16})
        return reply.response

    first = text(11)
    assert text(11) == first
    assert any(text(seed) != first for seed in (12, 13, 14)), "the seed changes nothing"


def test_the_same_seed_gives_every_stage_of_a_chain_the_same_text(
        oclient: ollama.Client, requests_seen: list[ChatRequest]) -> None:
    """A later stage also sees what memory recalls, which the first answer changed: where a
    stage's prompt is the same both times, its text is the same."""
    for _ in range(2):
        oclient.generate(model="mirador:duo", prompt="Write a word.",
                         options={"seed": 3, "temperature": 1.5})
    assert len(requests_seen) == 4
    first, second = (requests_seen[:2], texts[:2]), (requests_seen[2:], texts[2:])
    assert first[1][0] == second[1][0], "the first stage's text differs under one seed"
    runs = [list(zip(*first, strict=True)), list(zip(*second, strict=True))]
    for (one, text_one), (two, text_two) in zip(*runs, strict=True):
        if one.messages == two.messages:
            assert text_one == text_two


def test_the_openai_seed_gives_the_same_text(oai: openai.OpenAI) -> None:
    def text() -> str | None:
        reply = oai.chat.completions.create(model="mirador:quick", messages=SAY, seed=5,
                                            temperature=1.5)
        return reply.choices[0].message.content

    assert text() == text()


def test_stop_strings_never_appear_in_the_answer(oclient: ollama.Client,
                                                 oai: openai.OpenAI) -> None:
    chat = oclient.chat(model="mirador:duo", messages=SAY, options={"stop": [".", ","]})
    assert "." not in chat.message.content and "," not in chat.message.content
    assert "── brief ──" in chat.message.content, "the stages still show, without the stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in
                       oai.chat.completions.create(model="mirador:duo", messages=SAY,
                                                        stop=["e"], stream=True) if c.choices)
    assert streamed and "e" not in streamed


def test_a_stop_string_ends_a_model_answer_with_reason_stop(server: ServerThread,
                                                            oclient: ollama.Client) -> None:
    reply = oclient.generate(model=base_model(server), prompt="Write two sentences.",
                             options={"stop": ["."], "num_predict": 200, "temperature": 0})
    assert reply.done_reason == "stop" and "." not in reply.response
    assert reply.eval_count is not None and reply.eval_count < 200


# -- the token limit bounds the whole answer ----------------------------------------------


def test_num_predict_bounds_the_whole_staged_answer(oclient: ollama.Client,
                                                    requests_seen: list[ChatRequest]) -> None:
    limit = SHORT + 6
    reply = oclient.chat(model="mirador:duo", messages=SAY,
                         options={"num_predict": limit, "temperature": 0})
    assert requests_seen[0].options.max_tokens == SHORT  # the persona's own is smaller
    assert reply.eval_count == sum(generated) and sum(generated) <= limit
    if len(requests_seen) == 2:  # the second stage may use only what the first left
        assert requests_seen[1].options.max_tokens == min(SHORT, limit - generated[0])
    if sum(generated) == limit:
        assert reply.done_reason == "length"


def test_max_tokens_cuts_a_chain_and_says_length(oai: openai.OpenAI,
                                                 requests_seen: list[ChatRequest]) -> None:
    reply = oai.chat.completions.create(model="mirador:duo", messages=SAY, max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage and reply.usage.completion_tokens == 5
    assert len(requests_seen) == 1, "the limit was spent: no later stage runs"
    assert "brief_final" not in (reply.choices[0].message.content or "")


def test_a_streamed_answer_cut_by_num_predict_says_length(server: ServerThread,
                                                          oclient: ollama.Client) -> None:
    parts = list(oclient.generate(model=base_model(server), prompt="Count to fifty.",
                                  options={"num_predict": 7}, stream=True))
    final = parts[-1]
    assert final.done and final.done_reason == "length" and final.eval_count == 7
    streamed = list(openai.OpenAI(base_url=f"{server.url}/v1", api_key="x").chat.completions
                    .create(model="mirador:quick", messages=SAY, max_completion_tokens=4,
                            stream=True))
    assert [c.choices[0].finish_reason for c in streamed if c.choices][-1] == "length"


# -- refused with a 400 naming the field --------------------------------------------------


@pytest.mark.parametrize(("extra", "field"), [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"reasoning_effort": "high"}, "reasoning_effort"),
])
def test_openai_fields_mirador_cannot_honour_are_refused(oai: openai.OpenAI,
                                                         extra: dict, field: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="mirador:quick", messages=SAY, **extra)
    assert refused.value.status_code == 400 and field in str(refused.value)


def test_neutral_openai_values_are_accepted(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(
        model="mirador:quick", messages=SAY, n=1, logprobs=False, presence_penalty=0,
        frequency_penalty=0, max_tokens=3, user="someone", store=False,
        metadata={"k": "v"})
    assert reply.choices[0].message.content is not None


def test_an_image_is_refused_by_openai(oai: openai.OpenAI) -> None:
    picture: Any = [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="mirador:quick", messages=picture)
    assert "model 'mirador:quick' cannot see images" in str(refused.value)
    assert "tags: [vision]" in str(refused.value)


def test_an_unknown_role_is_refused(oai: openai.OpenAI, oclient: ollama.Client) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="mirador:quick", messages=[  # type: ignore[list-item]
            {"role": "narrator", "content": "Once"}, *SAY])
    assert "messages[0].role" in str(refused.value)
    with pytest.raises(ollama.ResponseError) as refused_o:
        oclient.chat(model="mirador:quick", messages=[{"role": "narrator", "content": "x"},
                                                      *SAY])
    assert "messages[0].role" in refused_o.value.error


@pytest.mark.parametrize(("body", "field"), [
    ({"options": {"min_p": 0.1}}, "options.min_p"),
    ({"options": {"mirostat": 2}}, "options.mirostat"),
    ({"options": {"num_thread": 2}}, "options.num_thread"),
    ({"options": {"presence_penalty": 1.0}}, "options.presence_penalty"),
    ({"options": {"num_ctx": 10**6}}, "options.num_ctx"),
    ({"think": True}, "think"),
    ({"suffix": "}"}, "suffix"),
    ({"raw": True}, "raw"),
    ({"template": "{{ .Prompt }}"}, "template"),
    ({"context": [1, 2, 3]}, "context"),
    ({"keep_alive": "soon"}, "keep_alive"),
    ({"images": ["iVBORw0KGgo="]}, "images"),
])
def test_ollama_generate_fields_mirador_cannot_honour_are_refused(
        server: ServerThread, body: dict, field: str) -> None:
    reply = httpx.post(f"{server.url}/api/generate", timeout=60, json={
        "model": "mirador:quick", "prompt": "Hi", "stream": False, **body})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"].startswith(field) or f"{field}:" in reply.json()["error"]


def test_ollama_images_are_refused_by_the_client(oclient: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        oclient.chat(model="mirador:quick", messages=[
            {"role": "user", "content": "What is this?", "images": [b"\x89PNG\r\n"]}])
    assert "images" in refused.value.error and "cannot see images" in refused.value.error


def test_show_says_what_a_model_can_do(oclient: ollama.Client, server: ServerThread) -> None:
    for name in ("mirador:auto", base_model(server)):
        assert oclient.show(name).capabilities == ["completion", "tools"]


def test_num_ctx_within_the_window_is_a_bound_on_the_prompt(server: ServerThread,
                                                            oclient: ollama.Client) -> None:
    reply = oclient.generate(model=base_model(server), prompt="Hi",
                             options={"num_ctx": 256, "num_predict": 2})
    assert reply.done
    with pytest.raises(ollama.ResponseError) as refused:
        oclient.generate(model=base_model(server), prompt="word " * 400,
                         options={"num_ctx": 256, "num_predict": 2})
    assert refused.value.status_code == 400 and "256" in refused.value.error


# -- keep_alive as Ollama documents it -----------------------------------------------------


def _expires(oclient: ollama.Client, model: str) -> datetime | None:
    found = [m for m in oclient.ps().models if m.model == model]
    return found[0].expires_at if found else None


def test_keep_alive_zero_unloads_after_the_answer(oclient: ollama.Client) -> None:
    reply = oclient.generate(model="tiny", prompt="hi", keep_alive=0, options={"num_predict": 3})
    assert reply.done and reply.response is not None
    assert "tiny" not in {m.model for m in oclient.ps().models}


def test_keep_alive_durations_set_the_expiry(oclient: ollama.Client) -> None:
    oclient.generate(model="tiny", prompt="hi", keep_alive="5m", options={"num_predict": 2})
    expires = _expires(oclient, "tiny")
    assert expires is not None
    assert 240 < (expires - datetime.now(UTC)).total_seconds() <= 300
    oclient.generate(model="tiny", prompt="hi", keep_alive=-1, options={"num_predict": 2})
    forever = _expires(oclient, "tiny")
    assert forever is not None and forever.year > 2300
    oclient.generate(model="tiny", prompt="hi", keep_alive=30, options={"num_predict": 2})
    soon = _expires(oclient, "tiny")
    assert soon is not None and 0 < (soon - datetime.now(UTC)).total_seconds() <= 30
    # that the manager unloads at the expiry is tested on its injected clock
    # (tests/models: the keep-alive tests), so no test waits for it in real time


@pytest.mark.parametrize(("value", "keep"), [
    (None, Keep()), (0, Keep(True, True)), ("0", Keep(True, True)), ("0s", Keep(True, True)),
    (-1, Keep(True)), ("-1m", Keep(True)), (30, Keep(True, seconds=30.0)),
    ("5m", Keep(True, seconds=300.0)), ("1h30m", Keep(True, seconds=5400.0)),
    ("1.5s", Keep(True, seconds=1.5)), ("300ms", Keep(True, seconds=0.3)),
])
def test_keep_alive_values_as_ollama_reads_them(value: Any, keep: Keep) -> None:
    assert keep_alive(value) == keep


@pytest.mark.parametrize("value", ["soon", "5 minutes", "m5", ""])
def test_keep_alive_that_is_not_a_duration_is_refused(value: str) -> None:
    with pytest.raises(BadRequestError, match="keep_alive"):
        keep_alive(value)


# -- exact usage ------------------------------------------------------------------------


def test_usage_counts_the_prompt_with_the_model_tokenizer(server: ServerThread,
                                                          oclient: ollama.Client,
                                                          oai: openai.OpenAI) -> None:
    model = base_model(server)
    reply = oclient.chat(model=model, messages=[{"role": "user", "content": "Say hi"}],
                         options={"num_predict": 4})
    expected = _prompt_tokens(server, model, "Say hi")
    assert expected > 3 and reply.prompt_eval_count == expected
    assert reply.eval_count == 4
    completion = oai.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hi"}], max_tokens=4)
    assert completion.usage and completion.usage.prompt_tokens == expected
    assert completion.usage.completion_tokens == 4


def _prompt_tokens(server: ServerThread, model: str, text: str) -> int:
    """The formatted prompt's length by the served model's own tokenizer."""
    from mirador.backends import Message

    backend: Any = server.runtime.orchestrator.manager.backend("llamacpp")
    loaded = backend._models[model]
    prompt = loaded.formatter([Message("user", text)])
    return len(loaded.llm.tokenize(prompt.text.encode(), add_bos=not prompt.has_bos,
                                   special=True))


def test_durations_have_ollama_meanings_and_ttft_is_separate(server: ServerThread) -> None:
    reply = httpx.post(f"{server.url}/api/chat", timeout=180, json={
        "model": "mirador:duo", "messages": SAY, "stream": False}).json()
    total = reply["total_duration"]
    parts = reply["prompt_eval_duration"] + reply["eval_duration"] + reply["load_duration"]
    assert reply["prompt_eval_duration"] > 0 and reply["eval_duration"] > 0
    assert parts <= total, "the parts of the time fit in the total"
    assert 0 < reply["ttft_duration"] < total
    assert reply["prompt_eval_count"] > 2 * len(SAY[0]["content"].split()), \
        "both stages' prompts (persona, examples, question) are counted"
