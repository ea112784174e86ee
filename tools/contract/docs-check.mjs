// Renders Herald's /docs and /redoc in Debian's Chromium (headless) with every host but the
// service unreachable, and prints what rendered as JSON. Run by tests/contract/test_docs_browser.py
// (`make docs-check`). Usage: node docs-check.mjs http://127.0.0.1:PORT
import { chromium } from "playwright-core";

const base = new URL(process.argv[2]);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // No network: every host but the service's fails to resolve.
    `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE ${base.hostname}`,
  ],
});
const result = { external: [], errors: [], swagger: {}, redoc: {} };
try {
  const context = await browser.newContext();
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.host === base.host || url.protocol === "data:" || url.protocol === "blob:") {
      return route.continue();
    }
    result.external.push(url.href);
    return route.abort();
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => result.errors.push(String(error)));

  await page.goto(new URL("/docs", base).href, { waitUntil: "networkidle" });
  await page.waitForSelector(".opblock", { timeout: 60000 });
  result.swagger = await page.evaluate(() => ({
    operations: document.querySelectorAll(".opblock").length,
    text: document.body.innerText,
    title: document.title,
  }));

  await page.goto(new URL("/redoc", base).href, { waitUntil: "networkidle" });
  await page.waitForSelector("[data-section-id^='operation/']", { timeout: 60000 });
  result.redoc = await page.evaluate(() => ({
    operations: document.querySelectorAll("[data-section-id^='operation/']").length,
    webhooks: document.querySelectorAll("[data-section-id^='webhook/']").length,
    text: document.body.innerText,
    title: document.title,
  }));
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result));
