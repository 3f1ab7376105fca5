// Where the API lives. The browser calls this address, so it must be one the browser can
// reach. Change it here if you run the API elsewhere.
const API_URL = "http://localhost:8000";
