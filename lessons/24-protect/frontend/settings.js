let token = localStorage.getItem("token");
const form = document.getElementById("settings");
const message = document.getElementById("message");
let saved = {};  // the profile as the API last sent it

// Shows a message as plain text: textContent never turns "<b>" into HTML.
function show(text, isError) {
  message.textContent = text;
  message.className = isError ? "error" : "";
}

// FastAPI's detail is a string (401, 403, 409, 429, 503) or a list of problems (422).
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

function logOut() {
  localStorage.removeItem("token");
  location.href = "login.html";
}

// Every call to the API carries the token. A 401 means it expired or was revoked (logged
// out, or a new email or password), or the account is gone.
async function api(method, body) {
  const response = await fetch(`${API_URL}/api/me`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    logOut();
  }
  return response;
}

function fill(profile) {
  saved = profile;
  form.name.value = profile.name;
  form.email.value = profile.email ?? "";
  form.password.value = "";
  form.current_password.value = "";
}

// A new email or password ends every token of the account, this page's too: log in again with
// the new ones, and keep the new token.
async function logInAgain(email, password) {
  const response = await fetch(`${API_URL}/api/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (!response.ok) {
    logOut();
    return;
  }
  token = (await response.json()).access_token;
  localStorage.setItem("token", token);
}

async function load() {
  if (token === null) {
    logOut();
    return;
  }
  try {
    const response = await api("GET");
    if (response.ok) {
      fill(await response.json());
    }
  } catch {
    show("Could not reach the API. Is it running?", true);
  }
}

// Send only what changed: PUT /api/me leaves every field it is not given as it is.
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const changes = {};
  for (const field of ["name", "email"]) {
    if (form[field].value !== (saved[field] ?? "")) {
      changes[field] = form[field].value;
    }
  }
  if (form.password.value !== "") {
    changes.password = form.password.value;
  }
  // Whoever knows the email and password owns the account: changing either takes the current
  // password too (a token alone might have been copied from a browser left open).
  const current = form.current_password.value;
  const sensitive = "email" in changes || "password" in changes;
  if (sensitive && current === "") {
    show("Type your current password to change your email or password.", true);
    form.current_password.focus();
    return;
  }
  try {
    const response = await api("PUT", sensitive ? { ...changes, current_password: current } : changes);
    const body = await response.json();
    if (response.ok) {
      if (sensitive) {
        await logInAgain(body.email, changes.password ?? current);
      }
      fill(body);
      show(`Saved: ${Object.keys(changes).join(", ") || "nothing changed"}.`, false);
    } else {
      show(`Could not save: ${describe(body.detail)}${retryHint(response)}`, true);
    }
  } catch {
    show("Could not reach the API. Is it running?", true);
  }
});

document.getElementById("delete").addEventListener("click", async () => {
  if (!confirm("Delete your account? This cannot be undone.")) {
    return;
  }
  try {
    const response = await api("DELETE");
    if (response.status === 204) {
      localStorage.removeItem("token");  // the token belongs to an account that is gone
      location.href = "signup.html";
    } else {
      show(`Could not delete: ${describe((await response.json()).detail)}`, true);
    }
  } catch {
    show("Could not reach the API. Is it running?", true);
  }
});

load();
