// The cryptoflow dashboard: REST for history, /ws for live pushes. No build step, no CDN.
"use strict";

const KEEP = 120; // candles on the chart
const TABLE_ROWS = 10; // rows of the recent-candles table
const QUOTES = ["USDT", "USDC", "BUSD", "FDUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY"];

const params = new URLSearchParams(location.search);
const hash = new URLSearchParams(location.hash.slice(1));
const token = hash.get("token") || params.get("token") || localStorage.getItem("cryptoflow-token") || "";
if (token) localStorage.setItem("cryptoflow-token", token);

const state = {
  symbol: params.get("symbol") || "",
  interval: params.get("interval") || "1m",
  candles: [], // oldest first; the last may be forming
  sma: new Map(), // open_time -> sma_20
  ws: null,
  drawPending: false,
};

const $ = (id) => document.getElementById(id);

function showError(msg) {
  const f = $("error");
  f.hidden = !msg;
  f.textContent = msg || "";
}

async function api(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch(path, { headers });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const err = new Error(body.error || r.status + " " + r.statusText);
    err.status = r.status;
    throw err;
  }
  return body;
}

function coinOf(symbol) {
  const base = symbol.split("_")[0];
  for (const q of QUOTES) {
    if (base.endsWith(q) && base.length > q.length) return base.slice(0, -q.length);
  }
  return base;
}

function utc(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
}

function num(v, digits) {
  if (v === null || v === undefined) return "\u2014";
  if (typeof v === "number") return v.toFixed(digits);
  // An exact decimal: shown as stored, its fraction cut (not rounded) after 8 digits.
  const s = String(v), dot = s.indexOf(".");
  return dot >= 0 && s.length - dot - 1 > 8 ? s.slice(0, dot + 9) : s;
}

// ---- candles -------------------------------------------------------------------------

function upsertCandle(c) {
  if (c.interval !== state.interval) return;
  const list = state.candles;
  let i = list.length - 1;
  while (i >= 0 && list[i].open_time > c.open_time) i--;
  if (i >= 0 && list[i].open_time === c.open_time) {
    if (list[i].is_final && !c.is_final) return; // a late snapshot of a closed candle
    list[i] = c;
  } else {
    list.splice(i + 1, 0, c);
  }
  while (list.length > KEEP) list.shift();
  scheduleDraw();
}

function scheduleDraw() {
  if (state.drawPending) return;
  state.drawPending = true;
  requestAnimationFrame(() => {
    state.drawPending = false;
    drawChart();
    renderCandleTable();
  });
}

