#!/usr/bin/env node
/**
 * The `smtp-bridge` command (`commands/Start.ts`), started after Node's compile cache is on.
 *
 * Node parses and compiles every module again at each start unless asked to keep the result:
 * with `module.enableCompileCache()`, exec of `node src/cli.ts serve` to the 220 banner went
 * from 922 to 459 ms (median of 6 runs, Node 24, machine shared with other workers; issue 16).
 * The cache must be on before the rest of the module graph is parsed, hence the dynamic import.
 * It lives in the system's temporary directory; NODE_DISABLE_COMPILE_CACHE=1 turns it off. Bun
 * keeps its own cache (the call does nothing there) and Deno has no such function.
 */
import * as NodeModule from "node:module"

if (typeof NodeModule.enableCompileCache === "function") NodeModule.enableCompileCache()
void import("./commands/Start.ts")
