"""Open WebUI's background requests, replayed: one quick stage each, nothing remembered.

The prompt texts below are Open WebUI's default task templates (backend/open_webui/
config.py: DEFAULT_TITLE_GENERATION_PROMPT_TEMPLATE, DEFAULT_TAGS_GENERATION_PROMPT_TEMPLATE,
DEFAULT_FOLLOW_UP_GENERATION_PROMPT_TEMPLATE), with the chat history filled in as Open
WebUI fills it (`USER: ...` / `ASSISTANT: ...`). The bodies are what it sends for each
task: one user message, `"stream": false`, and its task metadata, to /api/chat for an
Ollama connection (after its OpenAI-to-Ollama conversion: max_tokens becomes
options.num_predict) and to /v1/chat/completions for an OpenAI one.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from mirador.backends import ChatRequest
from mirador.learning.store import LearningStore
from tests.server.conftest import ServerThread
from tests.server.test_native import wait_until

HISTORY = ("USER: Why is the sky blue?\n"
           "ASSISTANT: Sunlight scatters off air molecules, and blue light scatters most.")

TITLE = """### Task:
Generate a concise title summarizing the chat history.
### Guidelines:
- The title should clearly represent the main theme or subject of the conversation.
- Keep it short: 2-4 words is best.
- Do not use emojis, quotation marks, or special formatting.
- Write the title in the chat's primary language; default to English if multilingual.
- Prioritize accuracy over creativity.
- Your entire response must consist solely of the JSON object, without any introductory or concluding text.
- The output must be a single, raw JSON object, without any markdown code fences or other encapsulating text.
- Ensure no conversational text, affirmations, or explanations precede or follow the raw JSON output, as this will cause direct parsing failure.
### Output:
JSON format: { "title": "your concise title here" }
### Examples:
- { "title": "Stock Trends" },
- { "title": "Chocolate Chip Cookies" },
- { "title": "Music Streaming" },
- { "title": "Remote Work" }
### Chat History:
<chat_history>
HISTORY
</chat_history>"""  # noqa: E501

TAGS = """### Task:
Generate 1-3 broad tags categorizing the main themes of the chat history, along with 1-3 more specific subtopic tags.

### Guidelines:
- Start with high-level domains (e.g. Science, Technology, Philosophy, Arts, Politics, Business, Health, Sports, Entertainment, Education)
- Consider including relevant subfields/subdomains if they are strongly represented throughout the conversation
- If content is too short (less than 3 messages) or too diverse, use only ["General"]
- Use the chat's primary language; default to English if multilingual
- Prioritize accuracy over specificity

### Output:
JSON format: { "tags": ["tag1", "tag2", "tag3"] }

