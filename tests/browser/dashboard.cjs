// The dashboard as a person uses it, in headless Chromium driven by playwright-core
// (tests/it/dashboard.rs runs this against a real supervisor; docs/monitoring.md shows the
// screenshots it saves). Everything comes from the environment:
//   PYPM_DASHBOARD_URL  the URL `pypm dashboard` printed
//   PYPM_CONFIG_FILE    the pypm.toml to break at the end
//   PYPM_INSTANCES      the instance names expected, comma-separated
//   PYPM_RESTART_APP    the app to restart (its process prints "<app> started <pid>")
//   PYPM_BROWSER_DEPS   the folder with node_modules/playwright-core
//   PYPM_SCREENSHOTS    where to save the PNGs
//   CHROMIUM            the browser (default /usr/bin/chromium)
"use strict";
const path = require("path");
const fs = require("fs");
const { chromium } = require(path.join(process.env.PYPM_BROWSER_DEPS, "node_modules", "playwright-core"));

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const STEP = 20000;

async function main() {
  const url = env("PYPM_DASHBOARD_URL");
  const shots = env("PYPM_SCREENSHOTS");
  const app = env("PYPM_RESTART_APP");
  fs.mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  let page;
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems = [];
    page.on("pageerror", (e) => problems.push(String(e)));
    page.on("requestfailed", (r) => { if (!r.url().startsWith(new URL(url).origin)) problems.push("left the server: " + r.url()); });
    // A page holding an EventSource never goes network-idle: wait for what it shows instead.
    await page.goto(url, { waitUntil: "domcontentloaded" });

    step("every instance shows, running");
    for (const name of env("PYPM_INSTANCES").split(",")) {
      await page.waitForSelector(`tr[data-name="${name}"] td[data-state="running"]`, { timeout: STEP });
    }
    await page.waitForSelector("#conn.live", { timeout: STEP });
    if (new URL(page.url()).search.includes("token")) throw new Error("the token stayed in the address bar");

    step(`restart ${app} and see its pid change`);
    const pidCell = `tr[data-name="${app}"] td.pid`;
    const oldPid = (await page.textContent(pidCell)).trim();
    if (!/^\d+$/.test(oldPid)) throw new Error(`no pid for ${app}: ${oldPid}`);
    await page.click(`button[aria-label="Restart ${app}"]`);
    await page.waitForFunction(([sel, old]) => {
      const t = document.querySelector(sel)?.textContent.trim();
      return t && /^\d+$/.test(t) && t !== old;
    }, [pidCell, oldPid], { timeout: STEP });
    const newPid = (await page.textContent(pidCell)).trim();

    step("the log viewer shows the line the new process printed");
    await page.selectOption("#log-app", app);
    await page.waitForFunction((want) => document.querySelector("#log").textContent.includes(want),
      `${app} started ${newPid}`, { timeout: STEP });
    step("the filter and pause work");
    await page.fill("#log-filter", `started ${oldPid}`);
    await page.waitForFunction((gone) => !document.querySelector("#log").textContent.includes(gone),
      `started ${newPid}`, { timeout: STEP });
    await page.fill("#log-filter", "");

    step("the events timeline shows the restart");
    await page.waitForSelector('#events li[data-event="started"]', { timeout: STEP });

    step("the charts draw the history (two samples, 2 s apart)");
    await page.waitForFunction((sel) => {
      const p = document.querySelector(sel)?.getAttribute("points") || "";
      return p.split(" ").filter(Boolean).length >= 3;
    }, `tr[data-name="web.0"] svg.mem polyline`, { timeout: STEP });

    step("reload shows the plan first");
    await page.click("#reload");
    await page.waitForFunction(() => /nothing would change|:/.test(document.querySelector("#plan-list").textContent)
      && !document.querySelector("#plan-list").textContent.includes("asking"), null, { timeout: STEP });
    await page.click("#plan-cancel");
    await page.screenshot({ path: path.join(shots, "dashboard.png"), fullPage: true });

    step("on a phone");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(shots, "dashboard-phone.png") });
    await page.setViewportSize({ width: 1280, height: 900 });

    step("break the file and see the banner");
    fs.appendFileSync(env("PYPM_CONFIG_FILE"), "\n[apps.broken\n");
    await page.waitForFunction(() => {
      const b = document.querySelector("#banner");
      return b && !b.hidden && b.textContent.includes("invalid");
    }, null, { timeout: STEP });
    await page.screenshot({ path: path.join(shots, "dashboard-invalid.png"), fullPage: true });
    if (problems.length) throw new Error("the page had problems:\n" + problems.join("\n"));
    console.log("dashboard: all steps passed");
  } catch (e) {
    if (page) {
      await page.screenshot({ path: path.join(shots, "dashboard-failure.png"), fullPage: true }).catch(() => {});
      const text = await page.evaluate(() => document.body.innerText).catch(() => "");
      console.error("the page shows:\n" + text);
    }
    throw e;
  } finally {
    await browser.close();
  }
}

function step(what) { console.log("- " + what); }

main().catch((e) => { console.error("dashboard test failed: " + (e && e.stack || e)); process.exit(1); });
