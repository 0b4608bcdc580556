// silkgate status page: polls status.json and draws it. No framework, nothing from the network.
// Device ids and reasons come from devices and the network: they are only ever set as text
// (textContent), never parsed as HTML.
"use strict";

(() => {
  const POLL_MS = 2000;
  const STALE_S = 600; // a fix older than this is drawn grey
  const MAX_ROWS = 200; // vehicles listed under the map
  const SVGNS = "http://www.w3.org/2000/svg";
  const W = 800;
  const H = 480;
  const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const dec = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const byId = (id) => document.getElementById(id);

  const fmtInt = (n) => (n == null ? "–" : int.format(n));
  const fmtRate = (v) => (v == null ? "measuring…" : `${dec.format(v)}/s`);

  function fmtBytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return `${i ? dec.format(n) : n} ${units[i]}`;
  }

  function fmtAge(s) {
    if (s == null) return "–";
    s = Math.max(0, s);
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.round(s / 60)} min`;
    if (s < 86400) return `${dec.format(s / 3600)} h`;
    return `${dec.format(s / 86400)} d`;
  }

  function protoClass(p) {
    return p === "gbt32960" || p === "jt808" ? `p-${p}` : "p-other";
  }

  function setKpi(id, value, text, sub, alert) {
    const k = byId(id);
    k.dataset.value = String(value);
    k.querySelector(".value").textContent = text;
    k.querySelector(".sub").textContent = sub || "";
    k.classList.toggle("alert", Boolean(alert));
  }

  // headers: [[title, numeric?], ...]; rows: arrays of cells, a cell being text or
  // {text, cls}
  function fillTable(id, headers, rows, empty) {
    const table = byId(id);
    const head = document.createElement("thead");
    const hr = head.insertRow();
    for (const [title, numeric] of headers) {
      const th = document.createElement("th");
      th.textContent = title;
      if (numeric) th.className = "num";
      hr.appendChild(th);
    }
    const body = document.createElement("tbody");
    for (const cells of rows) {
      const tr = body.insertRow();
      cells.forEach((cell, i) => {
        const td = tr.insertCell();
        const c = cell !== null && typeof cell === "object" ? cell : { text: cell };
        td.textContent = c.text == null ? "" : String(c.text);
        const cls = [headers[i] && headers[i][1] ? "num" : "", c.cls || ""].join(" ").trim();
        if (cls) td.className = cls;
      });
    }
    if (!rows.length) {
      const td = body.insertRow().insertCell();
      td.colSpan = headers.length;
      td.className = "empty";
      td.textContent = empty;
    }
    table.replaceChildren(head, body);
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text != null) e.textContent = text;
    return e;
  }

  // Web Mercator, in degrees: x = lon, y = mercY(lat)
  const mercY = (lat) => {
    const r = (Math.max(-85, Math.min(85, lat)) * Math.PI) / 180;
    return (Math.log(Math.tan(Math.PI / 4 + r / 2)) * 180) / Math.PI;
  };
  const latOf = (y) => ((2 * Math.atan(Math.exp((y * Math.PI) / 180)) - Math.PI / 2) * 180) / Math.PI;
  const STEPS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 45];
  const niceStep = (span) => STEPS.find((s) => span / s <= 7) || 90;
  const decimals = (step) => Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));

  function drawMap(map, now) {
    const root = byId("map");
    const nodes = [];
    const devices = map.devices || [];
    let minX = 180;
    let maxX = -180;
    let minY = 1e9;
    let maxY = -1e9;
    for (const d of devices) {
      const y = mercY(d.lat);
      minX = Math.min(minX, d.lon);
      maxX = Math.max(maxX, d.lon);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
    }
    if (!devices.length) {
      [minX, maxX, minY, maxY] = [-170, 170, mercY(-55), mercY(72)];
    }
    const span = 0.02; // at least about 2 km across
    if (maxX - minX < span) [minX, maxX] = [(minX + maxX - span) / 2, (minX + maxX + span) / 2];
    if (maxY - minY < span) [minY, maxY] = [(minY + maxY - span) / 2, (minY + maxY + span) / 2];
    const margin = 30;
    const scale = Math.min((W - 2 * margin) / (maxX - minX), (H - 2 * margin) / (maxY - minY));
    const midX = (minX + maxX) / 2;
    const midY = (minY + maxY) / 2;
    const px = (lon) => W / 2 + (lon - midX) * scale;
    const py = (lat) => H / 2 - (mercY(lat) - midY) * scale;

    // graticule over what is visible
    const lon0 = midX - W / 2 / scale;
    const lon1 = midX + W / 2 / scale;
    const lat0 = latOf(midY - H / 2 / scale);
    const lat1 = latOf(midY + H / 2 / scale);
    const step = niceStep(Math.max(lon1 - lon0, lat1 - lat0));
    const places = decimals(step);
    for (let lon = Math.ceil(lon0 / step) * step; lon <= lon1; lon += step) {
      const x = px(lon);
      nodes.push(svg("line", { class: "grid-line", x1: x, y1: 0, x2: x, y2: H }));
      const label = `${Math.abs(lon).toFixed(places)}°${lon < 0 ? "W" : "E"}`;
      nodes.push(svg("text", { class: "grid-label", x: x + 3, y: H - 6 }, label));
    }
    for (let lat = Math.ceil(lat0 / step) * step; lat <= lat1; lat += step) {
      const y = py(lat);
      nodes.push(svg("line", { class: "grid-line", x1: 0, y1: y, x2: W, y2: y }));
      const label = `${Math.abs(lat).toFixed(places)}°${lat < 0 ? "S" : "N"}`;
      nodes.push(svg("text", { class: "grid-label", x: 4, y: y - 3 }, label));
    }

    if (devices.length) {
      // a scale bar of a round distance about 120 px long
      const kmPerPx = (111.32 * Math.cos((latOf(midY) * Math.PI) / 180)) / scale;
      const want = kmPerPx * 120;
      const round = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000];
      const km = round.filter((r) => r <= want).pop() || round[0];
      const len = km / kmPerPx;
      const x0 = W - len - 16;
      const y0 = H - 14;
      nodes.push(svg("path", { class: "scale", d: `M${x0},${y0 - 5}V${y0}H${x0 + len}V${y0 - 5}` }));
      const text = km < 1 ? `${km * 1000} m` : `${km} km`;
      nodes.push(svg("text", { class: "scale-label", x: x0, y: y0 - 8 }, text));
    }

    const unavailable = map.state !== "ok";
    // fresh fixes last, so they are drawn over the stale ones
    const ordered = devices.slice().sort((a, b) => a.time - b.time);
    for (const d of ordered) {
      const age = now - d.time;
      const stale = unavailable || age > STALE_S;
      const dot = svg("circle", {
        class: `dot ${stale ? "stale" : protoClass(d.protocol)}`,
        cx: px(d.lon).toFixed(1),
        cy: py(d.lat).toFixed(1),
        r: 5,
        "data-device": d.id,
      });
      const speed = d.speed_kmh == null ? "" : `, ${dec.format(d.speed_kmh)} km/h`;
      const when = new Date(d.time * 1000).toISOString().replace(".000Z", "Z");
      dot.appendChild(
        svg("title", {}, `${d.id} (${d.protocol})\n${d.lat}, ${d.lon}${speed}\n${when}, ${fmtAge(age)} ago`),
      );
      nodes.push(dot);
    }
    if (!devices.length && !unavailable) {
      const msg = `No position in the last ${map.hours} h`;
      nodes.push(svg("text", { class: "note", x: W / 2, y: H / 2, "text-anchor": "middle" }, msg));
    }
    if (unavailable) {
      nodes.push(svg("rect", { class: "alert-box", x: 40, y: H / 2 - 34, width: W - 80, height: 60, rx: 6 }));
      nodes.push(
        svg("text", { class: "alert-text", x: W / 2, y: H / 2 - 10, "text-anchor": "middle" }, "Database unavailable"),
      );
      const why = map.error || "no answer";
      const since = map.read_at ? ` (positions as of ${fmtAge(now - map.read_at)} ago)` : "";
      nodes.push(svg("text", { class: "note", x: W / 2, y: H / 2 + 14, "text-anchor": "middle" }, why + since));
    }
    root.replaceChildren(...nodes);
    root.dataset.state = map.state;
    root.dataset.devices = String(devices.length);

    const note = byId("map-note");
    const more = map.truncated ? `, the first ${fmtInt(map.max_devices)}` : "";
    note.textContent = `${fmtInt(devices.length)} vehicles with a fix in the last ${map.hours} h${more}`;

    const rows = devices
      .slice()
      .sort((a, b) => b.time - a.time)
      .slice(0, MAX_ROWS)
      .map((d) => [d.id, d.protocol, fmtAge(now - d.time), d.lat.toFixed(5), d.lon.toFixed(5), d.speed_kmh == null ? "" : dec.format(d.speed_kmh)]);
    fillTable(
      "vehicles",
      [["device"], ["protocol"], ["last fix", true], ["lat", true], ["lon", true], ["km/h", true]],
      rows,
      unavailable ? "database unavailable" : "no vehicle reported a position",
    );
    byId("vehicles-note").textContent = devices.length > MAX_ROWS ? `(the ${MAX_ROWS} most recent)` : "";
  }

  function render(d) {
    const t = d.totals;
    const r = d.rates;
    const workers = d.workers || [];
    const up = workers.filter((w) => w.up).length;
    const spool = d.spool;
    const mapOk = d.map.state === "ok";

    byId("version").textContent = d.version ? `v${d.version}` : "";
    byId("updated").textContent = `updated ${new Date(d.time * 1000).toLocaleTimeString()}`;
    const health = byId("health");
    if (up < workers.length || !workers.length) {
      health.textContent = workers.length ? `${workers.length - up} process(es) down` : "no process";
      health.className = "pill bad";
    } else if (spool.spooling || !mapOk) {
      health.textContent = spool.spooling ? "spooling: database away" : "database unavailable";
      health.className = "pill warn";
    } else {
      health.textContent = "running";
      health.className = "pill ok";
    }

    setKpi("kpi-frames", t.frames, fmtInt(t.frames), fmtRate(r && r.frames));
    setKpi("kpi-records", t.records, fmtInt(t.records), fmtRate(r && r.records));
    setKpi("kpi-rows", t.rows_committed, fmtInt(t.rows_committed), fmtRate(r && r.rows_committed));
    setKpi("kpi-connections", t.connections, fmtInt(t.connections), d.protocols.map((p) => `${p.protocol} ${fmtInt(p.connections)}`).join(" · "));
    setKpi("kpi-queue", d.queue.rows, fmtInt(d.queue.rows), "waiting or being written");
    const pct = spool.max_bytes ? (100 * spool.bytes) / spool.max_bytes : 0;
    setKpi("kpi-spool", spool.bytes, fmtBytes(spool.bytes), `${fmtInt(spool.records)} records, ${dec.format(pct)} % full`, spool.spooling);
    setKpi("kpi-dead", t.dead_letters, fmtInt(t.dead_letters), fmtRate(r && r.dead_letters), t.dead_letters > 0);
    setKpi("kpi-workers", up, `${up} / ${workers.length}`, workers.some((w) => w.restarts) ? "restarted" : "", up < workers.length);

    fillTable(
      "protocols",
      [["protocol"], ["open", true], ["accepted", true], ["refused", true], ["frames", true], ["frames/s", true], ["records", true], ["acks", true]],
      d.protocols.map((p) => [p.protocol, fmtInt(p.connections), fmtInt(p.accepted), fmtInt(p.refused), fmtInt(p.frames), p.frames_per_s == null ? "…" : dec.format(p.frames_per_s), fmtInt(p.records), fmtInt(p.acks)]),
      "no listener, MQTT route or OCPP endpoint enabled",
    );
    fillTable(
      "errors",
      [["what"], ["protocol"], ["reason"], ["count", true]],
      d.errors.map((e) => [e.what, e.protocol, e.reason, fmtInt(e.count)]),
      "nothing went wrong",
    );
    const bar = byId("spool-bar");
    bar.firstElementChild.style.width = `${Math.min(100, pct)}%`;
    bar.classList.toggle("warn", spool.spooling || pct > 50);
    byId("spool-text").textContent =
      `spool ${fmtBytes(spool.bytes)} of ${fmtBytes(spool.max_bytes)} (${fmtInt(spool.segments)} segments)` +
      (spool.spooling ? ": batches are going to the spool" : "");
    fillTable(
      "queue",
      [["table"], ["queued rows", true]],
      Object.entries(d.queue.by_table).map(([table, n]) => [table, fmtInt(n)]),
      "no rows waiting",
    );
    fillTable(
      "workers",
      [["process"], ["state"], ["pid", true], ["up for", true], ["restarts", true]],
      workers.map((w) => [
        `worker ${w.worker}`,
        { text: w.up ? "up" : "down", cls: w.up ? "up" : "down" },
        w.pid == null ? "" : String(w.pid),
        w.started ? fmtAge(d.time - w.started) : "",
        fmtInt(w.restarts),
      ]),
      "no process",
    );
    fillTable(
      "kinds",
      [["protocol"], ["kind"], ["frames", true]],
      d.frames_by_kind.map((k) => [k.protocol, k.kind, fmtInt(k.frames)]),
      "no frame yet",
    );
    const links = [];
    if (d.mqtt) {
      const m = d.mqtt;
      links.push([
        "MQTT broker",
        { text: m.connected === m.clients ? "connected" : `${m.connected} / ${m.clients} connected`, cls: m.connected === m.clients ? "up" : "down" },
        `${fmtInt(m.received)} received, ${fmtInt(m.in_flight)} in flight`,
      ]);
    }
    for (const f of d.forwarders) {
      links.push([
        `${f.kind} forwarder ${f.name}`,
        { text: f.up ? "up" : "down", cls: f.up ? "up" : "down" },
        `${fmtInt(f.forwarded)} forwarded, lag ${fmtAge(f.lag_s)}, ${fmtInt(f.pending)} pending`,
      ]);
    }
    fillTable("links", [["link"], ["state"], ["figures"]], links, "no MQTT intake or forwarder configured");

    drawMap(d.map, d.time);
  }

  function banner(text) {
    const b = byId("banner");
    b.hidden = !text;
    b.textContent = text || "";
  }

  async function poll() {
    try {
      const resp = await fetch("status.json", { cache: "no-store" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      render(await resp.json());
      banner(null);
    } catch (err) {
      banner(`The gateway does not answer (${err.message}); retrying every ${POLL_MS / 1000} s.`);
      const health = byId("health");
      health.textContent = "unreachable";
      health.className = "pill bad";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
