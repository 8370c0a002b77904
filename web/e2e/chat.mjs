// The chat in a real Chromium against the real stack: two users in two browser contexts.
// Run by api/tests/browser.rs, which starts the stack (access tokens living 3 s) and passes
// the page's URL:
//   node e2e/chat.mjs <page url> <folder for screenshots> <spoken WAV> <its duration, ms>
// The WAV is Chromium's fake microphone; the harness checks the transcript it prints.
// A line `restart-hub` on stdout asks the harness to kill and restart the hub; it answers
// `restarted` on stdin. Exits non-zero, with the step that failed, when anything a user would
// see is wrong.

import assert from 'node:assert/strict';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

const [base, shots, speech, speechMs] = process.argv.slice(2);
assert.ok(base && shots && speech && speechMs, 'usage: chat.mjs <page url> <screenshot folder> <wav> <ms>');
const executablePath = process.env.CHORUS_CHROMIUM ?? '/usr/bin/chromium';
const run = Date.now().toString(36);
const ann = `ann_${run}`;
const bob = `bob_${run}`;

const browser = await chromium.launch({
  executablePath,
  // As root, no sandbox; and nothing that reaches outside this machine.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // A microphone that says the harness's sentence once, and no permission prompt.
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${speech}%noloop`],
});

async function step(name, f) {
  process.stdout.write(`- ${name}\n`);
  await f();
}

async function signUp(user) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => { throw new Error(`${user}'s page: ${e.message}`); });
  await page.goto(base);
  await page.getByLabel('Username', { exact: true }).fill(user);
  await page.getByLabel('Password', { exact: true }).fill('password-1');
  await page.getByRole('button', { name: 'Register' }).click();
  await page.getByRole('status').filter({ hasText: 'connected' }).waitFor();
  return page;
}

/** The texts of the chat's message list, in order. */
const texts = (page) => page.getByRole('log').locator('li .text').allTextContents();

const harness = createInterface({ input: process.stdin });
const answers = harness[Symbol.asyncIterator]();

/** Sends `text` to `chat` as `user` through the API, as another device of theirs would:
 * signed in again when the short-lived token expired, paced by Retry-After. */
async function apiSend(user, chat, text) {
  const url = (path) => new URL(path, base).href;
  for (;;) {
    apiSend.tokens ??= {};
    if (!apiSend.tokens[user]) {
      const r = await fetch(url('/auth/login'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: user, password: 'password-1' }),
      });
      assert.equal(r.status, 200, `login ${user}`);
      apiSend.tokens[user] = (await r.json()).access_token;
    }
    const r = await fetch(url(`/chats/${chat}/messages`), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${apiSend.tokens[user]}`,
        'content-type': 'application/json',
        'idempotency-key': `${run}-${text}`,
      },
      body: JSON.stringify({ text }),
    });
    if (r.status === 401) {
      apiSend.tokens[user] = null;
      continue;
    }
    if (r.status === 429) {
      await sleep(1000 * Number(r.headers.get('retry-after') ?? 1));
      continue;
    }
    assert.ok(r.status === 201 || r.status === 202, `send ${text}: ${r.status} ${await r.text()}`);
    return;
  }
}

/** Every text `page` shows, once all of `want` arrived. */
async function waitForTexts(page, want) {
  for (let i = 0; i < 300; i += 1) {
    const got = await texts(page);
    if (got.length >= want.length) return got;
    await sleep(100);
  }
  return texts(page);
}

try {
  let a, b;
  await step('both register and are connected', async () => {
    [a, b] = await Promise.all([signUp(ann), signUp(bob)]);
  });
  await step('a wrong password is said in words', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(base);
    await page.getByLabel('Username', { exact: true }).fill(ann);
    await page.getByLabel('Password', { exact: true }).fill('wrong-password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong username or password' }).waitFor();
    await context.close();
  });
  await step('ann creates a chat and adds bob by username', async () => {
    await a.getByLabel('Chat title', { exact: true }).fill('Weekend plans');
    await a.getByRole('button', { name: 'New chat' }).click();
    await a.getByRole('heading', { name: 'Weekend plans' }).waitFor();
    await a.getByLabel('Member username', { exact: true }).fill(bob);
    await a.getByRole('button', { name: 'Add member' }).click();
    await a.getByText(`Remove ${bob}`).waitFor();
  });
  const chatPath = new URL(a.url()).pathname;
  assert.match(chatPath, /^\/c\/[0-9]+$/);
  await step('bob opens the chat', async () => {
    await b.goto(new URL(chatPath, base).href);
    await b.getByRole('status').filter({ hasText: 'connected' }).waitFor();
    await b.getByRole('heading', { name: 'Weekend plans' }).waitFor();
  });
  await step('each sees the other online in the chat', async () => {
    for (const page of [a, b]) {
      const online = page.getByLabel('Online', { exact: true });
      await online.filter({ hasText: ann }).filter({ hasText: bob }).waitFor();
    }
  });
  await step("ann's message reaches bob live, once, and Enter sent it", async () => {
    await a.getByLabel('Message', { exact: true }).fill('hello bob');
    await a.getByLabel('Message', { exact: true }).press('Enter');
    await b.getByRole('log').getByText('hello bob').waitFor();
    await a.getByRole('log').locator('li:not(.pending) .text', { hasText: 'hello bob' }).waitFor();
    // Anything sent twice would have arrived by now.
    await b.waitForTimeout(1000);
    assert.deepEqual(await texts(b), ['hello bob']);
    assert.deepEqual(await texts(a), ['hello bob']);
  });
  await step('bob answers; both see both messages in order', async () => {
    await b.getByLabel('Message', { exact: true }).fill('hi ann');
    await b.getByRole('button', { name: 'Send' }).click();
    await a.getByRole('log').getByText('hi ann').waitFor();
    await b.getByRole('log').locator('li:not(.pending) .text', { hasText: 'hi ann' }).waitFor();
    assert.deepEqual(await texts(a), ['hello bob', 'hi ann']);
    assert.deepEqual(await texts(b), ['hello bob', 'hi ann']);
  });
  await step('after a reload the messages come from history, in order', async () => {
    await b.reload();
    await b.getByRole('log').getByText('hi ann').waitFor();
    assert.deepEqual(await texts(b), ['hello bob', 'hi ann']);
  });
  let expected = ['hello bob', 'hi ann'];
  await step("after ann's access token expired, her page refreshes it unseen and sends", async () => {
    const refreshes = [];
    a.on('request', (r) => {
      if (r.url().endsWith('/auth/refresh')) refreshes.push(r.url());
    });
    await a.waitForTimeout(3500);
    await a.getByLabel('Message', { exact: true }).fill('still here');
    await a.getByLabel('Message', { exact: true }).press('Enter');
    await b.getByRole('log').getByText('still here').waitFor();
    assert.ok(refreshes.length >= 1, 'a refresh happened');
    assert.equal(await a.getByRole('alert').count(), 0, 'nothing to see for the user');
    expected = [...expected, 'still here'];
  });
  const chat = chatPath.split('/')[2];
  await step('130 messages: scrolling back loads older pages with no gap and no repeat', async () => {
    const many = Array.from({ length: 130 }, (_, i) => `m${String(i + 1).padStart(3, '0')}`);
    for (const text of many) await apiSend(ann, chat, text);
    expected = [...expected, ...many];
    await b.getByRole('log').getByText('m130').waitFor();
    const pages = [];
    b.on('response', (r) => {
      if (r.url().includes('/messages?')) pages.push(`${r.status()} ${new URL(r.url()).search}`);
    });
    // The newest page from the API, not only the hub's recent stream, before paging back.
    const newest = b.waitForResponse((r) => /\/messages\?limit=[0-9]+$/.test(r.url()));
    await b.reload();
    await newest;
    await b.getByRole('log').getByText('m130').waitFor();
    const older = b.getByRole('button', { name: 'Load older messages' });
    for (let i = 0; i < 10 && (await older.count()) > 0; i += 1) {
      await older.click();
      await sleep(300);
    }
    assert.equal(await older.count(), 0, `the oldest page was reached; pages: ${pages.join(' | ')}`);
    assert.deepEqual(await texts(b), expected);
  });
  await step('the hub restarts while ann sends through the API: both pages come back with every message once, in order', async () => {
    for (const page of [a, b]) {
      await page.evaluate(() => {
        const status = document.querySelector('[role=status]');
        window.seen = [];
        new MutationObserver(() => window.seen.push(status.textContent)).observe(status, {
          characterData: true,
          childList: true,
          subtree: true,
        });
      });
    }
    process.stdout.write('restart-hub\n');
    const during = ['r1', 'r2', 'r3', 'r4', 'r5'];
    for (const text of during) await apiSend(ann, chat, text);
    const answer = await answers.next();
    assert.equal(answer.value, 'restarted');
    expected = [...expected, ...during];
    for (const page of [a, b]) {
      await page.getByRole('status').filter({ hasText: 'connected' }).waitFor({ timeout: 60000 });
      await page.getByRole('log').getByText('r5').waitFor({ timeout: 60000 });
      assert.deepEqual(await waitForTexts(page, expected), expected);
      const seen = await page.evaluate(() => window.seen);
      assert.ok(seen.some((t) => t !== 'connected'), `the page showed the outage: ${seen}`);
    }
  });
  await step('a voice message recorded in the page plays in both, and its transcript follows', async () => {
    await a.getByRole('button', { name: 'Record' }).click();
    await a.getByRole('button', { name: 'Stop' }).waitFor();
    await a.waitForTimeout(Number(speechMs) + 700);
    await a.getByRole('button', { name: 'Stop' }).click();
    for (const page of [a, b]) {
      const voice = page.getByRole('log').locator('li:has(audio)');
      await page.waitForFunction(
        () => {
          const t = document.querySelector('[role=log] .voice .transcript');
          return t && t.textContent !== 'transcribing…';
        },
        null,
        { timeout: 90000 },
      );
      assert.equal(await voice.count(), 1);
      // It plays: the browser reads a duration from what the API serves.
      await page.waitForFunction(() => {
        const audio = document.querySelector('[role=log] audio');
        return audio && audio.readyState >= 1;
      });
      const heard = await voice.locator('.transcript').textContent();
      process.stdout.write(`transcript: ${heard}\n`);
    }
  });
  await step('an image shows its thumbnail in both pages', async () => {
    const png = await a.evaluate(() => {
      const canvas = document.createElement('canvas');
      canvas.width = 640;
      canvas.height = 480;
      const g = canvas.getContext('2d');
      g.fillStyle = '#3a7';
      g.fillRect(0, 0, 640, 480);
      g.fillStyle = '#fff';
      g.fillRect(100, 100, 200, 120);
      return canvas.toDataURL('image/png').split(',')[1];
    });
    await a.getByLabel('Image', { exact: true }).setInputFiles({
      name: 'square.png',
      mimeType: 'image/png',
      buffer: Buffer.from(png, 'base64'),
    });
    for (const page of [a, b]) {
      const image = page.getByRole('log').locator('li img');
      await page.waitForFunction(
        () => {
          const img = document.querySelector('[role=log] li img');
          return img && img.complete && img.naturalWidth > 0;
        },
        null,
        { timeout: 60000 },
      );
      assert.deepEqual(
        await image.evaluate((img) => [img.naturalWidth, img.naturalHeight]),
        [320, 240],
      );
    }
  });
  await a.getByRole('log').evaluate((el) => {
    el.scrollTop = el.scrollHeight;
  });
  await a.screenshot({ path: `${shots}/chat.png` });
  await step('two tabs of ann refreshing at once both keep working', async () => {
    const second = await a.context().newPage();
    await second.goto(a.url());
    await second.getByRole('status').filter({ hasText: 'connected' }).waitFor();
    // Both access tokens expire; both tabs refresh with the one cookie at the same moment.
    await second.waitForTimeout(3500);
    await Promise.all([
      (async () => {
        await a.getByLabel('Message', { exact: true }).fill('from tab one');
        await a.getByLabel('Message', { exact: true }).press('Enter');
      })(),
      (async () => {
        await second.getByLabel('Message', { exact: true }).fill('from tab two');
        await second.getByLabel('Message', { exact: true }).press('Enter');
      })(),
    ]);
    for (const text of ['from tab one', 'from tab two']) await b.getByRole('log').getByText(text).waitFor();
    assert.equal(await a.getByText('Not sent').count() + (await second.getByText('Not sent').count()), 0);
    await second.close();
  });
  await step("ann renames the chat; bob's page follows", async () => {
    await a.getByLabel('New title', { exact: true }).fill('Weekend trip');
    await a.getByRole('button', { name: 'Rename' }).click();
    await b.getByRole('heading', { name: 'Weekend trip' }).waitFor();
    await b.getByRole('navigation').getByText('Weekend trip').waitFor();
  });
  await step("removed by ann, bob's chat closes at once", async () => {
    await a.getByRole('button', { name: `Remove ${bob}` }).click();
    await b.getByText('Choose a chat, or start one.').waitFor();
    assert.equal(new URL(b.url()).pathname, '/');
  });
  process.stdout.write('browser: every step passed\n');
  harness.close();
} catch (e) {
  // What each page showed when it failed.
  for (const [i, context] of browser.contexts().entries()) {
    for (const [j, page] of context.pages().entries()) {
      await page.screenshot({ path: `${shots}/failed-${i}-${j}.png` }).catch(() => {});
      const cookies = await context.cookies().catch(() => []);
      process.stdout.write(`page ${i}.${j} ${page.url()} cookies: ${cookies.map((c) => c.name).join(',')}\n`);
      process.stdout.write(`${(await page.locator('body').innerText().catch(() => '')).slice(0, 400)}\n`);
    }
  }
  throw e;
} finally {
  await browser.close();
}
