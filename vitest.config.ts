import { defineConfig } from "vitest/config"

// The default run: pure unit tests and end-to-end tests over real sockets and processes.
// test/compat starts the CLI under three runtimes and has its own config (vitest.compat.config.ts).
export default defineConfig({
  test: {
    // test/*.test.ts: where docs/plugins.md tells a plugin author to put their tests.
    include: ["test/*.test.ts", "test/unit/**/*.test.ts", "test/e2e/**/*.test.ts"],
    // Child processes (vitest's forks) behave the same under Bun, Deno and Node; worker threads do not.
    pool: "forks",
    // E2E tests start real servers and clients (swaks, python, openssl, upstream sinks).
    testTimeout: 30_000,
    hookTimeout: 30_000,
    teardownTimeout: 10_000
  }
})
