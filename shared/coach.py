"""The offline coach: an OpenAI-compatible chat server that needs no key and no network.

    .venv/bin/python shared/coach.py [--host 127.0.0.1] [--port 8002] [--token-delay 0.02]

Lessons 18-21 talk to an LLM through the official `openai` client. Pointed at this server
(OPENAI_BASE_URL=http://127.0.0.1:8002/v1, any OPENAI_API_KEY) they work offline: `make run`
starts it when a lesson's .env has no real key, and the tests start their own on a free port.
Lesson code never imports this file; it only talks HTTP to it, exactly as to OpenAI.

What it speaks (the subset of OpenAI's API the lessons use):
  POST /v1/chat/completions   {"model", "messages": [{"role", "content"}, ...], "stream"?}
                              -> a chat.completion object, or with "stream": true
                              text/event-stream lines `data: {chat.completion.chunk}`, a last
                              chunk with finish_reason "stop", then `data: [DONE]`
  GET  /v1/models             the one model, "coach" (any model name is accepted and echoed)

How it answers: like a patient interview coach, deterministically (the same conversation gets
the same answer), and visibly aware of the conversation it was sent: it counts the user's
messages and quotes the one before the latest, so a lesson's memory (19) can be seen. Answers
have several lines and blank lines, so streaming them (20, 21) must keep newlines intact.
Each token takes --token-delay seconds; the server is async, so 100 streams at once share it.

Controls for tests and benchmarks (lessons never use them):
  GET    /_coach/requests     the JSON bodies received at /v1/chat/completions, oldest first
  DELETE /_coach/requests     forget them
  GET    /_coach/stats        streams {"started", "completed", "cancelled"} (client went away)
  POST   /_coach/mode         {"mode": "ok" | "pause" | "error" | "slow" | "drop" | "cut" | "junk" |
                              "odd", "token_delay"?: s, "after"?: tokens, "seconds"?: s,
                              "shape"?: name}; every field is optional
      ok     normal answers
      pause  a stream sends "after" tokens (default 1), then holds the rest until the mode
             changes (or a reset), or "seconds" pass (default 3600); then the rest comes. A test
             looks at the app mid-answer for as long as it needs, then lets the answer finish.
             A plain answer: as ok
      error  HTTP 500 with an OpenAI-style error body; with "after": N, a stream sends N tokens
             first and then an error chunk `data: {"error": {...}}` (the openai client raises
             APIError)
      slow   waits "seconds" (default 3600) before answering: longer than any client timeout;
             a mode change or a reset ends the waits at once (those requests answer then)
      drop   sends "after" tokens (default 3; for a plain answer, half of its JSON) and then
             closes the connection mid-answer (the openai client raises APIConnectionError)
      cut    a stream sends "after" tokens (default 3) and then ends as a whole response does,
             but without its last chunk (the finish_reason) or `data: [DONE]`: an answer cut
             short by something between, such as a proxy's timeout. The openai client raises
             nothing; only the missing finish_reason tells. A plain answer: as drop
      junk   what a proxy or a captive portal in between may send: a plain answer is a 200
             HTML page (the openai client hands back its text, not a ChatCompletion); a stream
             sends "after" tokens (default 0) and then a `data:` line that is not JSON (the
             client raises a ValueError, JSONDecodeError)
      odd    JSON shaped like an answer outside but not inside, which the openai client takes
             without checking: by "shape", `choices` that is not a list ("choices", the default),
             a content that is a number, not text ("number"), text with a NUL character,
             which Postgres cannot store ("nul"), or a body that says it is JSON and is not
             ("broken": the client raises a ValueError, JSONDecodeError). A stream sends "after"
             tokens (default 0), then one such chunk, and ends
  POST   /_coach/reset        mode ok, the start-up token delay, no requests, stats zeroed
"""

import argparse
import asyncio
import collections
import json
import logging
import re
import time
import zlib

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "coach"
ROLES = {"system", "developer", "user", "assistant", "tool"}
MODES = {"ok", "pause", "error", "slow", "drop", "cut", "junk", "odd"}
ODD_SHAPES = {"choices", "number", "nul", "broken"}
BROKEN_JSON = '{"id": "chatcmpl-coach", "choices": ['  # mode odd, shape broken: JSON cut short
# What mode junk sends where an answer should be: a page, as a proxy or a captive portal would.
JUNK_PAGE = "<html><body><h1>Please sign in to the network</h1></body></html>"

