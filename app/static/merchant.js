// Merchant dashboard. The key lives in a closure variable only: never in localStorage,
// sessionStorage, cookies or the URL.
(function () {
  "use strict";
  const form = document.getElementById("signin");
  const message = document.getElementById("message");
  const charts = {};
  let session = null; // {merchant, key}
  let viewersMap = null, cellsLayer = null;
  // Statistics are kept per store-local day, and a store's today can be ahead of this
  // browser's (Helsinki at 23:30 UTC is already tomorrow). The default range ends on the
  // latest date anywhere (UTC+14), so it holds every store's today.
  const latestToday = new Date(Date.now() + 14 * 3600e3);
  form.elements.to.value = latestToday.toISOString().slice(0, 10);
  form.elements.from.value = new Date(latestToday - 13 * 864e5).toISOString().slice(0, 10);

  function show(text, isError) {
    message.textContent = text;
    message.className = "notice" + (isError ? " error" : "");
  }

  async function get(path, accept) {
    const res = await fetch(path, { headers: { Authorization: "Bearer " + session.key, Accept: accept || "application/json" } });
    if (!res.ok) {
      let detail = res.statusText;
      try { detail = (await res.json()).detail; } catch (e) { /* not JSON */ }
      const why = { 401: "The key was not accepted. Check it, or ask for a new one.",
                    403: "This key belongs to another merchant.",
                    404: "No stores found for this merchant id." }[res.status] || detail;
      throw new Error(why);
    }
    return accept === "text/csv" ? res.blob() : res.json();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    session = { merchant: form.elements.merchant.value.trim(), key: form.elements.key.value };
    form.elements.key.value = "";
    await refresh();
  });

  document.getElementById("csv").addEventListener("click", async () => {
    const blob = await get(statsPath(), "text/csv");
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `stats-${session.merchant}.csv`;
    a.click();
  });

  function statsPath(suffix) {
    const q = new URLSearchParams({ from: form.elements.from.value, to: form.elements.to.value });
    return `/v1/merchants/${encodeURIComponent(session.merchant)}/stats${suffix || ""}?${q}`;
  }

  async function refresh() {
    try {
      show("Loading…", false);
      const [stats, viewers] = await Promise.all([get(statsPath()), get(statsPath("/viewers"))]);
      draw(stats, viewers);
      document.getElementById("csv").disabled = false;
      // The deals and store-details tabs (merchant-edit.js) get the session through an event,
      // never through storage.
      document.dispatchEvent(new CustomEvent("o2o:signed-in", { detail: session }));
    } catch (err) {
      document.getElementById("charts").classList.add("hidden");
      show(err.message, true);
    }
  }

  function draw(stats, viewers) {
    const stores = stats.stores;
    const days = stores[0].days.map((d) => d.date);
    const sum = (f) => days.map((_, i) => stores.reduce((acc, s) => acc + f(s.days[i]), 0));
    const total = (f) => stores.reduce((acc, s) => acc + f(s.totals), 0);
    const impressions = total((t) => t.impressions);
    document.getElementById("hint").classList.add("hidden");
    if (!impressions && !total((t) => t.clicks + t.orders)) {
      show(`No activity for ${stores.length} store(s) in these dates yet: impressions appear as soon as people ` +
           "see your stores in search, deals or the map.", false);
    } else {
      message.classList.add("hidden");
    }
    document.getElementById("charts").classList.remove("hidden");
    document.getElementById("summary").textContent = `${stores.length} store(s): ` +
      stores.map((s) => s.name).join(", ") + ` · ${impressions} impressions · ${total((t) => t.clicks)} clicks · ` +
      `${total((t) => t.orders)} orders`;
    const surfaces = ["nearby", "recommended", "map", "detail"];
    const colours = ["#166ea0", "#1b998b", "#e4572e", "#f3a712"];
    chart("impressions", "bar", {
      labels: days,
      datasets: surfaces.map((s, i) => ({ label: s, backgroundColor: colours[i],
        data: sum((d) => d.impressions_by_surface[s]) })) }, { scales: { x: { stacked: true }, y: { stacked: true } } });
    const clicks = total((t) => t.clicks), orders = total((t) => t.orders), redeems = total((t) => t.redemptions);
    chart("funnel", "bar", {
      labels: ["Impressions", "Clicks", "Redemptions", "Orders"],
      datasets: [{ label: "events", backgroundColor: colours, data: [impressions, clicks, redeems, orders] }] },
      { plugins: { subtitle: { display: true, text: `click rate ${pct(clicks, impressions)} · order rate ${pct(orders, clicks)}` } } });
    chart("rank", "line", { labels: days, datasets: stores.map((s, i) => ({ label: s.name, borderColor: colours[i % 4],
      data: s.days.map((d) => d.rank.mean) })) });
    chart("share", "line", { labels: days, datasets: stores.map((s, i) => ({ label: s.name, borderColor: colours[i % 4],
      data: s.days.map((d) => d.local_search_share === null ? null : 100 * d.local_search_share) })) },
      { scales: { y: { title: { display: true, text: "%" } } } });
    const metrics = ["impressions", "clicks", "orders"];
    const s0 = stores[0];
    chart("peers", "bar", { labels: metrics, datasets: [
      { label: s0.name, backgroundColor: colours[0], data: metrics.map((m) => s0.totals[m]) },
      { label: `median of ${s0.peers.stores} peers`, backgroundColor: colours[3],
        data: metrics.map((m) => (s0.peers.median ? s0.peers.median[m] : null)) }] });
    drawViewers(viewers);
    document.body.dataset.drawn = String(Date.now());
  }

  function chart(id, type, data, options) {
    if (charts[id]) charts[id].destroy();
    for (const ds of data.datasets) if (type === "line") Object.assign(ds, { pointRadius: 4, spanGaps: true });
    charts[id] = new Chart(document.getElementById(id), { type, data, options: Object.assign({ animation: false }, options || {}) });
  }

  function drawViewers(viewers) {
    if (!viewersMap) {
      viewersMap = L.map("viewers-map");
      L.tileLayer(document.body.dataset.tileUrl || "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        { attribution: "&copy; OpenStreetMap contributors", maxZoom: 18 }).addTo(viewersMap);
      cellsLayer = L.layerGroup().addTo(viewersMap);
    }
    cellsLayer.clearLayers();
    const max = Math.max(1, ...viewers.cells.map((c) => c.impressions));
    const bounds = [];
    for (const c of viewers.cells) {
      const b = [[c.min_lat, c.min_lon], [c.max_lat, c.max_lon]];
      bounds.push(...b);
      L.rectangle(b, { weight: 1, color: "#166ea0", fillOpacity: 0.15 + 0.65 * c.impressions / max })
        .bindTooltip(`${c.impressions} impressions`).addTo(cellsLayer);
    }
    if (bounds.length) viewersMap.fitBounds(bounds, { padding: [10, 10] });
    else viewersMap.setView([60.17, 24.94], 12);
  }

  function pct(a, b) { return b ? (100 * a / b).toFixed(1) + "%" : "–"; }
})();
