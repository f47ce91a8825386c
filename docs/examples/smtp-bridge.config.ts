/**
 * An example configuration file: `smtp-bridge serve --config ./smtp-bridge.config.ts`.
 * Built-in behaviour comes from the fields; a user's own plugins go in `plugins` and run after
 * the built-ins, in the order written.
 */
import { defineConfig } from "smtp-bridge"
import { noExampleDotCom } from "./no-example-dot-com.ts"

export default defineConfig({
  hostname: "mx.bridge.test",
  maildir: "./var/maildir",
  trust: ["127.0.0.1", "::1"],
  plugins: [noExampleDotCom({ domains: ["example.com"] })]
})
