// Where the API lives: port 8000 on the host this page came from. Opened as
// http://localhost:8001 the page calls http://localhost:8000, opened as http://127.0.0.1:8001
// it calls http://127.0.0.1:8000. Change it here if you run the API elsewhere.
const API_URL = `${location.protocol}//${location.hostname}:8000`;