function drawChart() {
  const canvas = $("chart");
  const vol = $("volume");
  const ctx = canvas.getContext("2d");
  const vctx = vol.getContext("2d");
  const W = canvas.width, H = canvas.height, VH = vol.height;
  ctx.clearRect(0, 0, W, H);
  vctx.clearRect(0, 0, W, VH);
  const list = state.candles;
  canvas.dataset.candles = String(list.length);
  canvas.dataset.final = String(list.filter((c) => c.is_final).length);
  if (!list.length) return;
  let lo = Infinity, hi = -Infinity, vmax = 0;
  for (const c of list) {
    lo = Math.min(lo, parseFloat(c.low));
    hi = Math.max(hi, parseFloat(c.high));
    vmax = Math.max(vmax, parseFloat(c.volume));
    const m = state.sma.get(c.open_time);
    if (m !== undefined && m !== null) { lo = Math.min(lo, m); hi = Math.max(hi, m); }
  }
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = 8, axis = 70;
  const step = (W - axis - pad) / KEEP;
  const y = (p) => pad + (hi - p) / (hi - lo) * (H - 2 * pad);
  const x0 = W - axis - step * list.length;
  // Grid and price axis.
  ctx.strokeStyle = "#26303a";
  ctx.fillStyle = "#7d8793";
  ctx.font = "11px system-ui";
  for (let k = 0; k <= 4; k++) {
    const p = lo + (hi - lo) * k / 4;
    const yy = y(p);
    ctx.beginPath(); ctx.moveTo(0, yy); ctx.lineTo(W - axis, yy); ctx.stroke();
    ctx.fillText(p.toPrecision(6), W - axis + 4, yy + 4);
  }
  list.forEach((c, i) => {
    const o = parseFloat(c.open), cl = parseFloat(c.close);
    const color = cl >= o ? "#26a69a" : "#ef5350";
    const cx = x0 + step * i + step / 2;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.beginPath(); ctx.moveTo(cx, y(parseFloat(c.high))); ctx.lineTo(cx, y(parseFloat(c.low))); ctx.stroke();
    const top = y(Math.max(o, cl)), h = Math.max(1, Math.abs(y(o) - y(cl)));
    const w = Math.max(1, step * 0.7);
    ctx.globalAlpha = c.is_final ? 1 : 0.5;
    ctx.fillRect(cx - w / 2, top, w, h);
    const vh = vmax > 0 ? parseFloat(c.volume) / vmax * (VH - 4) : 0;
    vctx.fillStyle = color;
    vctx.globalAlpha = c.is_final ? 0.8 : 0.4;
    vctx.fillRect(cx - w / 2, VH - vh, w, vh);
    ctx.globalAlpha = 1;
  });
  // The SMA 20 overlay.
  ctx.strokeStyle = "#f4b400";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let started = false;
  list.forEach((c, i) => {
    const m = state.sma.get(c.open_time);
    if (m === undefined || m === null) return;
    const cx = x0 + step * i + step / 2;
    if (started) ctx.lineTo(cx, y(m)); else { ctx.moveTo(cx, y(m)); started = true; }
  });
  ctx.stroke();
  ctx.lineWidth = 1;
}

function renderCandleTable() {
  const body = $("candles").tBodies[0];
  const rows = state.candles.filter((c) => c.is_final).slice(-TABLE_ROWS).reverse();
  body.replaceChildren(...rows.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.openTime = String(c.open_time);
    for (const [k, v] of [["open_time", utc(c.open_time)], ["open", c.open], ["high", c.high], ["low", c.low], ["close", c.close], ["volume", c.volume], ["trade_count", c.trade_count]]) {
      const td = document.createElement("td");
      td.dataset.field = k;
      td.textContent = String(v);
      tr.appendChild(td);
    }
    return tr;
  }));
}

// ---- panels --------------------------------------------------------------------------

function showTrade(e) {
  $("price").textContent = e.trade.price;
  $("price").className = "big " + (e.trade.side === "buy" ? "buy" : "sell");
  $("ma").textContent = e.moving_average;
  $("ema").textContent = num(e.ema, 2);
  $("last-trade").textContent = `${e.trade.qty} @ ${utc(e.trade.ts_exchange)} (#${e.trade.trade_id})`;
}

const INDICATORS = [
  ["sma_20", "SMA 20"], ["ema_20", "EMA 20"], ["rsi_14", "RSI 14"], ["macd", "MACD"],
  ["macd_signal", "MACD signal"], ["bb_upper", "BB upper"], ["bb_lower", "BB lower"],
  ["atr_14", "ATR 14"], ["stoch_k", "Stoch %K"], ["obv", "OBV"], ["vwap_20", "VWAP 20"],
];

function showIndicators(row) {
  if (row.interval !== state.interval) return;
  state.sma.set(row.open_time, row.sma_20);
  $("ind-time").textContent = utc(row.open_time);
  const body = $("indicators").tBodies[0];
  body.replaceChildren(...INDICATORS.map(([k, name]) => {
    const tr = document.createElement("tr");
    tr.dataset.indicator = k;
    tr.innerHTML = "<td></td><td></td>";
    tr.cells[0].textContent = name;
    tr.cells[1].textContent = num(row[k], 4);
    return tr;
  }));
  scheduleDraw();
}

