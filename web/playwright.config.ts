import { defineConfig } from '@playwright/test';

// The end-to-end test runs against a live `casebook serve` that infra/local/web-e2e.sh starts
// (CASEBOOK_E2E_URL, CASEBOOK_E2E_LOG), in Debian's Chromium: nothing downloads a browser.
export default defineConfig({
  testDir: 'e2e',
  // The diagnosis comes from a small local model on two cores: the scenario allows it 5 minutes.
  timeout: 20 * 60 * 1000,
  expect: { timeout: 20_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  outputDir: 'test-results/playwright',
  reporter: [['list'], ['json', { outputFile: 'test-results/e2e-report.json' }]],
  use: {
    baseURL: process.env.CASEBOOK_E2E_URL,
    headless: true,
    viewport: { width: 1280, height: 860 },
    launchOptions: { executablePath: process.env.CASEBOOK_CHROMIUM ?? '/usr/bin/chromium' },
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    actionTimeout: 20_000,
    navigationTimeout: 30_000,
  },
});
