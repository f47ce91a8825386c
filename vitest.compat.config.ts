import { defineConfig } from "vitest/config"

// `npm run test:compat`: the real CLI started under Bun, Deno and Node >= 22.19 (see test/support/runtimes.ts).
export default defineConfig({
  test: {
    include: ["test/compat/**/*.test.ts"],
    pool: "forks",
    // One file at a time: each test starts whole runtimes, which is slow and CPU-hungry.
    fileParallelism: false,
    // The first run may fetch a Node binary into .tmp/node.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 15_000
  }
})
