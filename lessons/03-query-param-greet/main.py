from datetime import datetime

from fastapi import FastAPI

# The application object: `uvicorn main:app` means "the app in main.py".
app = FastAPI()


# A GET request to /api/time runs this function; its return value is sent back as JSON.
# `name` is not part of the path, so FastAPI reads it from the query string:
# /api/time?name=alan. The default None makes it optional.
@app.get("/api/time")
def get_time(name: str | None = None):
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    if name:
        return {"message": f"Hi {name}! It's {now}"}
    return {"time": now}
