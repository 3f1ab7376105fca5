"""The coach's brain: a large language model (LLM), reached through the official openai client."""

import logging
from collections.abc import AsyncIterator

from fastapi import HTTPException
from openai import APIError, APITimeoutError, AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletion

from app.config import Settings

logger = logging.getLogger(__name__)

# The system message: instructions the user never sees, sent first in every conversation.
# It decides who the model is for our app.
SYSTEM_PROMPT = (
    "You are AI Interview Coach, a patient and encouraging job interview coach. "
    "Help the user prepare for interviews: ask which role they are preparing for, suggest how "
    "to structure answers (for example with STAR: situation, task, action, result), and give "
    "short, concrete, honest feedback. Stay on interviews and careers; keep answers brief."
)

# What the user is told when the model fails (a 502 or 504, an error event or frame).
NO_KEY = "No LLM configured: set OPENAI_API_KEY in .env"
TOO_SLOW = "The coach took too long to answer, try again"
UNAVAILABLE = "The coach is unavailable, try again later"


class LLM:
    """The model, with the two clients that reach it; one LLM for the whole app.

    main.py's lifespan makes it when the app starts and closes it when the app stops; endpoints
    get it as a dependency (LLMDep in deps.py), so a test can hand them another one.
    """

    def __init__(self, settings: Settings):
        # Which model answers. Any chat model your key may use works: OpenAI's own names, or
        # the name of a local model when OPENAI_BASE_URL points at a server such as Ollama.
        self.model = settings.OPENAI_MODEL
        # How long one answer may take, in seconds, before the user gets a 504 instead.
        self.timeout = settings.OPENAI_TIMEOUT
        # No key, no clients: the chat answers 502 and says why.
        self.client: OpenAI | None = None
        # The same client in its async form, for streamed answers: its calls are awaited, so
        # while it waits for the model's next token the event loop serves everyone else.
        self.async_client: AsyncOpenAI | None = None
        if settings.OPENAI_API_KEY:
            # Each client keeps its connections open between requests, until close().
            # base_url: OpenAI's API by default; any server that speaks the same API works too.
            # max_retries=0: the client would otherwise try again up to twice, and a user could
            # wait three times OPENAI_TIMEOUT. One try, and a clear error they can retry.
            options = {"api_key": settings.OPENAI_API_KEY.get_secret_value(),
                       "base_url": str(settings.OPENAI_BASE_URL), "timeout": self.timeout, "max_retries": 0}
            self.client = OpenAI(**options)
            self.async_client = AsyncOpenAI(**options)

    async def close(self) -> None:
        """Closes the clients' connections (the lifespan calls this when the app stops)."""
        if self.client is not None:
            self.client.close()
        if self.async_client is not None:
            await self.async_client.close()

    def ask(self, messages: list[dict]) -> str:
        """The model's answer to a conversation: a list of {"role", "content"} messages.

        The LLM is a service on the network, and it can fail like one. Its failures become short
        answers our own client understands, never a traceback:
          504 Gateway Timeout  it did not answer within OPENAI_TIMEOUT seconds
          502 Bad Gateway      anything else: unreachable, a wrong key, an error on its side
        """
        if self.client is None:
            raise HTTPException(status_code=502, detail=NO_KEY)
        try:
            completion = self.client.chat.completions.create(model=self.model, messages=messages)
        except APITimeoutError:
            logger.warning("LLM call timed out after %s s", self.timeout)
            raise HTTPException(status_code=504, detail=TOO_SLOW) from None
        # APIError: the parent of the client's errors for a call that failed (connection,
        # timeout, status); ValueError: an answer that is not even JSON.
        except (APIError, ValueError) as error:
            # The error's kind and status say enough; its text may repeat what the user wrote.
            logger.warning("LLM call failed: %s %s", type(error).__name__, getattr(error, "status_code", ""))
            raise HTTPException(status_code=502, detail=UNAVAILABLE) from None
        reply = text_of(completion)
        if reply is None:
            logger.warning("LLM call failed: the answer is not a chat completion")
            raise HTTPException(status_code=502, detail=UNAVAILABLE)
        if not reply:  # a refusal or an empty answer: nothing to show
            raise HTTPException(status_code=502, detail="The coach gave no answer, try again")
        return reply

    async def stream(self, messages: list[dict]) -> AsyncIterator[str]:
        """The model's answer to a conversation, piece by piece (tokens) as the model writes it.

        Fails like ask(), with an HTTPException 502 or 504; that may happen before the first piece
        or half-way through. OPENAI_TIMEOUT now limits each wait for the next piece.
        """
        if self.async_client is None:
            raise HTTPException(status_code=502, detail=NO_KEY)
        pieces, finished = 0, False
        try:
            # stream=True: the call returns as soon as the model starts; the answer follows in chunks.
            response = await self.async_client.chat.completions.create(model=self.model, messages=messages,
                                                                       stream=True)
            # async with: however this generator ends (the last chunk, an error, or the caller
            # closing it because the user went away), the connection to the model is closed, and
            # the model stops writing an answer nobody will read.
            async with response:
                async for chunk in response:
                    piece, done = piece_of(chunk)
                    finished = finished or done
                    if piece:  # the first and last chunks carry no text
                        pieces += 1
                        yield piece
        except APITimeoutError:
            logger.warning("LLM stream timed out after %s s", self.timeout)
            raise HTTPException(status_code=504, detail=TOO_SLOW) from None
        # ValueError: a chunk that is not JSON (a page), or JSON but no chunk of an answer (piece_of)
        except (APIError, ValueError) as error:
            logger.warning("LLM stream failed: %s %s",
                           type(error).__name__, getattr(error, "status_code", ""))
            raise HTTPException(status_code=502, detail=UNAVAILABLE) from None
        if pieces == 0:
            raise HTTPException(status_code=502, detail="The coach gave no answer, try again")
        # The stream ended, but the model never said it had finished: its last chunk carries a
        # finish_reason. Something between (a proxy's timeout, say) cut the answer short, and the
        # openai client does not notice a stream that ends cleanly before its [DONE]. Half an
        # answer is not an answer: nothing is stored, and the user is told.
        if not finished:
            logger.warning("LLM stream ended before the model finished its answer")
            raise HTTPException(status_code=502, detail=UNAVAILABLE)


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


def piece_of(chunk) -> tuple[str | None, bool]:
    """A streamed chunk's text (None for none), and whether the model says with it that the
    answer is complete (a finish_reason: "stop", ...). ValueError for a chunk that is JSON but
    no chunk of an answer, as text_of() finds them in a whole answer."""
    try:
        choice = chunk.choices[0] if chunk.choices else None
        piece, finished = (choice.delta.content, bool(choice.finish_reason)) if choice else (None, False)
    except (AttributeError, IndexError, KeyError, TypeError):
        raise ValueError("a chunk that is no chunk of an answer") from None
    if piece is not None and not usable(piece):
        raise ValueError("a chunk whose content is not text we can use")
    return piece, finished