function addWhale(w, atTop) {
  const ul = $("whales");
  // A whale pushed while the history loaded can also be in the history: shown once.
  const key = `${w.trade.venue || ""}/${w.trade.symbol}/${w.trade.trade_id}`;
  if (Array.from(ul.children).some((e) => e.dataset.key === key)) return;
  const li = document.createElement("li");
  li.dataset.key = key;
  li.className = w.trade.side;
  li.textContent = `${utc(w.trade.ts_exchange)} ${w.trade.symbol} ${w.trade.side} ${w.trade.qty} @ ${w.trade.price} = ${w.notional}`;
  if (atTop) ul.prepend(li); else ul.append(li);
  while (ul.children.length > 50) ul.lastChild.remove();
}

function showSentiment(rows) {
  const body = $("sentiment").tBodies[0];
  body.replaceChildren(...rows.map((w) => {
    const tr = document.createElement("tr");
    tr.dataset.span = w.span;
    tr.innerHTML = "<td></td><td></td><td></td>";
    tr.cells[0].textContent = w.span;
    tr.cells[1].textContent = `compound ${num(w.mean_compound, 3)}`;
    tr.cells[2].textContent = `${w.items} items`;
    return tr;
  }));
}

function showNews(rows) {
  $("news").replaceChildren(...rows.map(({ item, sentiment }) => {
    const li = document.createElement("li");
    const title = item ? item.title : sentiment.item_key;
    li.textContent = `${num(sentiment.score.compound, 2)}  ${title}`;
    li.className = sentiment.score.compound >= 0.05 ? "buy" : sentiment.score.compound <= -0.05 ? "sell" : "";
    return li;
  }));
}

function showQuality(q) {
  const body = $("quality").tBodies[0];
  body.replaceChildren(...q.sources.map((r) => {
    const tr = document.createElement("tr");
    for (const v of [r.source, r.symbol, r.trades, r.gaps_detected, r.gaps_refilled, r.late_events, r.stale ? "yes" : "no"]) {
      const td = document.createElement("td");
      td.textContent = String(v);
      tr.appendChild(td);
    }
    return tr;
  }));
  $("quality-events").replaceChildren(...q.events.slice(0, 30).map(qualityItem));
}

// A data-quality event, from the API (gap, late, mismatch) or a push (gap, late_trade,
// kline_mismatch).
function qualityItem(ev) {
  const li = document.createElement("li");
  const symbol = ev.symbol || (ev.trade && ev.trade.symbol);
  if (ev.type === "gap") li.textContent = `gap ${symbol} ${ev.kind || ev.stream} ${utc(ev.since)}\u2013${utc(ev.until)} ${ev.refilled ? "refilled" : ev.reason}`;
  else if (ev.type === "late" || ev.type === "late_trade") li.textContent = `late trade ${symbol} #${ev.trade ? ev.trade.trade_id : ev.trade_id} for ${utc(ev.candle_open_time)}`;
  else if (ev.type === "mismatch" || ev.type === "kline_mismatch") li.textContent = `kline mismatch ${symbol} ${utc(ev.open_time)}: ${ev.fields.join(", ")}`;
  else li.textContent = JSON.stringify(ev);
  return li;
}

// ---- loading and the live feed -------------------------------------------------------

async function loadSymbols() {
  const { symbols } = await api("/api/v1/symbols");
  const sel = $("symbol");
  const known = new Set(Array.from(sel.options).map((o) => o.value));
  for (const s of symbols) {
    if (!known.has(s)) sel.add(new Option(s, s));
  }
  if (!state.symbol && symbols.length) state.symbol = symbols[0];
  sel.value = state.symbol;
  return symbols.length > 0;
}

