from datetime import datetime
from itertools import count

from fastapi import FastAPI
from fastapi.responses import JSONResponse

# The application object: `uvicorn main:app` means "the app in main.py".
app = FastAPI()

# The users live in memory: a dict from id to profile. They vanish when the server stops.
users: dict[int, dict] = {}
# Hands out 1, 2, 3, ...: every new user gets a number no one has had before.
next_id = count(1)
ROLES = ("developer", "designer", "product-manager")
MAX_LENGTH = 100  # characters: without a limit, one request could store megabytes


def is_text(value: str) -> bool:
    """False for a string that cannot be written as UTF-8: JSON can spell "\ud800", half of a
    character pair, and a profile holding it could never be sent back (every GET a 500)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def find_problem(user: dict) -> str | None:
    """Checks a profile by hand; returns what is wrong with it, or None when it is fine."""
    if not isinstance(user.get("name"), str):
        return "name must be a string"
    if user.get("role") not in ROLES:
        return f"role must be one of: {', '.join(ROLES)}"
    place = user.get("place")
    if not isinstance(place, str) or not place.strip():
        return "place must be a non-empty string"
    for field in ("name", "place"):
        if len(user[field]) > MAX_LENGTH:
            return f"{field} must be at most {MAX_LENGTH} characters"
        if not is_text(user[field]):
            return f"{field} must be valid Unicode text"
    return None


def bad_request(problem: str) -> JSONResponse:
    return JSONResponse(status_code=400, content={"error": problem})


def not_found() -> JSONResponse:
    return JSONResponse(status_code=404, content={"error": "User not found"})


# A GET request to /api/time runs this function; its return value is sent back as JSON.
# `name` is not part of the path, so FastAPI reads it from the query string:
# /api/time?name=alan. The default None makes it optional.
@app.get("/api/time")
def get_time(name: str | None = None):
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    if name:
        return {"message": f"Hi {name}! It's {now}"}
    return {"time": now}


# A `dict` parameter is read from the JSON body of the request.
# status_code=201 is the answer for "created".
# A JSONResponse we return (400 below) overrides it.
@app.post("/api/users", status_code=201)
def create_user(user: dict):
    problem = find_problem(user)
    if problem:
        return bad_request(problem)
    user_id = next(next_id)
    users[user_id] = {"name": user["name"], "role": user["role"], "place": user["place"]}
    return {"id": user_id, "message": "User profile saved!"}


# {user_id} in the path becomes the argument; the `int` annotation converts "1" to 1.
@app.get("/api/users/{user_id}")
def get_user(user_id: int):
    if user_id not in users:
        return not_found()
    return {"id": user_id, **users[user_id]}


# PUT replaces the profile of an existing user.
@app.put("/api/users/{user_id}")
def update_user(user_id: int, user: dict):
    if user_id not in users:
        return not_found()
    problem = find_problem(user)
    if problem:
        return bad_request(problem)
    users[user_id].update(name=user["name"], role=user["role"], place=user["place"])
    return {"id": user_id, **users[user_id]}


# The id of a deleted user is never handed out again: next_id only counts up.
@app.delete("/api/users/{user_id}")
def delete_user(user_id: int):
    if user_id not in users:
        return not_found()
    del users[user_id]
    return {"message": "User deleted"}
