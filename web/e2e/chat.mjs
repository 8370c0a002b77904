// The chat in a real Chromium against the real stack: two users in two browser contexts.
// Run by api/tests/browser.rs, which starts the stack and passes the page's URL:
//   node e2e/chat.mjs <page url> <folder for screenshots>
// Exits non-zero, with the step that failed, when anything a user would see is wrong.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const [base, shots] = process.argv.slice(2);
assert.ok(base && shots, 'usage: chat.mjs <page url> <screenshot folder>');
const executablePath = process.env.CHORUS_CHROMIUM ?? '/usr/bin/chromium';
const run = Date.now().toString(36);
const ann = `ann_${run}`;
const bob = `bob_${run}`;

const browser = await chromium.launch({
  executablePath,
  // As root, no sandbox; and nothing that reaches outside this machine.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
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
  await a.screenshot({ path: `${shots}/chat.png` });
  await step("removed by ann, bob's chat closes at once", async () => {
    await a.getByRole('button', { name: `Remove ${bob}` }).click();
    await b.getByText('Choose a chat, or start one.').waitFor();
    assert.equal(new URL(b.url()).pathname, '/');
  });
  process.stdout.write('browser: every step passed\n');
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
