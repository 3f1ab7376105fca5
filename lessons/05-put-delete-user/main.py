import json
from datetime import datetime
from itertools import count

from fastapi import FastAPI, HTTPException

# The application object: `uvicorn main:app` means "the app in main.py".
app = FastAPI()

# The users live in memory: a dict from id to profile. They vanish when the server stops.
users: dict[int, dict] = {}
# Hands out 1, 2, 3, ...: every new user gets a number no one has had before.
next_id = count(1)


# JSON lets a client write values that Python reads but the app's JSON answer cannot send back:
# "\ud800" (half of a character pair, not text) or NaN. Stored, they would make every GET of
# that user crash with a 500, so they are refused now: raising HTTPException answers 400 and
# stores nothing.
def sendable(profile: dict) -> dict:
    """The profile, if it can be sent back as JSON; otherwise a 400 answer."""
    try:
        json.dumps(profile, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:  # what both failures raise (UnicodeEncodeError is a ValueError)
        raise HTTPException(status_code=400, detail="The profile cannot be sent back as JSON") from None
    return profile


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
@app.post("/api/users")
def create_user(user: dict):
    profile = sendable({"name": user["name"], "role": user["role"], "place": user["place"]})
    user_id = next(next_id)
    users[user_id] = profile
    return {"id": user_id, "message": "User profile saved!"}


# {user_id} in the path becomes the argument; the `int` annotation converts "1" to 1.
@app.get("/api/users/{user_id}")
def get_user(user_id: int):
    return {"id": user_id, **users[user_id]}


# PUT replaces the profile of an existing user. users[user_id] fails for an unknown id:
# lesson 06 turns that crash into a proper 404.
@app.put("/api/users/{user_id}")
def update_user(user_id: int, user: dict):
    profile = users[user_id]
    profile.update(sendable({"name": user["name"], "role": user["role"], "place": user["place"]}))
    return {"id": user_id, **profile}


# The id of a deleted user is never handed out again: next_id only counts up.
@app.delete("/api/users/{user_id}")
def delete_user(user_id: int):
    del users[user_id]
    return {"message": "User deleted"}
