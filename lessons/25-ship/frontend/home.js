const token = localStorage.getItem("token");

// Forget the token and go to the login page: after this, this browser is logged out.
function logOut() {
  localStorage.removeItem("token");
  location.href = "login.html";
}

// Log out for real: the API ends the token (POST /api/logout), or every token of this account,
// in every browser (POST /api/logout-all), so that a copy of it is worth nothing either. Then
// forget it here, whatever the API answered (a token it already refuses is as good as ended).
async function endTokens(path) {
  try {
    await fetch(`${API_URL}${path}`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  } finally {
    logOut();
  }
}

document.getElementById("logout").addEventListener("click", () => endTokens("/api/logout"));
document.getElementById("logout-all").addEventListener("click", () => endTokens("/api/logout-all"));

async function greet() {
  if (token === null) {
    logOut();  // never logged in here
    return;
  }
  try {
    const response = await fetch(`${API_URL}/api/me`, {
      headers: { Authorization: `Bearer ${token}` },  // who we are, on every request
    });
    if (response.status === 401) {
      logOut();  // the token expired or was revoked, or the account is gone: log in again
      return;
    }
    const body = await response.json();
    if (!response.ok) {
      throw new Error(body.detail);
    }
    // textContent: a name like "<b>Bo</b>" is shown as those characters, never as HTML.
    document.getElementById("greeting").textContent = `Hello, ${body.name}!`;
  } catch (error) {
    const message = document.getElementById("message");
    message.textContent = `Could not load your profile: ${error.message}`;
    message.className = "error";
  }
}

// One message as an item of the conversation. textContent: whatever the user or the coach
// wrote ("<script>", "<b>") is shown as those characters, never run as HTML.
function messageItem(role, text) {
  const item = document.createElement("li");
  item.className = role;
  item.textContent = text;
  return item;
}

// Adds one message at the end of the conversation on the page.
function addMessage(role, text) {
  const item = messageItem(role, text);
  document.getElementById("chat").append(item);
  return item;
}

// One WebSocket for as long as the page is open: ws://localhost:8000/ws/chat for an API on
// http://localhost:8000. Each question goes out as a frame; the answer comes back as frames.
const SOCKET_URL = API_URL.replace(/^http/, "ws") + "/ws/chat";
let socket = null;
let answer = null;  // the <li> the coach's current answer grows in, while one is coming
let retryDelay = 500;  // ms before reconnecting; doubles after each failure, up to 10 s

function setSendable(sendable) {
  document.querySelector("#ask button").disabled = !sendable;
}

function showError(text) {
  const status = document.getElementById("message");
  status.textContent = text;
  status.className = "error";
}

function connect() {
  setSendable(false);  // until the server says ready
  socket = new WebSocket(SOCKET_URL);
  // A browser's WebSocket cannot carry an Authorization header: the token is the first frame.
  socket.addEventListener("open", () => socket.send(JSON.stringify({ token })));
  socket.addEventListener("message", (event) => onFrame(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    setSendable(false);
    if (event.code === 1008) {
      logOut();  // the token expired or was revoked, or the account is gone: reconnecting will not help
      return;
    }
    if (event.code === 1013) {  // try again later: this account has too many chats open
      showError(`The coach could not connect: ${event.reason}`);
    }
    if (answer !== null) {  // the connection broke mid-answer: that answer will not finish
      answer = null;
      showError("The connection to the coach was lost: reconnecting…");
    }
    setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10000);
  });
}

function onFrame(frame) {
  if (frame.type === "ready") {
    retryDelay = 500;
    setSendable(true);
  } else if (frame.type === "token") {
    if (answer.textContent === "…") {
      answer.textContent = "";
    }
    answer.textContent += frame.content;  // as text, never as HTML, however it grows
  } else if (frame.type === "done") {
    answer = null;
    setSendable(true);
  } else if (frame.type === "error") {
    answer?.remove();
    answer = null;
    showError(`The coach could not answer: ${frame.detail}`);
    setSendable(true);
  }
}

// Send the question over the socket; onFrame shows the answer as it arrives. The button
// stays disabled until it is complete, so one question cannot be sent twice.
function ask(event) {
  event.preventDefault();  // stay on this page: we send the form ourselves
  const form = event.target;
  const text = form.message.value.trim();
  const status = document.getElementById("message");
  if (text === "" || socket === null || socket.readyState !== WebSocket.OPEN) {
    return;
  }
  status.textContent = "";
  status.className = "";
  addMessage("user", text);
  form.message.value = "";
  setSendable(false);
  answer = addMessage("assistant", "…");
  socket.send(JSON.stringify({ message: text }));
}

// The history comes a page at a time: the latest PAGE messages, then, on "Load earlier
// messages", the PAGE before the oldest one shown (its id is oldestId).
const PAGE = 50;
let oldestId = null;

// One page of the conversation, oldest first, put above what is shown. A full page may have
// more before it, so the button stays; a shorter one was the beginning. Errors are thrown.
async function loadPage() {
  const query = new URLSearchParams({ limit: PAGE });
  if (oldestId !== null) {
    query.set("before", oldestId);
  }
  const response = await fetch(`${API_URL}/api/chat/history?${query}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (response.status === 401) {
    logOut();
    return;
  }
  const page = await response.json();
  if (!response.ok) {
    throw new Error(typeof page.detail === "string" ? page.detail : `error ${response.status}`);
  }
  const items = page.map((message) => messageItem(message.role, message.content));
  document.getElementById("chat").prepend(...items);
  if (page.length > 0) {
    oldestId = page[0].id;
  }
  document.getElementById("earlier").hidden = page.length < PAGE;
}

// The latest messages, as the API stored them: the page opens where the user left off, after
// a reload or on another computer. Send waits until they are shown, so that a new question
// cannot land above the old ones.
async function loadHistory() {
  const send = document.querySelector("#ask button");
  send.disabled = true;
  try {
    await loadPage();
  } catch (error) {
    const status = document.getElementById("message");
    status.textContent = `Could not load the conversation: ${error.message}`;
    status.className = "error";
  } finally {
    send.disabled = false;
  }
}

async function loadEarlier() {
  const button = document.getElementById("earlier");
  button.disabled = true;  // one page at a time: a second click waits for this one
  try {
    await loadPage();
  } catch (error) {
    const status = document.getElementById("message");
    status.textContent = `Could not load earlier messages: ${error.message}`;
    status.className = "error";
  } finally {
    button.disabled = false;
  }
}

document.getElementById("earlier").addEventListener("click", loadEarlier);
document.getElementById("ask").addEventListener("submit", ask);
greet();
if (token !== null) {
  loadHistory().then(connect);  // the conversation first, then the socket for new questions
}
