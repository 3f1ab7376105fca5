const form = document.getElementById("signup");
const message = document.getElementById("message");

// Shows a message as plain text: textContent never turns "<b>" into HTML.
function show(text, isError) {
  message.textContent = text;
  message.className = isError ? "error" : "";
}

// FastAPI's detail is a string (409, 429, 503) or a list of problems (422).
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
  event.preventDefault();  // handle it here instead of the browser's own page reload
  const user = Object.fromEntries(new FormData(form));
  try {
    const response = await fetch(`${API_URL}/api/users`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(user),
    });
    const body = await response.json();
    if (response.ok) {
      // Signed up: on to the login page, with the email filled in.
      location.href = `login.html?email=${encodeURIComponent(body.email)}`;
    } else {
      show(`Could not sign up: ${describe(body.detail)}${retryHint(response)}`, true);
    }
  } catch {
    // fetch itself fails when the API is down or the browser blocked the call (CORS).
    show("Could not reach the API. Is it running, and does it allow this page's origin?", true);
  }
});