# What a coach says, picked by the subject of the latest message (the first topic whose
# keyword it contains) or, failing that, by a checksum of it: deterministic, no randomness.
TOPICS = [
    (("yourself", "myself", "introduce", "introduction"),
     "Keep \"tell me about yourself\" to about a minute: present, past, future.",
     ["Present: your current role and one thing you are proud of.",
      "Past: the two experiences that led you here.",
      "Future: why this job is the natural next step."]),
    (("star", "behavioral", "behavioural", "conflict", "mistake", "failure"),
     "Answer behavioural questions with STAR: Situation, Task, Action, Result.",
     ["Situation and Task: two sentences of context, no more.",
      "Action: what you did yourself, in the first person.",
      "Result: a number or a concrete outcome, and what you learned."]),
    (("salary", "pay", "offer", "negotiat"),
     "Let them name a number first, and know your range before the call.",
     ["Research the range for the role and the city.",
      "Answer with a range whose bottom you would accept.",
      "Thank them, and ask for time to think about any offer."]),
    (("system design", "design", "architecture", "scale"),
     "In a design interview, ask about requirements before drawing any box.",
     ["Clarify users, load and what must never fail.",
      "Sketch the simplest design that works, then find its bottleneck.",
      "Say the trade-offs out loud: the interviewer grades your reasoning."]),
    (("python", "code", "coding", "algorithm", "leetcode"),
     "In a coding interview, think out loud and test your code with a small example.",
     ["Repeat the problem in your own words and ask about edge cases.",
      "Write the plain solution first, then improve it.",
      "Walk through one example by hand before saying you are done."]),
    (("nervous", "anxious", "stress", "afraid"),
     "Nerves are normal: prepare three stories you can tell about your work.",
     ["Practise them aloud, twice, with a timer.",
      "Breathe out slowly before you answer.",
      "It is fine to say: let me think about that for a moment."]),
]
GENERAL = [
    ("Prepare one short story for each line of the job description.",
     ["Read the job description and underline the skills.",
      "Find one example from your work for each skill.",
      "Practise telling each example in under two minutes."]),
    ("End every answer with what you learned: interviewers remember growth.",
     ["Pick a project you know well.",
      "Say what went wrong and what you changed.",
      "Finish with what you would do the same way next time."]),
    ("Ask the interviewer questions too: it shows you care about the job.",
     ["What does a good first month look like in this role?",
      "What is the team's biggest challenge right now?",
      "How do you measure success here?"]),
]
FOLLOW_UPS = [
    "Which role are you preparing for? Tell me, and we can practise a real question.",
    "Try answering it now in a few sentences, and I will give you feedback.",
    "What part of this feels hardest for you? We can work on that next.",
]


