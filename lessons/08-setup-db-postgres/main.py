from datetime import datetime
from itertools import count
from typing import Literal

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

app = FastAPI()


# The model describes a valid profile. FastAPI checks every request body against it and
# answers 422, with a `detail` naming each broken rule, before our function even runs.
class User(BaseModel):
    name: str = Field(min_length=2, max_length=10)
    role: Literal["developer", "designer", "product-manager", "tester"]
    place: str = Field(min_length=2)


users: dict[int, dict] = {}
next_id = count(1)


def get_profile(user_id: int) -> dict:
    """The stored profile, or a 404 that FastAPI turns into {"detail": "User not found"}."""
    if user_id not in users:
        raise HTTPException(status_code=404, detail="User not found")
    return users[user_id]


@app.get("/api/time")
def get_time(name: str | None = None):
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    if name:
        return {"message": f"Hi {name}! It's {now}"}
    return {"time": now}


@app.post("/api/users", status_code=201)
def create_user(user: User):
    user_id = next(next_id)
    users[user_id] = user.model_dump()
    return {"id": user_id, "message": "User profile saved!"}


@app.get("/api/users/{user_id}")
def get_user(user_id: int):
    return {"id": user_id, **get_profile(user_id)}


@app.put("/api/users/{user_id}")
def update_user(user_id: int, user: User):
    profile = get_profile(user_id)
    profile.update(user.model_dump())
    return {"id": user_id, **profile}


@app.delete("/api/users/{user_id}")
def delete_user(user_id: int):
    get_profile(user_id)
    del users[user_id]
    return {"message": "User deleted"}