### Chat History:
<chat_history>
HISTORY
</chat_history>"""  # noqa: E501

FOLLOW_UPS = """### Task:
Suggest 3-5 relevant follow-up questions or prompts that the user might naturally ask next in this conversation as a **user**, based on the chat history, to help continue or deepen the discussion.
### Guidelines:
- Write all follow-up questions from the user’s point of view, directed to the assistant.
- Make questions concise, clear, and directly related to the discussed topic(s).
- Only suggest follow-ups that make sense given the chat content and do not repeat what was already covered.
- If the conversation is very short or not specific, suggest more general (but relevant) follow-ups the user might ask.
- Use the conversation's primary language; default to English if multilingual.
- Response must be a JSON object with a "follow_ups" key containing an array of strings, no extra text or formatting.
### Output:
JSON format: { "follow_ups": ["Question 1?", "Question 2?", "Question 3?"] }
### Chat History:
<chat_history>
HISTORY
</chat_history>"""  # noqa: E501

TASKS = {"title_generation": (TITLE, "title"), "tags_generation": (TAGS, "tags"),
         "follow_up_generation": (FOLLOW_UPS, "follow_ups")}


def ollama_body(model: str, task: str) -> dict[str, Any]:
    prompt = TASKS[task][0].replace("HISTORY", HISTORY)
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": False,
            "options": {"num_predict": 1000},
            "metadata": {"task": task, "chat_id": "c1", "agent_or_task_prompt": True}}


def openai_body(model: str, task: str) -> dict[str, Any]:
    body = ollama_body(model, task)
    del body["options"]
    return {**body, "max_completion_tokens": 1000}


def _quick_model(server: ServerThread) -> str:
    orchestrator = server.runtime.orchestrator
    return orchestrator.resolve(orchestrator.stages[0]).model.id


@pytest.mark.parametrize("task", list(TASKS))
def test_open_webui_task_on_ollama_is_one_constrained_stage(
        server: ServerThread, requests_seen: list[ChatRequest], task: str) -> None:
    reply = httpx.post(f"{server.url}/api/chat", json=ollama_body("mirador:auto", task),
                       timeout=120)
    assert reply.status_code == 200, reply.text
    key = TASKS[task][1]
    value = json.loads(reply.json()["message"]["content"])[key]  # what Open WebUI parses
    assert value, f"an empty {key}"
    assert len(requests_seen) == 1, "one stage, not the chain"
    request = requests_seen[0]
    assert request.model.id == _quick_model(server)
    assert request.format is not None and request.format.schema is not None
    assert request.messages[0].role == "user", "no persona's system prompt"
    asked = request.messages[0].content
    assert "### Guidelines" not in asked and "sky blue" in asked, "one plain instruction"
    assert request.options.max_tokens is not None and request.options.max_tokens <= 256
    assert request.options.temperature == 0.0, "greedy"


def test_a_title_is_about_the_chat_not_the_template(server: ServerThread) -> None:
    reply = httpx.post(f"{server.url}/api/chat", json=ollama_body("mirador:auto",
                                                                  "title_generation"),
                       timeout=120)
    title = json.loads(reply.json()["message"]["content"])["title"]
    assert "your concise title" not in title.lower() and "json" not in title.lower()
    assert 0 < len(title.split()) <= 12, title


def test_open_webui_task_on_openai_and_the_task_model(server: ServerThread,
                                                      requests_seen: list[ChatRequest]) -> None:
    reply = httpx.post(f"{server.url}/v1/chat/completions", timeout=120,
                       json=openai_body("mirador:duo", "title_generation"))
    assert json.loads(reply.json()["choices"][0]["message"]["content"])["title"]
    plain = httpx.post(f"{server.url}/api/generate", timeout=120,
                       json={"model": "mirador:task", "prompt": "Say hi.", "stream": False})
    assert plain.status_code == 200 and plain.json()["response"]
    assert len(requests_seen) == 2 and requests_seen[1].format is None


def test_tasks_leave_no_memory_and_no_learning_record(server: ServerThread) -> None:
    for task in TASKS:
        reply = httpx.post(f"{server.url}/api/chat", json=ollama_body("mirador:auto", task),
                           timeout=120)
        assert reply.status_code == 200
    marker = f"zebra{uuid.uuid4().hex[:6]}"  # a person's question, asked after the tasks
    question = [{"role": "user", "content": f"Is {marker} a word?"}]
    control = httpx.post(f"{server.url}/v1/chat/completions", timeout=120,
                         json={"model": "mirador:quick", "messages": question})
    answer_id = control.json()["id"].removeprefix("chatcmpl-")
    store = LearningStore.in_home(server.runtime.settings.home)
    try:
        def learned() -> list[str]:
            return [row["query"] for row in store.answers_table()]

        def remembered() -> str:
            return httpx.get(f"{server.url}/mirador/memory", params={"limit": 200},
                             timeout=60).text

        # sinks are told in order, so once the later question is kept, the tasks would be too
        assert wait_until(lambda: any(marker in q for q in learned())), "learning works"
        assert wait_until(lambda: answer_id in remembered()), "memory works"
        assert not [q for q in learned() if "### Task" in q]
        assert "### Task" not in remembered()
    finally:
        store.close()
