// Merchant self-service: the deals tab and the store-details tab. The session (merchant id
// and key) arrives from merchant.js in an event and stays in this closure only.
(function () {
  "use strict";
  let session = null;
  let stores = [];
  let deals = [];
  const message = document.getElementById("message");
  const dealForm = document.getElementById("deal-form");
  const storeForm = document.getElementById("store-form");

  document.addEventListener("o2o:signed-in", async (ev) => {
    session = ev.detail;
    document.getElementById("tabs").classList.remove("hidden");
    await loadStores();
    await loadDeals();
    fillStore();
  });

  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }

  function showTab(name) {
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const s of document.querySelectorAll("section.tab")) s.classList.toggle("hidden", s.id !== name);
    if (name === "charts") window.dispatchEvent(new Event("resize")); // charts sized while hidden
  }

  function say(text, isError) {
    message.textContent = text;
    message.className = "notice" + (isError ? " error" : "");
  }

  // One call to the API; problem+json errors come back as an Error with .status and .errors.
  async function call(method, path, body, etag) {
    const headers = { Authorization: "Bearer " + session.key, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (etag !== undefined) headers["If-Match"] = etag;
    const res = await fetch(`/v1/merchants/${encodeURIComponent(session.merchant)}${path}`,
      { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch (e) { /* no body */ }
    if (!res.ok) {
      const err = new Error((data && data.detail) || res.statusText);
      err.status = res.status;
      err.errors = (data && data.errors) || [];
      throw err;
    }
    return data;
  }

  // Errors beside their fields ("closure.closed_until" belongs to the closed_until input).
  function showErrors(form, err) {
    clearErrors(form);
    let placed = 0;
    for (const e of err.errors) {
      const name = e.field.split(".").pop();
      const slot = form.querySelector(`.field-error[data-for="${CSS.escape(name)}"]`);
      if (!slot) continue;
      slot.textContent = e.message + (e.hint ? ` (${e.hint})` : "");
      slot.closest("label").classList.add("invalid");
      placed++;
    }
    const text = err.status === 412 ? "Someone changed this meanwhile; the latest version is loaded, check it and save again."
      : placed ? "Please correct the marked fields." : err.message;
    say(text, true);
  }

  function clearErrors(form) {
    for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
    for (const label of form.querySelectorAll("label.invalid")) label.classList.remove("invalid");
  }

  const toLocal = (iso) => {
    if (!iso) return "";
    const d = new Date(iso);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
  };
  const toIso = (local) => (local ? new Date(local).toISOString().replace(".000Z", "Z") : null);
  const tagList = (text) => text.split(",").map((t) => t.trim()).filter(Boolean);
  const numberOrNull = (text) => (text === "" ? null : Number(text));

  // ------------------------------------------------------------------------- deals
  async function loadStores() {
    stores = (await call("GET", "/stores")).stores;
    for (const select of [dealForm.elements.store_id, storeForm.elements.store]) {
      select.replaceChildren(...stores.map((s) => new Option(`${s.name} (${s.id})`, s.id)));
    }
  }

  async function loadDeals() {
    deals = (await call("GET", "/deals")).deals;
    const names = Object.fromEntries(stores.map((s) => [s.id, s.name]));
    const body = document.querySelector("#deal-list tbody");
    body.replaceChildren(...deals.map((d) => {
      const tr = document.createElement("tr");
      tr.dataset.id = d.deal_id;
      const cells = [d.title, names[d.store_id] || d.store_id, `${d.discount_pct} %`,
        `${d.starts_at.slice(0, 10)} → ${d.ends_at.slice(0, 10)}` + (d.valid_hours ? ` · ${d.valid_hours}` : ""),
        d.quota === null ? `${d.redeemed}` : `${d.redeemed} / ${d.quota}`];
      for (const text of cells) tr.appendChild(Object.assign(document.createElement("td"), { textContent: text }));
      const now = new Date().toISOString();
      const why = d.ends_at <= now ? " (window over)" : d.starts_at > now ? " (starts later)"
        : d.quota_left === 0 ? " (quota used up)" : " (outside its hours)";
      const status = Object.assign(document.createElement("td"),
        { textContent: d.status + (d.status === "active" && !d.live ? why : ""), className: `status-${d.status}` });
      tr.appendChild(status);
      const actions = document.createElement("td");
      if (d.status !== "ended") {
        actions.append(button(d.status === "paused" ? "Resume" : "Pause", () => setStatus(d, d.status === "paused" ? "active" : "paused")),
          " ", button("Edit", () => editDeal(d)), " ", button("End", () => endDeal(d)));
      }
      tr.appendChild(actions);
      return tr;
    }));
    if (!deals.length) {
      const tr = document.createElement("tr");
      tr.appendChild(Object.assign(document.createElement("td"), { colSpan: 7, textContent: "No deals yet: start one below." }));
      body.appendChild(tr);
    }
    document.body.dataset.deals = String(Date.now());
  }

  function button(text, onClick) {
    const b = Object.assign(document.createElement("button"), { type: "button", textContent: text });
    b.addEventListener("click", onClick);
    return b;
  }

  async function setStatus(d, status) {
    try {
      await call("PATCH", `/deals/${encodeURIComponent(d.deal_id)}`, { status }, `"${d.version}"`);
      say(status === "paused" ? `“${d.title}” is paused: customers no longer see it.` : `“${d.title}” is showing again.`, false);
    } catch (err) { say(err.message, true); }
    await loadDeals();
  }

  async function endDeal(d) {
    if (!window.confirm(`End “${d.title}”? It leaves every list for good; its history stays.`)) return;
    try {
      await call("DELETE", `/deals/${encodeURIComponent(d.deal_id)}`, undefined, `"${d.version}"`);
      say(`“${d.title}” has ended.`, false);
    } catch (err) { say(err.message, true); }
    await loadDeals();
  }

  function editDeal(d) {
    clearErrors(dealForm);
    const f = dealForm.elements;
    f.deal_id.value = d.deal_id;
    f.store_id.value = d.store_id;
    f.store_id.disabled = true; // a deal stays at its store
    f.title.value = d.title;
    f.discount_pct.value = d.discount_pct;
    f.starts_at.value = toLocal(d.starts_at);
    f.ends_at.value = toLocal(d.ends_at);
    f.quota.value = d.quota === null ? "" : d.quota;
    f.per_user_limit.value = d.per_user_limit === null ? "" : d.per_user_limit;
    f.valid_hours.value = d.valid_hours || "";
    f.tags.value = d.tags.join(", ");
    dealForm.dataset.version = d.version;
    document.getElementById("deal-form-title").textContent = `Edit “${d.title}”`;
  }

  function newDeal() {
    clearErrors(dealForm);
    dealForm.reset();
    dealForm.elements.deal_id.value = "";
    dealForm.elements.store_id.disabled = false;
    const now = new Date();
    dealForm.elements.starts_at.value = toLocal(now.toISOString());
    dealForm.elements.ends_at.value = toLocal(new Date(now.getTime() + 7 * 864e5).toISOString());
    document.getElementById("deal-form-title").textContent = "New deal";
  }
  document.getElementById("deal-new").addEventListener("click", newDeal);

  dealForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = dealForm.elements;
    const body = {
      title: f.title.value,
      discount_pct: numberOrNull(f.discount_pct.value),
      starts_at: toIso(f.starts_at.value),
      ends_at: toIso(f.ends_at.value),
      quota: numberOrNull(f.quota.value),
      per_user_limit: numberOrNull(f.per_user_limit.value),
      valid_hours: f.valid_hours.value.trim() || null,
      tags: tagList(f.tags.value),
    };
    const id = f.deal_id.value;
    try {
      if (id) {
        await call("PATCH", `/deals/${encodeURIComponent(id)}`, body, `"${dealForm.dataset.version}"`);
        say(`Saved: “${body.title}” is live on every page within a second.`, false);
      } else {
        for (const k of ["per_user_limit", "valid_hours"]) if (body[k] === null) delete body[k];
        await call("POST", "/deals", { store_id: f.store_id.value, ...body });
        say(`Started: “${body.title}” is live on every page within a second.`, false);
      }
      clearErrors(dealForm);
      newDeal();
    } catch (err) {
      showErrors(dealForm, err);
      if (err.status === 412) {
        await loadDeals();
        const fresh = deals.find((d) => d.deal_id === id);
        if (fresh) dealForm.dataset.version = fresh.version;
      }
    }
    await loadDeals();
  });

  // ------------------------------------------------------------------ store details
  async function fillStore() {
    const id = storeForm.elements.store.value;
    if (!id) return;
    const s = await call("GET", `/stores/${encodeURIComponent(id)}`);
    const f = storeForm.elements;
    f.opening_hours.value = s.opening_hours || "";
    f.price_level.value = s.price_level === null ? "" : String(s.price_level);
    f.tags.value = (s.tags || []).join(", ");
    f.phone.value = s.phone || "";
    f.website.value = s.website || "";
    f.closed_until.value = toLocal(s.closed_until);
    f.reason.value = s.closure_reason || "";
    storeForm.dataset.version = s.version;
    document.getElementById("store-version").textContent =
      `version ${s.version} · ${s.open_now === false ? "closed now" : s.open_now ? "open now" : "hours unknown"}`;
    clearErrors(storeForm);
  }
  storeForm.elements.store.addEventListener("change", fillStore);

  storeForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = storeForm.elements;
    const body = {
      opening_hours: f.opening_hours.value.trim() || null,
      price_level: numberOrNull(f.price_level.value),
      tags: tagList(f.tags.value),
      phone: f.phone.value.trim() || null,
      website: f.website.value.trim() || null,
      closure: f.closed_until.value ? { closed_until: toIso(f.closed_until.value), reason: f.reason.value.trim() || null } : null,
    };
    try {
      await call("PATCH", `/stores/${encodeURIComponent(f.store.value)}`, body, `"${storeForm.dataset.version}"`);
      say("Saved: search, the map and deals show it within a second.", false);
      await fillStore();
    } catch (err) {
      showErrors(storeForm, err);
      if (err.status === 412) {
        const keep = storeForm.dataset.version;
        await fillStore();
        say(`Someone changed this store meanwhile (your version ${keep}); the latest is loaded, reapply your change.`, true);
      }
    }
    document.body.dataset.saved = String(Date.now());
  });

  newDeal();
})();
