"""The first endpoints of the course: the time (lessons 02-03) and the database's time (09)."""

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import func, select

from app.deps import SessionDep
from app.schemas import DB_DOWN

router = APIRouter(tags=["utils"])


# A GET request to /api/time runs this function; its return value is sent back as JSON.
# `name` is not part of the path, so FastAPI reads it from the query string:
# /api/time?name=alan. The default None makes it optional.
@router.get("/time")
def get_time(name: str | None = None):
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    if name:
        return {"message": f"Hi {name}! It's {now}"}
    return {"time": now}


# `db: SessionDep` is all an endpoint writes to get a session: get_db (deps.py) opens it
# and closes it again, however the request ends.
@router.get("/test-db", responses=DB_DOWN)
def test_db(db: SessionDep):
    return {"time": db.scalar(select(func.now()))}
