from datetime import datetime
from itertools import count

from fastapi import FastAPI

# The application object: `uvicorn main:app` means "the app in main.py".
app = FastAPI()

# The users live in memory: a dict from id to profile. They vanish when the server stops.
users: dict[int, dict] = {}
# Hands out 1, 2, 3, ...: every new user gets a number no one has had before.
next_id = count(1)


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
    user_id = next(next_id)
    users[user_id] = {"name": user["name"], "role": user["role"], "place": user["place"]}
    return {"id": user_id, "message": "User profile saved!"}


# {user_id} in the path becomes the argument; the `int` annotation converts "1" to 1.
@app.get("/api/users/{user_id}")
def get_user(user_id: int):
    return {"id": user_id, **users[user_id]}
