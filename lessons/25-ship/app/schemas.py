"""The shapes of what goes in and out of the API: Pydantic models, checked by FastAPI.

Not to be confused with models.py: those are the database's tables (SQLAlchemy).
"""

from datetime import datetime
from typing import Annotated

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

# Postgres cannot store the NUL character in text: refuse it up front (422), not later (500).
NO_NUL = r"^[^\x00]*$"


# bcrypt reads at most 72 bytes (not characters: "é" is 2 bytes, an emoji 4) and refuses
# longer input. Saying so here gives a clear 422 instead of a crash or a silently cut password.
# A plain function, so that signup and login share it.
def fits_bcrypt(password: str) -> str:
    if len(password.encode("utf-8")) > 72:
        raise ValueError("password must be at most 72 bytes long (UTF-8)")
    return password


# EmailStr checks an address properly (the email-validator package): "ada..l@example.com" or
# "ada@-example.com" get a 422 that a hand-written pattern let through.
# In the OpenAPI document EmailStr is only `"format": "email"`, and email-validator refuses
# more than that promises: a domain without a dot (ada@localhost), one whose last part does not
# end in a letter (ada@host.123), a quoted name ("a b"@example.com), an [IP address], and the
# special-use domains no mail can reach (ada@lab.test, ada@printer.local, ...). So the schema
# says it too, in words and in a pattern any client or fuzzer can check. A JSON Schema pattern
# has no "ignore case" flag: each letter of those names is written both ways, [Tt][Ee][Ss][Tt].
SPECIAL_USE = "|".join("".join(f"[{c.upper()}{c}]" for c in name) for name in SPECIAL_USE_DOMAIN_NAMES)
EMAIL_PATTERN = (r'^[^@"]+'  # the name: no quotes
                 rf"@(?!(.*\.)?({SPECIAL_USE})$)"  # a domain that is not special-use...
                 r"[^@\[\]]+\.[^@\[\]]*[A-Za-z]$")  # ...with a dot, ending in a letter, no [IP]
EMAIL_RULE = ("An address email-validator accepts: no quoted name or [IP address], a dot in the domain, "
              "a last part ending in a letter, and no special-use domain (" + ", ".join(
                  f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES) + ")")
# Emails are compared without regard to case: we store and look them up in lower case.
Email = Annotated[EmailStr, Field(description=EMAIL_RULE,
                                  json_schema_extra={"pattern": EMAIL_PATTERN, "maxLength": 254}),
                  AfterValidator(str.lower)]
PASSWORD_RULE = "6 to 72 characters, and at most 72 bytes in UTF-8 (bcrypt's limit)"
Password = Annotated[str, Field(min_length=6, max_length=72, pattern=NO_NUL, description=PASSWORD_RULE),
                     AfterValidator(fits_bcrypt)]


# The model describes a valid profile. FastAPI checks every request body against it and
# answers 422, with a `detail` naming each broken rule, before our function even runs.
class User(BaseModel):
    name: str = Field(min_length=2, max_length=10, pattern=NO_NUL)
    email: Email


# An error answer, {"detail": "..."}. Listing the errors an endpoint can give in `responses=`
# puts them in the OpenAPI document (/docs) beside the success; FastAPI lists 422 by itself.
class Problem(BaseModel):
    detail: str


# A body too large to be read at all: refused before any endpoint runs, so every operation may
# answer it, with a body or without (main.py says so once, for all of them).
TOO_LARGE = {413: {"model": Problem, "description": "The body is over MAX_BODY_BYTES: refused unread"}}
# Every endpoint with a body: one that cannot be read, or one too large to be read at all.
UNREADABLE = {400: {"model": Problem, "description": "The body could not be read (not UTF-8)"}, **TOO_LARGE}
DB_DOWN = {503: {"model": Problem, "description": "The database cannot be reached, or is not migrated"}}
WRONG_LOGIN = {401: {"model": Problem, "description": "Wrong email or password"}}
NOT_LOGGED_IN = {401: {"model": Problem, "description": "No token, or a bad or expired one: log in (again)"}}
EMAIL_TAKEN = {409: {"model": Problem, "description": "Another account has this email"}}
TOO_MANY = {429: {"model": Problem, "description": "A limit is reached: try again after Retry-After seconds",
                  "headers": {"Retry-After": {"description": "Seconds until a new try can succeed",
                                              "schema": {"type": "integer"}}}}}
WRONG_PASSWORD = {403: {"model": Problem, "description": "current_password is not the account's password"}}
LLM_DOWN = {502: {"model": Problem, "description": "The LLM failed, or none is configured"},
            504: {"model": Problem, "description": "The LLM did not answer within OPENAI_TIMEOUT seconds"}}


# What a signup sends: the profile plus a password.
class UserCreate(User):
    password: Password


# What a login sends. A wrong password is a 401; one that no account can have (too short for
# signup, too long for bcrypt) is a 422, like any other broken rule.
class LoginForm(BaseModel):
    email: Email
    password: Password


# What PUT /api/me accepts: any of the three, each optional. `str | None = None` (the older
# spelling is Optional[str] = None) means "may be left out"; what is left out stays as it is.
# Changing the email or the password also needs the current password: a token is not enough
# (it may have been copied from a browser left open), and whoever holds the email and password
# owns the account.
class UserUpdate(BaseModel):
    # In the OpenAPI document: sending email or password makes current_password required
    # (JSON Schema's dependentRequired), so that a client or a fuzzer reading it knows the rule.
    model_config = ConfigDict(json_schema_extra={"dependentRequired": {"email": ["current_password"],
                                                                       "password": ["current_password"]}})

    name: str | None = Field(default=None, min_length=2, max_length=10, pattern=NO_NUL)
    email: Email | None = None
    password: Password | None = None
    # Not nullable: sent, it is a password. (Left out, it is None, as the other fields.)
    current_password: Password = Field(
        default=None, description="The account's password now; needed to change the email or the password")

    @model_validator(mode="after")
    def current_password_given(self) -> "UserUpdate":
        if (self.email is not None or self.password is not None) and self.current_password is None:
            raise ValueError("current_password is needed to change the email or the password")
        return self


# What the API sends back: never the password, never its hash. `response_model=UserOut`
# filters every answer through this model, whatever the function returns.
# from_attributes lets Pydantic read a SQLAlchemy object (user.name) as well as a dict.
class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str | None  # users from before lesson 15 have none yet


# What the chat page sends: one message, 1 to 4000 characters once the spaces around it are
# stripped (a message of only spaces is no message). The limit keeps each call to the LLM,
# which is paid for by the token, to a sane size.
class ChatIn(BaseModel):
    message: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000,
                                              pattern=NO_NUL)]


class ChatOut(BaseModel):
    reply: str


# The first frame on the chat socket: who is there.
class SocketLogin(BaseModel):
    token: str


# One message of the history, read from a models.Message (from_attributes). The id is what
# a client sends back as `before` to get the messages before it.
class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    role: str
    content: str
    created_at: datetime