def text_of(content) -> str:
    """A message's text: a plain string, or OpenAI's list of parts [{"type": "text", "text"}]."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def quote(text: str, limit: int = 200) -> str:
    """The text on one line, cut to `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def answer(messages: list[dict]) -> str:
    """The coach's reply to a conversation: it depends only on the messages (deterministic)."""
    said = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    latest = said[-1] if said else ""
    checksum = zlib.crc32(latest.encode("utf-8", "surrogatepass"))
    lowered = latest.lower()
    tip, steps = next(((t, s) for words, t, s in TOPICS if any(w in lowered for w in words)),
                      GENERAL[checksum % len(GENERAL)])
    if len(said) <= 1:
        opening = [f'You wrote: "{quote(latest)}"',
                   "This is your first message in our conversation, so let us start there."]
    else:
        opening = [f'You wrote: "{quote(latest)}"',
                   f"This is message {len(said)} from you in our conversation. "
                   f'Before it you said: "{quote(said[-2])}"']
    lines = [*opening, "", tip, "", "Practise it in three steps:",
             *(f"{n}. {step}" for n, step in enumerate(steps, 1)), "",
             FOLLOW_UPS[(checksum // 7) % len(FOLLOW_UPS)]]
    return "\n".join(lines)


def tokens_of(text: str) -> list[str]:
    """Split like an LLM's tokens: words with their leading spaces, and runs of newlines.
    Joined again, they give back the text exactly."""
    return re.findall(r"[^\S\n]*[^\s]+|\n+|[^\S\n]+", text)


def openai_error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}},
                        status_code=status)


class Coach:
    """The server's state: its mode, what it received, how its streams ended."""

    def __init__(self, token_delay: float):
        self.start_delay = token_delay
        self.received: collections.deque = collections.deque(maxlen=2000)
        self.reset()

    def reset(self) -> None:
        self.mode, self.token_delay, self.after, self.seconds = "ok", self.start_delay, None, 3600.0
        self.shape = "choices"
        self.received.clear()
        self.stats = {"started": 0, "completed": 0, "cancelled": 0}
        self.counter = 0
        # A request that came before a reset (a test's slow stream, whose client gave up) may
        # start or end its stream after it: it counts in no stats but those of its own time.
        self.generation = getattr(self, "generation", 0) + 1

    def count(self, generation: int, key: str) -> None:
        if generation == self.generation:
            self.stats[key] += 1

    def next_id(self) -> str:
        self.counter += 1
        return f"chatcmpl-coach{self.counter}"


def create_app(token_delay: float = 0.0) -> Starlette:
    coach = Coach(token_delay)

    async def completions(request: Request):
        try:
            body = json.loads(await request.body())
        except ValueError:
            return openai_error(400, "The body is not valid JSON.", "invalid_request_error")
        if not isinstance(body, dict):
            return openai_error(400, "The body must be a JSON object.", "invalid_request_error")
        coach.received.append(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and m.get("role") in ROLES for m in messages):
            return openai_error(400, "'messages' must be a non-empty list of {role, content}, each role "
                                     f"one of {sorted(ROLES)}.", "invalid_request_error", "invalid_messages")
        model = body.get("model") if isinstance(body.get("model"), str) else MODEL
        mode, delay, after, generation = coach.mode, coach.token_delay, coach.after, coach.generation
        if mode == "slow":
            await wait_unless_gone(request, coach.seconds, lambda: coach.mode == "slow")
        if mode == "error" and not (body.get("stream") and after):
            return openai_error(500, "The offline coach was told to fail (mode error).", "server_error")
        if mode == "junk" and not body.get("stream"):
            return HTMLResponse(JUNK_PAGE)
        shape = coach.shape
        text = answer(messages)
        reply_id, created = coach.next_id(), int(time.time())
        usage = {"prompt_tokens": sum(len(text_of(m.get("content")).split()) for m in messages),
                 "completion_tokens": len(tokens_of(text))}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                stream(coach, generation, text, reply_id, created, model, usage if include_usage else None,
                       mode, delay, after, shape),
                media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        completion = {
            "id": reply_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": usage, "system_fingerprint": None,
        }
        await asyncio.sleep(delay * usage["completion_tokens"])  # as long as a stream of it takes
        if mode == "odd" and shape == "broken":
            return Response(BROKEN_JSON, media_type="application/json")
        if mode == "odd":
            completion["choices"] = odd_choices(shape, "message")
        if mode in ("drop", "cut"):
            encoded = json.dumps(completion).encode()
            return StreamingResponse(cut_off([encoded[: len(encoded) // 2]]), media_type="application/json")
        return JSONResponse(completion)

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [
            {"id": MODEL, "object": "model", "created": 0, "owned_by": "offline-coach"}]})

    async def requests_log(request: Request):
        if request.method == "DELETE":
            coach.received.clear()
            return JSONResponse({"deleted": True})
        return JSONResponse(list(coach.received))

    async def stats(request: Request):
        return JSONResponse(coach.stats)

    async def set_mode(request: Request):
        try:
            body = json.loads(await request.body() or b"{}")
            mode = body.get("mode", coach.mode)
            if mode not in MODES:
                raise ValueError(mode)
            token_delay = float(body.get("token_delay", coach.token_delay))
            after = body.get("after")
            after = None if after is None else int(after)
            seconds = float(body.get("seconds", 3600))
            shape = body.get("shape", "choices")
            if shape not in ODD_SHAPES:
                raise ValueError(shape)
        except (ValueError, TypeError, AttributeError):
            return JSONResponse({"detail": 'expected {"mode": "ok"|"pause"|"error"|"slow"|"drop"|"cut"|'
                                           '"junk"|"odd", "token_delay": s, "after": n, "seconds": s, '
                                           '"shape": "choices"|"number"|"nul"|"broken"}'}, status_code=400)
        coach.mode, coach.token_delay, coach.after, coach.seconds = mode, token_delay, after, seconds
        coach.shape = shape
        return JSONResponse({"mode": mode, "token_delay": token_delay, "after": after, "seconds": seconds,
                             "shape": shape})

    async def reset(request: Request):
        coach.reset()
        return JSONResponse({"mode": coach.mode, "token_delay": coach.token_delay})

    async def index(request: Request):
        return JSONResponse({"service": "offline coach (OpenAI-compatible)", "base_url": "/v1",
                             "mode": coach.mode, "token_delay": coach.token_delay})

    return Starlette(routes=[
        Route("/", index),
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/models", models),
        Route("/_coach/requests", requests_log, methods=["GET", "DELETE"]),
        Route("/_coach/stats", stats),
        Route("/_coach/mode", set_mode, methods=["POST"]),
        Route("/_coach/reset", reset, methods=["POST"]),
    ])


async def wait_unless_gone(request: Request, seconds: float, still) -> None:
    """Sleep `seconds`, but stop as soon as the client hangs up (its timeout) or `still()` is false."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and still() and not await request.is_disconnected():
        await asyncio.sleep(0.05)


async def hold(seconds: float, still) -> None:
    """Sleep `seconds`, but stop as soon as `still()` is false. (A stream's client that hangs up
    cancels its response, and this sleep with it.)"""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and still():
        await asyncio.sleep(0.01)


class Dropped(Exception):
    """Raised inside a response to make the server close the connection mid-answer."""


async def cut_off(parts):
    for part in parts:
        yield part
    raise Dropped


def sse(data) -> str:
    return f"data: {json.dumps(data)}\n\n"


def odd_choices(shape: str, key: str):
    """The `choices` of mode odd's answer (key "message") or chunk (key "delta")."""
    if shape == "choices":
        return "not a list"
    content = 42 if shape == "number" else "half\u0000way"
    return [{"index": 0, key: {"role": "assistant", "content": content}, "logprobs": None,
             "finish_reason": "stop"}]


async def stream(coach: Coach, generation: int, text, reply_id, created, model, usage, mode, delay, after,
                 shape="choices"):
    """The answer as OpenAI streams it: a chunk per token, a last chunk, then [DONE]."""

    def chunk(delta, finish=None):
        return {"id": reply_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    coach.count(generation, "started")
    finished, started = False, time.monotonic()
    fails_at = after if after is not None else 0 if mode in ("junk", "odd") else 3  # tokens sent before
    holds_at = (after if after is not None else 1) if mode == "pause" else None
    try:
        yield sse(chunk({"role": "assistant", "content": "", "refusal": None}))
        for n, token in enumerate(tokens_of(text)):
            if mode in ("error", "drop", "cut", "junk", "odd") and n == fails_at:
                if mode == "drop":
                    raise Dropped
                finished = True
                if mode == "odd" and shape == "broken":  # a chunk that is not JSON after all
                    yield f"data: {BROKEN_JSON}\n\n"
                    return
                if mode == "odd":  # a chunk that is JSON, but no chunk of an answer
                    yield sse({**chunk({}), "choices": odd_choices(shape, "delta")})
                    yield "data: [DONE]\n\n"
                    return
                if mode == "junk":  # a page where the next chunk should be: not JSON
                    yield f"data: {JUNK_PAGE}\n\n"
                    return
                if mode == "cut":  # the response ends here, cleanly: no last chunk, no [DONE]
                    return
                yield sse({"error": {"message": "The offline coach was told to fail mid-stream (mode error).",
                                     "type": "server_error", "param": None, "code": None}})
                return
            if n == holds_at:
                await hold(coach.seconds, lambda: coach.mode == "pause")
                started = time.monotonic() - n * delay  # the rest keeps its pace from here
            # Token n is due at start + (n + 1) * delay: time spent sending does not add up,
            # so an answer takes the same time whether 1 or 100 streams run at once.
            await asyncio.sleep(max(0.0, started + (n + 1) * delay - time.monotonic()))
            yield sse(chunk({"content": token}))
        yield sse(chunk({}, "stop"))
        if usage:
            yield sse({**chunk({}), "choices": [], "usage": usage})
        yield "data: [DONE]\n\n"
        finished = True
    finally:
        coach.count(generation, "completed" if finished else "cancelled")


class QuietDrops(logging.Filter):
    """Keep a deliberate drop (mode drop) out of the server log: it is not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], Dropped))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--token-delay", type=float, default=0.02,
                        help="seconds per token, streamed or not (default 0.02)")
    args = parser.parse_args()
    logging.getLogger("uvicorn.error").addFilter(QuietDrops())
    print(f"offline coach: OpenAI-compatible at http://{args.host}:{args.port}/v1 "
          f"({args.token_delay:g} s per token)", flush=True)
    # warning: no line per request (the API's own log is the one to read); a short grace at
    # shutdown, so a slow-mode request never holds Ctrl-C up. Idle connections stay open 75 s,
    # not uvicorn's 5: a client's pool may hand out a connection just as the server closes it,
    # and the openai client of lessons 18 on tries once (max_retries=0): under load (a busy
    # event loop takes longer to use what it picked) that race failed a few chats in every
    # make bench-ship run with 5 s.
    uvicorn.run(create_app(args.token_delay), host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=1, timeout_keep_alive=75)


if __name__ == "__main__":
    main()
