// The embeddable store map: clusters and stores from /v1/map/stores, refetched on pan and
// zoom (debounced; a newer view cancels the older request), filters in the bar, details in
// a popup. Query parameters set the first view: lat, lon, zoom, category, open_now, has_deals.
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const el = document.getElementById("map");
  const map = L.map(el, { zoomControl: true }).setView(
    [parseFloat(params.get("lat") || "60.1699"), parseFloat(params.get("lon") || "24.9384")],
    parseInt(params.get("zoom") || "15", 10));
  // Tiles are decoration: if they cannot load (offline), markers still work.
  L.tileLayer(el.dataset.tileUrl, { attribution: el.dataset.tileAttribution, maxZoom: 19 }).addTo(map);
  const layer = L.layerGroup().addTo(map);
  const form = document.getElementById("filters");
  const status = document.getElementById("status");
  for (const name of ["category"]) if (params.get(name)) form.elements[name].value = params.get(name);
  for (const name of ["open_now", "has_deals"]) form.elements[name].checked = params.get(name) === "true";

  let inflight = null, timer = null;
  function schedule() { clearTimeout(timer); timer = setTimeout(load, 250); }

  function query() {
    const b = map.getBounds();
    const q = new URLSearchParams({
      bbox: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(","),
      zoom: String(map.getZoom()),
    });
    if (form.elements.category.value) q.set("category", form.elements.category.value);
    if (form.elements.open_now.checked) q.set("open_now", "true");
    if (form.elements.has_deals.checked) q.set("has_deals", "true");
    return q;
  }

  async function load() {
    if (inflight) inflight.abort();
    inflight = new AbortController();
    status.textContent = "Loading…";
    try {
      const res = await fetch("/v1/map/stores?" + query(), { signal: inflight.signal });
      const body = await res.json();
      if (!res.ok) throw new Error(body.detail || res.statusText);
      draw(body);
      status.textContent = body.total + " stores";
      document.body.dataset.loaded = String(Date.now());
    } catch (err) {
      if (err.name !== "AbortError") status.textContent = "Could not load stores: " + err.message;
    }
  }

  function draw(fc) {
    layer.clearLayers();
    for (const f of fc.features) {
      const [lon, lat] = f.geometry.coordinates;
      const p = f.properties;
      if (p.cluster) {
        const size = 28 + Math.min(24, Math.log2(p.point_count) * 3);
        const badge = p.with_deals ? `<span class="deals">${p.with_deals}</span>` : "";
        const icon = L.divIcon({ className: "", iconSize: [size, size],
          html: `<div class="cluster" data-count="${p.point_count}" style="width:${size}px;height:${size}px" ` +
                `title="${p.point_count} stores, ${p.with_deals} with deals">${p.point_count_abbreviated}${badge}</div>` });
        L.marker([lat, lon], { icon }).on("click", () => map.setView([lat, lon], p.expansion_zoom)).addTo(layer);
      } else {
        const icon = L.divIcon({ className: "", iconSize: [14, 14],
          html: `<div class="store${p.has_deal ? " deal" : ""}" data-id="${escapeHtml(p.id)}" title="${escapeHtml(p.name)}"></div>` });
        L.marker([lat, lon], { icon }).on("click", () => {
          send("click", p.impression_token);
          details(p.id, [lat, lon]);
        }).addTo(layer);
      }
    }
  }

  async function details(id, at) {
    const res = await fetch("/v1/stores/" + encodeURIComponent(id));
    const s = await res.json();
    send("detail_view", s.impression_token);
    const open = s.open_now === null ? "Hours unknown" : s.open_now ? "Open now" :
      "Closed" + (s.next_open ? " · opens " + new Date(s.next_open).toLocaleString() : "");
    L.popup().setLatLng(at).setContent(
      `<div class="popup" data-store="${escapeHtml(s.id)}"><h3>${escapeHtml(s.name)}</h3>` +
      `<p>${escapeHtml(s.category.replace(/_/g, " "))}${s.rating ? " · ★ " + s.rating : ""}` +
      `${s.price_level ? " · " + "€".repeat(s.price_level) : ""}</p><p>${open}</p>` +
      `<p>${escapeHtml(s.opening_hours || "")}</p></div>`).openOn(map);
  }

  // Engagement goes back with the impression token of what was shown: the service counts
  // only events that prove an impression (and each token once per type).
  function send(type, token) {
    if (!token) return;
    const id = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now()).replace(/[^A-Za-z0-9-]/g, "");
    fetch("/v1/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ events: [{ event_id: "w-" + id, type, ts: new Date().toISOString(), impression_token: token }] }),
      keepalive: true,
    }).catch(() => {});
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  map.on("moveend", schedule);
  form.addEventListener("change", load);
  load();
})();
