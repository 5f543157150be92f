// Loads a page in Debian's headless Chromium (driven by puppeteer-core, which downloads no
// browser) and prints, as one JSON line, what tests/it/html.rs checks: console errors and
// warnings, page errors, failed requests, every request made, the page's text, its scripts,
// images and links. With a second argument, a screenshot of the whole page goes there.
//
//     node tests/browser/check.js /abs/path/report.html [shot.png]
const puppeteer = require('puppeteer-core');

(async () => {
  const [file, shot] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu'],
  });
  const page = await browser.newPage();
  const errors = [];
  const requests = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warn' || m.type() === 'warning') {
      errors.push(`console ${m.type()}: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  page.on('request', (r) => requests.push(r.url()));
  page.on('dialog', async (d) => {
    errors.push(`dialog: ${d.message()}`);
    await d.dismiss();
  });
  await page.setViewport({ width: 1100, height: 900 });
  await page.goto(`file://${file}`, { waitUntil: 'load' });
  const info = await page.evaluate(() => ({
    title: document.title,
    text: document.body.innerText,
    scripts: document.querySelectorAll('script').length,
    handlers: [...document.querySelectorAll('*')].filter((e) =>
      [...e.attributes].some((a) => a.name.startsWith('on'))).length,
    images: [...document.images].map((i) => ({
      src: i.getAttribute('src'),
      width: i.naturalWidth,
      height: i.naturalHeight,
      link: i.closest('a') ? i.closest('a').getAttribute('href') : null,
    })),
    links: [...document.links].map((a) => a.getAttribute('href')),
  }));
  if (shot) {
    await page.screenshot({ path: shot, fullPage: true });
  }
  await browser.close();
  process.stdout.write(`${JSON.stringify({ errors, requests, ...info })}\n`);
})().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
