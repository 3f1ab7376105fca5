from datetime import datetime

from fastapi import FastAPI

# The application object: `uvicorn main:app` means "the app in main.py".
app = FastAPI()


# A GET request to /api/time runs this function; its return value is sent back as JSON.
@app.get("/api/time")
def get_time():
    return {"time": datetime.now().strftime("%Y-%m-%d %H:%M:%S")}
