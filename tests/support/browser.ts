/**
 * Headless Chromium (Debian's package) driven by playwright-core. Each launch
 * gets a fresh profile; screenshots go to the git-ignored tests/artifacts/.
 */
import { mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;

/** Flags that work on this machine: no sandbox as root, no GPU, no background network. */
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: FLAGS });
}

/** Save a full-page screenshot as tests/artifacts/<name>.png and return its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = `${ARTIFACTS}${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * What Chromium's accessibility tree (what a screen reader is given) says of the
 * element `selector` matches: its accessible name and, for toggle buttons, its
 * pressed state ('true' / 'false'; undefined when it has none).
 */
export async function accessibleState(page: Page, selector: string): Promise<{ name: string; pressed: string | undefined }> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { root } = await cdp.send('DOM.getDocument', { depth: 0 });
    const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector });
    if (!nodeId) throw new Error(`no element matches ${selector}`);
    const { node: domNode } = await cdp.send('DOM.describeNode', { nodeId });
    const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { nodeId, fetchRelatives: false });
    const node = nodes.find((n) => n.backendDOMNodeId === domNode.backendNodeId);
    if (!node) throw new Error(`${selector} is not in the accessibility tree`);
    const pressed = node.properties?.find((p) => p.name === 'pressed')?.value.value;
    return { name: String(node.name?.value ?? ''), pressed: pressed === undefined ? undefined : String(pressed) };
  } finally {
    await cdp.detach();
  }
}
