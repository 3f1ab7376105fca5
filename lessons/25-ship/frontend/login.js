const form = document.getElementById("login");
const message = document.getElementById("message");

// Coming from the signup page: login.html?email=... fills in the email.
form.email.value = new URLSearchParams(location.search).get("email") ?? "";

// Shows a message as plain text: textContent never turns "<b>" into HTML.
function show(text) {
  message.textContent = text;
  message.className = "error";
}

// FastAPI's detail is a string (401, 429, 503) or a list of problems (422).
function describe(detail) {
  if (Array.isArray(detail)) {
    return detail.map((problem) => `${problem.loc.at(-1)}: ${problem.msg}`).join("; ");
  }
  return detail;
}

// A limit reached (429): Retry-After says in how many seconds a new try can succeed.
function retryHint(response) {
  const seconds = Number(response.headers.get("Retry-After"));
  return response.status === 429 && seconds > 0 ? ` (in ${Math.ceil(seconds / 60)} min)` : "";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const credentials = Object.fromEntries(new FormData(form));
  try {
    const response = await fetch(`${API_URL}/api/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(credentials),
    });
    const body = await response.json();
    if (response.ok) {
      // Keep the token in this browser: every page of this site can read it back and
      // send it with its requests. Logging out deletes it.
      localStorage.setItem("token", body.access_token);
      location.href = "home.html";
    } else {
      show(`Could not log in: ${describe(body.detail)}${retryHint(response)}`);
    }
  } catch {
    show("Could not reach the API. Is it running, and does it allow this page's origin?");
  }
});
