"""What the LLM sends back, read by app/llm.py: an answer's text, a streamed chunk's piece.

The openai client builds its objects from whatever JSON the server sent, without checking
them; these tests hand text_of() and piece_of() such objects directly, no server needed.
"""

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from app.llm import piece_of, text_of


def completion(content) -> ChatCompletion:
    return ChatCompletion.model_validate({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
    })


def chunk(content=None, finish_reason=None, choices=True) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate({
        "id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": finish_reason, "delta": {"content": content}}]
                   if choices else [],
    })


def test_an_answers_text_is_its_content():
    assert text_of(completion("Start with the basics.")) == "Start with the basics."
    assert text_of(completion(None)) == ""  # a refusal: no text, but an answer


@pytest.mark.parametrize("answer", [
    "<html>sign in to the network</html>",  # a proxy's page: the client hands back its text
    ChatCompletion.model_construct(choices="not a list"),  # JSON that is no answer inside
    ChatCompletion.model_construct(choices=[]),
    completion("half\x00way"),  # Postgres cannot store a NUL character
    completion("half\ud800"),  # half of a UTF-16 pair: no UTF-8 for it
], ids=["a page", "choices not a list", "no choices", "a NUL", "a lone surrogate"])
def test_what_is_no_answer_has_no_text(answer):
    assert text_of(answer) is None


def test_a_chunks_piece_and_whether_the_model_has_finished():
    assert piece_of(chunk("Start")) == ("Start", False)
    assert piece_of(chunk(finish_reason="stop")) == (None, True)
    assert piece_of(chunk(choices=False)) == (None, False)  # the usage chunk at the end


@pytest.mark.parametrize("odd", [
    ChatCompletionChunk.model_construct(choices="not a list"),
    chunk("half\x00way"),
], ids=["choices not a list", "a NUL"])
def test_a_chunk_that_is_no_chunk_of_an_answer_is_a_value_error(odd):
    with pytest.raises(ValueError):
        piece_of(odd)
