// The restaurant page: loads the menu, takes reservations, shows versions.
// The build replaces the placeholder below with the BUILD_VERSION it was given.
const BUILD_VERSION = "__BUILD_VERSION__";

const money = new Intl.NumberFormat("en-IE", { style: "currency", currency: "EUR" });

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A proxy error page or an empty body: reported by status below.
  }
  return { ok: response.ok, status: response.status, body };
}

async function loadMenu() {
  const target = document.getElementById("menu");
  const { ok, status, body } = await getJSON("api/menu");
  if (!ok || !body) {
    target.replaceChildren(el("p", "notice error", `The menu is unavailable (${status}).`));
    return;
  }
  const sections = [];
  let current = null;
  for (const item of body.items) {
    if (!current || current.category !== item.category) {
      current = { category: item.category, node: el("div") };
      current.node.append(el("h3", "", item.category));
      sections.push(current);
    }
    const dish = el("div", "dish");
    dish.append(el("span", "name", item.name), el("span", "price", money.format(item.price_cents / 100)));
    if (item.description) dish.append(el("span", "description", item.description));
    if (item.allergens && item.allergens.length) dish.append(el("span", "allergens", item.allergens.join(", ")));
    current.node.append(dish);
  }
  target.replaceChildren(...sections.map((s) => s.node));
}

async function loadUpcoming() {
  const { ok, body } = await getJSON("api/reservations");
  const count = ok && body ? body.reservations.length : 0;
  document.getElementById("upcoming").textContent =
    count === 1 ? "1 table is booked ahead." : `${count} tables are booked ahead.`;
}

function showFieldErrors(form, fields) {
  form.querySelectorAll(".field-error").forEach((node) => node.remove());
  for (const [name, message] of Object.entries(fields || {})) {
    const input = form.elements.namedItem(name);
    if (input) input.after(el("span", "field-error", message));
  }
}

async function reserve(event) {
  event.preventDefault();
  const form = event.target;
  const notice = document.getElementById("booking-notice");
  const data = new FormData(form);
  const when = new Date(String(data.get("starts_at")));
  const request = {
    name: String(data.get("name")),
    email: String(data.get("email")),
    party_size: Number(data.get("party_size")),
    // The server wants an absolute time; the input gives local wall-clock time.
    starts_at: Number.isNaN(when.getTime()) ? "" : when.toISOString(),
    notes: String(data.get("notes")),
  };
  const { ok, status, body } = await getJSON("api/reservations", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
  });
  showFieldErrors(form, ok ? null : body && body.fields);
  if (ok) {
    notice.className = "notice ok";
    notice.textContent = `Thank you, ${body.name}: a table for ${body.party_size} on ${new Date(body.starts_at).toLocaleString()}.`;
    form.reset();
    loadUpcoming();
  } else {
    notice.className = "notice error";
    notice.textContent = (body && body.error) || `The reservation failed (${status}).`;
  }
}

async function showVersions() {
  document.getElementById("frontend-version").textContent = BUILD_VERSION;
  const { body } = await getJSON("healthz");
  document.getElementById("backend-version").textContent = body
    ? `${body.version} (schema ${body.schema}${body.status === "ok" ? "" : ", " + body.status})`
    : "unreachable";
}

document.getElementById("booking").addEventListener("submit", reserve);
loadMenu();
loadUpcoming();
showVersions();
