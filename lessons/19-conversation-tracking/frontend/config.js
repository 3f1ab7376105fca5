// Where the API lives: port 8000 on the host this page came from. Opened as
// http://localhost:8001 the page calls http://localhost:8000, opened as http://127.0.0.1:8001
// it calls http://127.0.0.1:8000. Change it here if you run the API elsewhere.
// A page opened as a file has no host (and "file://:8000" is no address a browser fetches):
// it calls localhost, where CORS refuses its origin, "null".
const API_URL = location.protocol === "file:"
  ? "http://localhost:8000"
  : `${location.protocol}//${location.hostname}:8000`;
