"""The coach's brain: a large language model (LLM), reached through the official openai client."""

import logging
import os

from dotenv import load_dotenv
from fastapi import HTTPException
from openai import APIError, APITimeoutError, OpenAI
from openai.types.chat import ChatCompletion

# Copy the settings from the .env file into the environment (variables already set win).
load_dotenv()

logger = logging.getLogger(__name__)

# Which model answers. Any chat model your key may use works: OpenAI's own names, or the name
# of a local model when OPENAI_BASE_URL points at a server such as Ollama.
MODEL = os.getenv("OPENAI_MODEL") or "gpt-4o-mini"
# How long one answer may take, in seconds, before the user gets a 504 instead.
TIMEOUT = float(os.getenv("OPENAI_TIMEOUT") or "30")

# The system message: instructions the user never sees, sent first in every conversation.
# It decides who the model is for our app.
SYSTEM_PROMPT = (
    "You are AI Interview Coach, a patient and encouraging job interview coach. "
    "Help the user prepare for interviews: ask which role they are preparing for, suggest how "
    "to structure answers (for example with STAR: situation, task, action, result), and give "
    "short, concrete, honest feedback. Stay on interviews and careers; keep answers brief."
)

# One client for the whole app: it keeps its connections open between requests.
# The key is a secret (like JWT_SECRET): it lives in .env, never in the code or in git.
# base_url: OpenAI's API by default; any server that speaks the same API works too (the
# course's offline coach, Ollama, ...). Written out here, so an empty OPENAI_BASE_URL= line in
# .env means "the default" too.
# max_retries=0: the client would otherwise try again up to twice, and a user could wait three
# times OPENAI_TIMEOUT. One try, and a clear error they can retry themselves.
API_KEY = os.getenv("OPENAI_API_KEY")
client: OpenAI | None = None  # no key, no client: the chat answers 502 and says why
if API_KEY:
    client = OpenAI(
        api_key=API_KEY,
        base_url=os.getenv("OPENAI_BASE_URL") or "https://api.openai.com/v1",
        timeout=TIMEOUT,
        max_retries=0,
    )


def ask(messages: list[dict]) -> str:
    """The model's answer to a conversation: a list of {"role", "content"} messages.

    The LLM is a service on the network, and it can fail like one. Its failures become short
    answers our own client understands, never a traceback:
      504 Gateway Timeout  it did not answer within OPENAI_TIMEOUT seconds
      502 Bad Gateway      anything else: unreachable, a wrong key, an error on its side
    """
    if client is None:
        raise HTTPException(status_code=502, detail="No LLM configured: set OPENAI_API_KEY in .env")
    try:
        completion = client.chat.completions.create(model=MODEL, messages=messages)
    except APITimeoutError:
        logger.warning("LLM call timed out after %s s", TIMEOUT)
        raise HTTPException(status_code=504, detail="The coach took too long to answer, try again") from None
    # APIError: the parent of the client's errors for a call that failed (connection,
    # timeout, status); ValueError: an answer that is not even JSON.
    except (APIError, ValueError) as error:
        # The error's kind and status say enough; its text may repeat what the user wrote.
        logger.warning("LLM call failed: %s %s", type(error).__name__, getattr(error, "status_code", ""))
        raise HTTPException(status_code=502, detail="The coach is unavailable, try again later") from None
    reply = text_of(completion)
    if reply is None:
        logger.warning("LLM call failed: the answer is not a chat completion")
        raise HTTPException(status_code=502, detail="The coach is unavailable, try again later")
    if not reply:  # a refusal or an empty answer: nothing to show
        raise HTTPException(status_code=502, detail="The coach gave no answer, try again")
    return reply


def text_of(completion) -> str | None:
    """The answer's text ("" for none), or None when the body is no answer we can use.

    The client trusts the server: it builds its objects from whatever JSON came, without
    checking their shape. So a 200 may hold anything. A proxy or a captive portal between us
    and the model may answer with a page (the client hands back its text, not a ChatCompletion);
    a server that is not quite OpenAI may send `choices` that is not a list of messages, a
    content that is not text, or text no database or JSON can carry (a NUL character, half of
    a UTF-16 pair). Each would be a 500 further on; here each is an answer that did not come.
    """
    if not isinstance(completion, ChatCompletion):
        return None
    try:
        text = completion.choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):  # no list of messages inside
        return None
    if text is None:  # a refusal: no text
        return ""
    return text if usable(text) else None


def usable(text) -> bool:
    """Text we can store in Postgres and send as UTF-8."""
    if not isinstance(text, str) or "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
