// Opens rtmpsniff's live page (`live --http`) in Debian's headless Chromium, waits for a
// stream named NAME to be listed and to offer its player, starts it and waits for the video's
// currentTime to pass 1 s. Prints one JSON line for tests/it/live.rs: whether it was listed,
// the currentTime reached, how long each took (and from the keyframe's arrival to its picture),
// console and page errors, every request's URL.
//
//     node tests/browser/live.js URL NAME [shot.png]
const puppeteer = require('puppeteer-core');

(async () => {
  const [url, name, shot] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--autoplay-policy=no-user-gesture-required'],
  });
  const out = { listed: false, current_time: 0, errors: [], requests: [] };
  try {
    const page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') out.errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => out.errors.push(`page error: ${e.message}`));
    page.on('request', (r) => out.requests.push(r.url()));
    await page.setViewport({ width: 1300, height: 800 });
    // When the HTTP-FLV's first body bytes arrive: rtmpsniff sends the FLV header, metadata
    // and sequence headers with the stream's next keyframe, as one write, once it sniffs it.
    const cdp = await page.target().createCDPSession();
    await cdp.send('Network.enable');
    let flvRequest = null;
    let keyframeAt = null;
    cdp.on('Network.requestWillBeSent', (e) => {
      if (e.request.url.includes('/streams/')) flvRequest = e.requestId;
    });
    cdp.on('Network.dataReceived', (e) => {
      if (e.requestId === flvRequest && keyframeAt === null) keyframeAt = Date.now();
    });
    const t0 = Date.now();
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction((n) => [...document.querySelectorAll('td.name')]
      .some((td) => td.textContent === n), { timeout: 20000 }, name);
    out.listed = true;
    out.listed_ms = Date.now() - t0;
    // The row comes with the publish; its play button once the first media named a codec.
    await page.waitForFunction((n) => [...document.querySelectorAll('td.name')]
      .some((td) => td.textContent === n && td.parentElement.querySelector('button.play')),
    { timeout: 20000 }, name);
    out.playable_ms = Date.now() - t0;
    await page.evaluate((n) => {
      const v = document.getElementById('video');
      // The wall-clock time the first picture is shown.
      v.requestVideoFrameCallback(() => { window.firstFrameAt = Date.now(); });
      const td = [...document.querySelectorAll('td.name')].find((t) => t.textContent === n);
      td.parentElement.querySelector('button.play').click();
    }, name);
    const t1 = Date.now();
    await page.waitForFunction(() => document.getElementById('video').currentTime > 1,
      { timeout: 20000 }).catch(() => {});
    out.current_time = await page.evaluate(() => document.getElementById('video').currentTime);
    out.playing_ms = Date.now() - t1;
    // From `play` to the keyframe's arrival (the wait for the stream's next keyframe), and
    // from its arrival to its picture on screen.
    const firstFrameAt = await page.evaluate(() => window.firstFrameAt || null);
    out.keyframe_wait_ms = keyframeAt === null ? null : keyframeAt - t1;
    out.keyframe_to_picture_ms = keyframeAt === null || firstFrameAt === null
      ? null : firstFrameAt - keyframeAt;
    if (shot) await page.screenshot({ path: shot, fullPage: true });
  } catch (e) {
    out.errors.push(`driver: ${e.message}`);
  }
  await browser.close();
  console.log(JSON.stringify(out));
})();