async function loadSymbol() {
  const s = state.symbol, iv = state.interval;
  state.candles = [];
  state.sma = new Map();
  $("whales").replaceChildren();
  $("coin").textContent = coinOf(s);
  // Subscribe before reading the history: a candle that closes while the history loads arrives
  // as a push (held until the history is drawn), so none falls between the two.
  connect();
  const [price, candles, ind, whales] = await Promise.all([
    api(`/api/v1/prices/current/${s}`).catch(() => null),
    api(`/api/v1/candles/${s}?interval=${iv}&limit=${KEEP}&forming=true`).catch(() => ({ rows: [] })),
    api(`/api/v1/technical/${s}?from=0&limit=${KEEP}`).catch(() => ({ rows: [] })),
    api(`/api/v1/whales?symbol=${s}&limit=50`).catch(() => ({ rows: [] })),
  ]);
  if (price) showTrade(price);
  for (const r of ind.rows) if (r.interval === iv) state.sma.set(r.open_time, r.sma_20);
  if (ind.rows.length) showIndicators(ind.rows[ind.rows.length - 1]);
  for (const c of candles.rows) upsertCandle(c);
  for (const w of whales.rows) addWhale(w, false);
  const held = state.held || [];
  state.held = null;
  for (const msg of held) applyPush(msg);
  scheduleDraw();
  refreshSlow();
}

async function refreshSlow() {
  const coin = coinOf(state.symbol);
  const [q, news, h1, h24] = await Promise.all([
    api("/api/v1/quality?limit=30").catch(() => null),
    api(`/api/v1/news/latest?coin=${coin}&limit=15`).catch(() => ({ rows: [] })),
    api(`/api/v1/sentiment/${coin}?window=1h`).catch(() => null),
    api(`/api/v1/sentiment/${coin}?window=24h`).catch(() => null),
  ]);
  if (q) showQuality(q);
  showNews(news.rows);
  showSentiment([h1, h24].filter(Boolean));
}

function connect() {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const q = new URLSearchParams({
    symbols: [state.symbol, coinOf(state.symbol)].join(","),
    kinds: "trades,candles,indicators,whales,sentiment,quality",
  });
  if (token) q.set("access_token", token);
  const ws = new WebSocket(`${proto}//${location.host}/ws?${q}`);
  state.ws = ws;
  const conn = $("conn");
  ws.onopen = () => { conn.textContent = "live"; conn.className = "conn on"; };
  ws.onclose = (ev) => {
    conn.textContent = ev.code === 4008 ? "too slow: reconnecting" : "offline";
    conn.className = "conn off";
    setTimeout(() => { if (state.ws === ws) loadSymbol(); }, 2000);
  };
  state.held = [];
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (state.held) state.held.push(msg); else applyPush(msg);
  };
}

// Each push is {kind, symbol, data}: data is the record's Kafka topic message.
function applyPush({ kind, data: d }) {
  switch (kind) {
    case "trades":
      if (d.symbol === state.symbol) showTrade({ trade: d, moving_average: d.moving_average, ema: d.ema });
      break;
    case "candles": if (d.symbol === state.symbol) upsertCandle(d); break;
    case "indicators": if (d.symbol === state.symbol) showIndicators(d); break;
    case "whales": addWhale({ trade: d, notional: d.notional }, true); break;
    case "sentiment": if (d.type === "window") refreshSlow(); break;
    case "quality": $("quality-events").prepend(qualityItem(d)); break;
    default: break;
  }
}

async function start() {
  $("symbol").onchange = (e) => { state.symbol = e.target.value; loadSymbol().catch(fail); };
  $("interval").value = state.interval;
  $("interval").onchange = (e) => { state.interval = e.target.value; loadSymbol().catch(fail); };
  // Wait for the first symbol (a pipeline that has just started has none yet).
  while (!(await loadSymbols().catch(fail))) {
    await new Promise((r) => setTimeout(r, 1000));
  }
  showError("");
  await loadSymbol();
  setInterval(() => { refreshSlow(); loadSymbols().catch(() => {}); }, 15000);
}

function fail(e) {
  showError(e.status === 401 ? "This API needs a token: open the page as /#token=<token>." : String(e.message || e));
  return false;
}

start().catch(fail);
