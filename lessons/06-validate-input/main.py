from datetime import datetime
from itertools import count

from fastapi import FastAPI
from fastapi.responses import JSONResponse

app = FastAPI()

users: dict[int, dict] = {}
next_id = count(1)
ROLES = ("developer", "designer", "product-manager")


def find_problem(user: dict) -> str | None:
    """Checks a profile by hand; returns what is wrong with it, or None when it is fine."""
    if not isinstance(user.get("name"), str):
        return "name must be a string"
    if user.get("role") not in ROLES:
        return f"role must be one of: {', '.join(ROLES)}"
    place = user.get("place")
    if not isinstance(place, str) or not place.strip():
        return "place must be a non-empty string"
    return None


def bad_request(problem: str) -> JSONResponse:
    return JSONResponse(status_code=400, content={"error": problem})


def not_found() -> JSONResponse:
    return JSONResponse(status_code=404, content={"error": "User not found"})


@app.get("/api/time")
def get_time(name: str | None = None):
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    if name:
        return {"message": f"Hi {name}! It's {now}"}
    return {"time": now}


# status_code=201 is the answer for "created"; a JSONResponse we return overrides it.
@app.post("/api/users", status_code=201)
def create_user(user: dict):
    problem = find_problem(user)
    if problem:
        return bad_request(problem)
    user_id = next(next_id)
    users[user_id] = {"name": user["name"], "role": user["role"], "place": user["place"]}
    return {"id": user_id, "message": "User profile saved!"}


@app.get("/api/users/{user_id}")
def get_user(user_id: int):
    if user_id not in users:
        return not_found()
    return {"id": user_id, **users[user_id]}


@app.put("/api/users/{user_id}")
def update_user(user_id: int, user: dict):
    if user_id not in users:
        return not_found()
    problem = find_problem(user)
    if problem:
        return bad_request(problem)
    users[user_id].update(name=user["name"], role=user["role"], place=user["place"])
    return {"id": user_id, **users[user_id]}


@app.delete("/api/users/{user_id}")
def delete_user(user_id: int):
    if user_id not in users:
        return not_found()
    del users[user_id]
    return {"message": "User deleted"}
